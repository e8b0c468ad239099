"""Public evaluation data, fetched from PyPI by pinned hash and cached under ``.nextbest/data``.

Two real datasets ship inside Python packages whose runtime dependencies we do not want (``lifetimes``
needs autograd and an old pandas; ``obp`` needs torch). We only need their data files, so we download the
exact distribution file PyPI serves, check its sha256, and extract the one file asked for. Nothing here is
imported by a Lambda function.
"""

from __future__ import annotations

import hashlib
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".nextbest" / "data"


@dataclass(frozen=True)
class Distribution:
    url: str
    sha256: str


LIFETIMES = Distribution(
    "https://files.pythonhosted.org/packages/c5/1f/ee6a471dcb5cb2f4dbc219023e07991f3b917875f9c8a5f5d77c00ddabca/"
    "Lifetimes-0.11.3-py3-none-any.whl",
    "261e3dc89977c2b60767ca6728aaa29d429de0c814635070a749c36555895da8",
)
OBP = Distribution(
    "https://files.pythonhosted.org/packages/5c/c8/3b511884a171091638d00a4255f11a635f33e0600094c255ec820f7a052f/"
    "obp-0.5.7.tar.gz",
    "3060d67fedfcfadf1e7a6f2608987f74412b5eb74d2c567edeb147595c68f2a0",
)


def _download(dist: Distribution) -> Path:
    path = CACHE / dist.url.rsplit("/", 1)[1]
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == dist.sha256:
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(dist.url, timeout=120) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != dist.sha256:
        raise RuntimeError(f"{path.name}: sha256 {digest} does not match the pinned {dist.sha256}")
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def member(dist: Distribution, name: str) -> Path:
    """The file ``name`` from inside the distribution (a wheel or an sdist), extracted once."""
    target = CACHE / Path(dist.url).stem / name
    if target.exists():
        return target
    archive = _download(dist)
    target.parent.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            data = z.read(name)
    else:
        with tarfile.open(archive) as t:
            found = t.extractfile(name)
            if found is None:
                raise FileNotFoundError(name)
            data = found.read()
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def cdnow_sample() -> Path:
    """CDNOW purchase log sample (2,357 customers, 1997-01..1998-06): ``customer_id date(YYYYMMDD) quantity
    amount`` per line, whitespace separated, as shipped in ``lifetimes``."""
    return member(LIFETIMES, "lifetimes/datasets/CDNOW_sample.txt")


def open_bandit(policy: str, campaign: str = "all") -> Path:
    """Open Bandit Dataset sample (ZOZOTOWN) logged by ``policy`` (``random`` or ``bts``), as shipped in obp."""
    return member(OBP, f"obp-0.5.7/obp/dataset/obd/{policy}/{campaign}/{campaign}.csv")


def bts_prior() -> Path:
    """The Beta prior (alpha, beta per item and campaign) ZOZOTOWN's Bernoulli TS started from, as shipped in obp:
    what offline evaluation of that policy needs to reproduce its action distribution."""
    return member(OBP, "obp-0.5.7/obp/policy/conf/prior_bts.yaml")


if __name__ == "__main__":
    for path in (cdnow_sample(), open_bandit("random"), open_bandit("bts")):
        print(path.relative_to(ROOT))
