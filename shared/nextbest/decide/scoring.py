"""Scores for the decide function: lapse risk, purchase propensity and product recommendations.

A model directory holds ``.npz`` archives of arrays (numbers, and product ids as fixed-width strings) and
a ``manifest.json`` naming each file with its sha256, the numpy it was written with and how it was trained
(``nextbest models train`` writes them). They are read with ``allow_pickle=False``: numpy then refuses an
array of Python objects instead of unpickling it, so whatever a file holds, loading it runs no code. A hash
in a manifest anyone can rewrite is no defence against that; it only says the file is the one trained.
:meth:`Models.load` checks the hashes and the numpy version first and refuses the whole set with a
:class:`ModelError` that says what differed, or which file is not data.

The purchase-timing model answers "no purchase within ``h`` days?" for any ``h`` (the horizon is one of
its inputs, monotone by construction): lapse risk is its answer at the manifest's horizon, purchase
propensity is one minus its answer at 30 days. One model for both keeps them consistent (a customer cannot
be likelier to buy within 30 days than within 90) and costs one prediction call per batch.

Only numpy is imported, and only when models are loaded; only decide imports this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from nextbest.core.features import FEATURES, features, history_of
from nextbest.core.profiles import AFFINITY_EPOCH, AFFINITY_HALF_LIFE, Profile

MANIFEST = "manifest.json"
FORMAT = 2
"""1: joblib pickles (refused: loading a pickle runs code); 2: ``.npz`` archives read without pickle."""
PROPENSITY_DAYS = 30
LIBRARIES = ("numpy",)
"""What scoring reads the files and computes with; the manifest's version of each must be the installed one."""
TIMING_ARRAYS = ("log_columns", "kept_columns", "mean", "scale", "powers", "mean2", "scale2", "coef", "intercept")
RECOMMENDER_ARRAYS = ("items", "similarity", "popularity")


class ModelError(RuntimeError):
    """A model directory that must not be used: missing, tampered with, or built for other libraries."""


class Scores(BaseModel):
    model_config = ConfigDict(frozen=True)

    lapse_risk: float
    purchase_propensity: float
    recommendations: list[str]
    """Product ids, best first."""
    model_versions: dict[str, str]
    """Model name -> first 12 hex digits of its file's sha256, for the decision record."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed_versions() -> dict[str, str]:
    """Versions of the libraries scoring needs, as installed here (read from package metadata)."""
    from importlib.metadata import version

    return {lib: version(lib) for lib in LIBRARIES}


def read_arrays(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The named arrays of an ``.npz`` model file, read as data only.

    ``allow_pickle=False`` makes numpy refuse a pickle, or an array of objects inside the archive, instead
    of unpickling it; anything else that is not an archive of plain arrays is refused too.
    """
    import numpy as np

    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("an .npy array, not an .npz archive")
        with archive:
            missing = [name for name in names if name not in archive.files]
            if missing:
                raise ModelError(f"{path}: no {', '.join(missing)} array; retrain it")
            return {name: archive[name] for name in names}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ModelError(f"{path}: not a data-only model file ({error}); refusing it") from None


