"""Scores for the decide function: lapse risk, purchase propensity and product recommendations.

A model directory holds joblib files and a ``manifest.json`` naming each file with its sha256 and the
library versions it was trained with (``nextbest models train`` writes both). joblib files are pickles —
loading one runs code — so :meth:`Models.load` hashes every file and compares the installed numpy,
scipy, scikit-learn and joblib with the manifest *before* unpickling anything, and refuses the whole set
with a :class:`ModelError` that says what differed.

The purchase-timing model answers "no purchase within ``h`` days?" for any ``h`` (the horizon is one of
its inputs, monotone by construction): lapse risk is its answer at the manifest's horizon, purchase
propensity is one minus its answer at 30 days. One model for both keeps them consistent (a customer cannot
be likelier to buy within 30 days than within 90) and costs one prediction call per batch.

Only numpy and joblib are imported, and only when models are loaded; only decide imports this module.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from nextbest.core.features import FEATURES, features, history_of
from nextbest.core.profiles import AFFINITY_EPOCH, AFFINITY_HALF_LIFE, Profile

MANIFEST = "manifest.json"
FORMAT = 1
PROPENSITY_DAYS = 30
LIBRARIES = ("numpy", "scipy", "scikit-learn", "joblib")


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
    """Versions of the libraries the model set was built with, as installed here (read from package
    metadata: scoring never imports scipy or scikit-learn, see :class:`Logit`)."""
    from importlib.metadata import version

    return {lib: version(lib) for lib in LIBRARIES}


def verify(directory: Path) -> dict[str, Any]:
    """The manifest of ``directory`` once every file it names matches its hash and every library its
    version; raises :class:`ModelError` otherwise. Nothing is unpickled here."""
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
                "refusing to unpickle a file that is not the one trained"
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
    out of the function; training checks that it reproduces scikit-learn's probabilities.
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
        self.items: list[str] = list(recommender["items"])
        self.similarity = np.asarray(recommender["similarity"], dtype=np.float64)
        self.popularity = np.asarray(recommender["popularity"], dtype=np.float64)
        self.index = {item: i for i, item in enumerate(self.items)}
        by_file = {name: meta["sha256"][:12] for name, meta in manifest["files"].items()}
        self.versions = {model: by_file[meta["file"]] for model, meta in manifest["models"].items()}
        if list(manifest["features"]) != [*FEATURES, "horizon_days"]:
            raise ModelError("the model set was trained on other features than this code computes; retrain it")

    @classmethod
    def load(cls, directory: Path) -> Models:
        """Verify then load the set in ``directory`` (see :func:`verify`)."""
        import joblib

        directory = Path(directory)
        manifest = verify(directory)
        models = manifest["models"]
        try:
            timing = joblib.load(directory / models["lapse"]["file"])
            recommender = joblib.load(directory / models["recommendations"]["file"])
        except KeyError as error:
            raise ModelError(f"{directory}: the manifest has no {error} model") from None
        return cls(manifest, timing, recommender)

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
