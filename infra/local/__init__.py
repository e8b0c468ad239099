"""The local emulation of the synthesized stack (``infra.local.emulator``), and the context it is synthesized with."""

from __future__ import annotations

from pathlib import Path

CONTEXT = {"sender": "nextbest@example.com", "siteUrl": "https://shop.example"}
"""What the emulation, the demo and the tests deploy with: the deployable app has no default for these (a real
stack must name its own sender and shop), so they are given here, explicitly."""


def synthesize(outdir: Path, context: dict[str, str] | None = None, campaigns: Path | None = None) -> Path:
    """The stack as the emulation runs it: ``CONTEXT``, and any other context given, synthesized into ``outdir``
    (with the campaigns of ``campaigns``, if given, instead of the repository's)."""
    from infra.app import synthesize as synth

    return synth(outdir, CONTEXT | (context or {}), campaigns)