def verify(directory: Path) -> dict[str, Any]:
    """The manifest of ``directory`` once every file it names matches its hash and every library its
    version; raises :class:`ModelError` otherwise. No model file is read beyond its hash here."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"{directory}: no {MANIFEST}; train a model set with `nextbest models train`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise ModelError(f"{manifest_path}: not valid JSON ({error})") from None
    if manifest.get("format") != FORMAT:
        raise ModelError(f"{manifest_path}: format {manifest.get('format')!r}, this code reads format {FORMAT}")
    files = manifest.get("files") or {}
    for name, meta in files.items():
        path = directory / name
        if Path(name).name != name:
            raise ModelError(f"{manifest_path}: file name {name!r} must not contain a directory")
        if not path.is_file():
            raise ModelError(f"{directory}: {name} is listed in the manifest but missing")
        actual = sha256_of(path)
        if actual != meta.get("sha256"):
            raise ModelError(
                f"{path}: sha256 {actual} does not match the manifest's {meta.get('sha256')}; "
                "refusing a file that is not the one trained"
            )
    for model, meta in (manifest.get("models") or {}).items():
        if meta.get("file") not in files:
            raise ModelError(f"{manifest_path}: model {model!r} names {meta.get('file')!r}, which has no hash")
    wanted = manifest.get("libraries") or {}
    installed = installed_versions()
    differ = {lib: (wanted.get(lib), installed[lib]) for lib in LIBRARIES if wanted.get(lib) != installed[lib]}
    if differ:
        detail = ", ".join(f"{lib} {want} (trained) vs {have} (installed)" for lib, (want, have) in differ.items())
        raise ModelError(f"{directory}: built for other library versions: {detail}; retrain or rebuild the layer")
    return manifest


class Logit:
    """The purchase-timing model as trained (log inputs, standardised, pairwise products, standardised,
    logistic), evaluated with numpy alone from the fitted arrays the training exported.

    Scoring this way keeps scikit-learn and scipy (over a second to import, most of decide's cold start)
    out of the function and its layer; training checks that it reproduces scikit-learn's probabilities.
    """

    def __init__(self, arrays: dict[str, Any]) -> None:
        import numpy as np

        self.log_columns = np.asarray(arrays["log_columns"], dtype=np.intp)
        self.kept_columns = np.asarray(arrays["kept_columns"], dtype=np.intp)
        self.mean, self.scale = np.asarray(arrays["mean"]), np.asarray(arrays["scale"])
        self.powers = np.asarray(arrays["powers"])
        self.mean2, self.scale2 = np.asarray(arrays["mean2"]), np.asarray(arrays["scale2"])
        self.coef, self.intercept = np.asarray(arrays["coef"]), float(arrays["intercept"])

    def predict_proba(self, x: Any) -> Any:
        """``[[1 - p, p]]`` per row like scikit-learn, ``p`` = P(no order within the row's horizon)."""
        import numpy as np

        z = np.column_stack([np.log1p(x[:, self.log_columns]), x[:, self.kept_columns]])
        z = (z - self.mean) / self.scale
        terms = np.prod(z[:, None, :] ** self.powers[None, :, :], axis=2)
        terms = (terms - self.mean2) / self.scale2
        p = 1.0 / (1.0 + np.exp(-(terms @ self.coef + self.intercept)))
        return np.column_stack([1.0 - p, p])


class Models:
    """A verified model set, ready to score profiles."""

    def __init__(self, manifest: dict[str, Any], timing: Any, recommender: dict[str, Any]) -> None:
        import numpy as np

        self.manifest = manifest
        self.timing = Logit(timing)
        self.horizon_days = float(manifest["models"]["lapse"]["horizon_days"])
        self.priors = manifest["priors"]
        self.items: list[str] = [str(item) for item in recommender["items"]]
        self.similarity = np.asarray(recommender["similarity"], dtype=np.float64)
        self.popularity = np.asarray(recommender["popularity"], dtype=np.float64)
        self.index = {item: i for i, item in enumerate(self.items)}
        k = len(self.items)
        if self.similarity.shape != (k, k) or self.popularity.shape != (k,):
            raise ValueError(f"{k} items, similarity {self.similarity.shape}, popularity {self.popularity.shape}")
        by_file = {name: meta["sha256"][:12] for name, meta in manifest["files"].items()}
        self.versions = {model: by_file[meta["file"]] for model, meta in manifest["models"].items()}
        if list(manifest["features"]) != [*FEATURES, "horizon_days"]:
            raise ModelError("the model set was trained on other features than this code computes; retrain it")

    @classmethod
    def load(cls, directory: Path) -> Models:
        """Verify then load the set in ``directory`` (see :func:`verify` and :func:`read_arrays`)."""
        directory = Path(directory)
        manifest = verify(directory)
        models = manifest["models"]
        try:
            timing = read_arrays(directory / models["lapse"]["file"], TIMING_ARRAYS)
            recommender = read_arrays(directory / models["recommendations"]["file"], RECOMMENDER_ARRAYS)
        except KeyError as error:
            raise ModelError(f"{directory}: the manifest has no {error} model") from None
        try:
            return cls(manifest, timing, recommender)
        except (ValueError, TypeError) as error:  # arrays of the wrong kind or shape
            raise ModelError(f"{directory}: the model arrays do not fit together ({error}); retrain it") from None

    def score(
        self, profile: Profile, now: datetime, n_recommendations: int = 5, exclude: Iterable[str] = frozenset()
    ) -> Scores:
        return self._score([profile], now, n_recommendations, set(exclude))[0]

    def score_many(self, profiles: list[Profile], now: datetime, n_recommendations: int = 5) -> list[Scores]:
        """Score a batch with one prediction call (what keeps 1,000 profiles within milliseconds)."""
        return self._score(profiles, now, n_recommendations, set())

    def _score(self, profiles: list[Profile], now: datetime, n: int, exclude: set[str]) -> list[Scores]:
        import numpy as np

        if not profiles:
            return []
        rows, known = [], []
        for i, profile in enumerate(profiles):
            if profile.order_count:
                f = features(history_of(profile), now)
                rows += [[*f, self.horizon_days], [*f, float(PROPENSITY_DAYS)]]
                known.append(i)
        lapse = [float(self.priors["lapse"])] * len(profiles)
        propensity = [float(self.priors["propensity"])] * len(profiles)
        if rows:
            p = self.timing.predict_proba(np.asarray(rows, dtype=np.float64))[:, 1]
            for j, i in enumerate(known):
                lapse[i] = float(p[2 * j])
                propensity[i] = 1.0 - float(p[2 * j + 1])
        recommendations = self._recommend(profiles, now, n, exclude)
        return [
            Scores(
                lapse_risk=lapse[i],
                purchase_propensity=propensity[i],
                recommendations=recommendations[i],
                model_versions=self.versions,
            )
            for i in range(len(profiles))
        ]

    def _recommend(self, profiles: list[Profile], now: datetime, n: int, exclude: set[str]) -> list[list[str]]:
        """Items that co-occur with what each customer likes (decayed affinities), then popular ones.

        A customer with no known affinity (a cold start) gets the most popular items; a warm one gets the
        related items first, ties and the remainder filled by popularity.
        """
        import numpy as np

        k = len(self.items)
        if k == 0 or n <= 0:
            return [[] for _ in profiles]
        affinity = np.zeros((len(profiles), k))
        factor = 2 ** (-(now - AFFINITY_EPOCH) / AFFINITY_HALF_LIFE)  # as Profile.affinities decays
        for r, profile in enumerate(profiles):
            for product, value in profile.products.items():
                j = self.index.get(product)
                if j is not None:
                    affinity[r, j] = value * factor
        related = affinity @ self.similarity
        top = related.max(axis=1, keepdims=True)
        relevance = np.divide(related, top, out=np.zeros_like(related), where=top > 0)
        score = relevance + 1e-3 * self.popularity / max(float(self.popularity.max()), 1e-12)
        if exclude:
            for item in exclude:
                j = self.index.get(item)
                if j is not None:
                    score[:, j] = -math.inf
        order = np.argsort(-score, axis=1, kind="stable")[:, : min(n, k)]
        return [[self.items[j] for j in row if score[r, j] > -math.inf] for r, row in enumerate(order)]


def load_models(directory: str | Path | None) -> Models | None:
    """The verified model set in ``directory``, or ``None`` when no directory is configured or present
    (decide then falls back to its rules). A directory that exists but fails verification raises."""
    if directory is None or str(directory) == "":
        return None
    path = Path(directory)
    if not path.exists():
        return None
    return Models.load(path)
