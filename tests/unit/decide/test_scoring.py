"""The model directory is verified, and read as data only (never unpickled); scores rank customers sensibly."""

import io
import json
import pickle
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from nextbest.core.profiles import AFFINITY_EPOCH, AFFINITY_HALF_LIFE, Order, Profile
from nextbest.decide.scoring import (
    MANIFEST,
    RECOMMENDER_ARRAYS,
    TIMING_ARRAYS,
    ModelError,
    Models,
    load_models,
    sha256_of,
)

DEFAULT = Path(__file__).resolve().parents[3] / "models"
NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def models() -> Models:
    return Models.load(DEFAULT)


def buyer(key: str, days_ago: list[int], products: dict[str, float] | None = None) -> Profile:
    times = sorted(NOW - timedelta(days=d) for d in days_ago)
    orders = [Order(order_id=f"o{i}", at=t, total=Decimal("30.00")) for i, t in enumerate(times)]
    grown = 2 ** ((NOW - AFFINITY_EPOCH) / AFFINITY_HALF_LIFE)  # stored sums are scaled to the epoch
    return Profile(
        key=key,
        orders=orders,
        order_count=len(orders),
        revenue=sum((o.total for o in orders), Decimal(0)),
        first_order_at=times[0] if times else None,
        last_order_at=times[-1] if times else None,
        products={k: v * grown for k, v in (products or {}).items()},
    )


def copy_of_default(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(DEFAULT, target)
    return target


class Payload:
    """A pickle that runs code when loaded: it touches its witness file."""

    def __init__(self, witness: Path) -> None:
        self.witness = witness

    def __reduce__(self):
        return (Path.touch, (self.witness,))


def a_bare_pickle(witness: Path) -> bytes:
    return pickle.dumps(Payload(witness))


def an_npz_of_pickled_objects(witness: Path) -> bytes:
    """The archive format the models use, its array of objects pickled inside (numpy's save allows that)."""
    buffer = io.BytesIO()
    array = np.empty(1, dtype=object)
    array[0] = Payload(witness)
    np.savez(buffer, **dict.fromkeys([*TIMING_ARRAYS, *RECOMMENDER_ARRAYS], array))  # every array a loader wants
    return buffer.getvalue()


def test_a_loyal_recent_buyer_is_less_at_risk_and_likelier_to_buy_than_a_long_silent_one_time_buyer(models):
    loyal = models.score(buyer("c:loyal", [3, 20, 41, 60, 85, 120]), NOW)
    silent = models.score(buyer("c:silent", [300]), NOW)
    assert loyal.lapse_risk < silent.lapse_risk
    assert loyal.purchase_propensity > silent.purchase_propensity
    for s in (loyal, silent):
        assert 0 < s.lapse_risk < 1 and 0 < s.purchase_propensity < 1
        # a purchase within 30 days implies one within the 90-day lapse horizon
        assert s.purchase_propensity <= 1 - s.lapse_risk + 1e-9


def test_scores_name_the_model_versions_for_the_decision_record(models):
    versions = models.score(buyer("c:a", [10]), NOW).model_versions
    manifest = json.loads((DEFAULT / MANIFEST).read_text())
    assert set(versions) == {"lapse", "propensity", "recommendations"}
    assert versions["lapse"] == manifest["files"]["timing.npz"]["sha256"][:12]


def test_a_cold_customer_gets_the_most_popular_products_and_a_warm_one_related_products(models):
    cold = models.score(buyer("c:cold", []), NOW, n_recommendations=3)
    assert cold.recommendations == models.items[:3]  # items are stored most popular first
    assert cold.lapse_risk == models.priors["lapse"]
    liked = models.items[-1]
    warm = models.score(buyer("c:warm", [5], {liked: 5.0}), NOW, n_recommendations=3, exclude={models.items[0]})
    assert len(warm.recommendations) == 3 and models.items[0] not in warm.recommendations
    related = models.similarity[models.index[liked]]
    assert related[models.index[warm.recommendations[0]]] == max(
        related[j] for j in range(len(models.items)) if models.items[j] != models.items[0]
    )


def test_scoring_many_gives_what_scoring_each_gives(models):
    people = [buyer(f"c:{i}", [3 * i + 1, 40 + i], {models.items[i % 5]: 1.0}) for i in range(8)] + [buyer("c:x", [])]
    many, each = models.score_many(people, NOW), [models.score(p, NOW) for p in people]
    assert [s.recommendations for s in many] == [s.recommendations for s in each]
    assert [s.lapse_risk for s in many] == pytest.approx([s.lapse_risk for s in each], abs=1e-12)
    assert [s.purchase_propensity for s in many] == pytest.approx([s.purchase_propensity for s in each], abs=1e-12)


def test_no_directory_means_no_models_so_decide_falls_back_to_rules(tmp_path):
    assert load_models(None) is None
    assert load_models(tmp_path / "absent") is None


def test_a_file_that_does_not_match_its_hash_is_refused_before_it_is_read(tmp_path):
    directory = copy_of_default(tmp_path)
    witness = tmp_path / "pwned"
    (directory / "timing.npz").write_bytes(a_bare_pickle(witness))
    with pytest.raises(ModelError, match=r"timing\.npz: sha256 .* does not match"):
        Models.load(directory)
    assert not witness.exists()


@pytest.mark.parametrize("payload", [a_bare_pickle, an_npz_of_pickled_objects])
def test_a_model_file_holding_a_pickle_is_refused_even_when_the_manifest_hashes_it_and_its_code_never_runs(
    tmp_path, payload
):
    # Given a model directory whose files were replaced and whose manifest was rewritten to match them
    directory = copy_of_default(tmp_path)
    witness = tmp_path / "pwned"
    manifest = json.loads((directory / MANIFEST).read_text())
    for name, meta in manifest["files"].items():
        (directory / name).write_bytes(payload(witness))
        meta["sha256"] = sha256_of(directory / name)
    (directory / MANIFEST).write_text(json.dumps(manifest))

    # When decide loads it, then it is refused, and the code in the pickle never ran
    with pytest.raises(ModelError, match="not a data-only model file"):
        load_models(directory)
    assert not witness.exists()


def test_models_built_for_other_library_versions_are_refused_with_the_versions_named(tmp_path):
    directory = copy_of_default(tmp_path)
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["libraries"]["numpy"] = "1.26.4"
    (directory / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"numpy 1\.26\.4 \(trained\) vs"):
        load_models(directory)


def test_a_directory_without_manifest_or_with_an_unlisted_model_file_is_refused(tmp_path):
    directory = copy_of_default(tmp_path)
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["models"]["lapse"]["file"] = "other.npz"
    (directory / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="which has no hash"):
        Models.load(directory)
    (directory / MANIFEST).unlink()
    with pytest.raises(ModelError, match=r"no manifest\.json"):
        Models.load(directory)


def test_the_committed_manifest_hashes_the_committed_files():
    manifest = json.loads((DEFAULT / MANIFEST).read_text())
    assert {name: sha256_of(DEFAULT / name) for name in manifest["files"]} == {
        name: meta["sha256"] for name, meta in manifest["files"].items()
    }
