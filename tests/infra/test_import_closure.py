"""What a handler's asset ships: the package modules it imports, read from the source."""

from pathlib import Path

from infra.import_closure import import_closure


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_closure_follows_every_form_of_import_and_stops_at_what_never_runs(tmp_path):
    # Given a package whose modules import each other in every form, and a handler beside a module of its own
    write(
        tmp_path / "shared",
        {
            "pkg/__init__.py": "",
            "pkg/core/__init__.py": "",
            "pkg/core/a.py": "from . import b\nfrom .c import thing\n",
            "pkg/core/b.py": "def later():\n    import pkg.lazy\n",
            "pkg/core/c.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg import typed\nthing = 1\n",
            "pkg/lazy.py": "",
            "pkg/typed.py": "",
            "pkg/beside.py": "",
            "pkg/unused.py": "",
        },
    )
    write(tmp_path / "fn", {"handler.py": "import local\nfrom pkg.core import a\n", "local.py": "import pkg.beside\n"})
    # When the closure of the handler is read
    closure = import_closure(tmp_path / "fn" / "handler.py", tmp_path / "shared", package="pkg")
    # Then it holds the modules imported (relatively, lazily, through a sibling) with their packages, and no more
    assert set(closure) == {"pkg", "pkg.core", "pkg.core.a", "pkg.core.b", "pkg.core.c", "pkg.lazy", "pkg.beside"}
    assert closure["pkg.core"] == tmp_path / "shared" / "pkg" / "core" / "__init__.py"
