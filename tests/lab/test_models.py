"""The models on real data (CDNOW, read from the cache `make data` fills) and the default set's provenance."""

import csv
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from nextbest.core.features import FEATURES, OrderLog
from nextbest_lab import models

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report():
    """Calibration = the first 39 weeks of CDNOW, holdout = the next 39 (Fader, Hardie & Lee's split)."""
    return models.evaluate(models.cdnow_transactions(), datetime(1997, 10, 1, tzinfo=UTC), 273)


def test_on_cdnow_the_lapse_model_ranks_better_than_recency_and_bgnbd_and_is_better_calibrated(report):
    lapse = report["lapse"]
    assert report["customers"] == 2357
    assert lapse["model"]["auc"] > lapse["recency"]["auc"]
    assert lapse["model"]["auc"] > lapse["bgnbd_expected_purchases"]["auc"]
    assert lapse["model"]["average_precision"] > lapse["bgnbd_expected_purchases"]["average_precision"]
    assert lapse["model"]["brier"] < lapse["bgnbd_p_no_purchase"]["brier"]
    # BG/NBD gives a customer with no repeat purchase P(alive) = 1 (no evidence they left), so 1 - P(alive)
    # ranks one-time buyers as certain to stay: worse than random
    assert lapse["bgnbd_1_minus_p_alive"]["auc"] < 0.5


def test_bgnbd_baseline_recovers_the_published_cdnow_parameters(report):
    # Fader, Hardie & Lee (2005), CDNOW sample, weeks: r=0.243, alpha=4.414, a=0.793, b=2.426
    params = report["bgnbd_params"]
    assert params["r"] == pytest.approx(0.243, abs=0.01)
    assert params["alpha"] == pytest.approx(4.414, rel=0.05)
    assert params["a"] == pytest.approx(0.793, rel=0.05)
    assert params["b"] == pytest.approx(2.426, rel=0.05)


def test_propensity_beats_recency_on_cdnow(report):
    assert report["propensity_30d"]["model"]["auc"] > report["propensity_30d"]["recency"]["auc"]


def test_the_committed_default_set_is_what_training_produces(tmp_path):
    manifest = models.train_default(tmp_path / "models", data=tmp_path)
    committed = json.loads((ROOT / "models" / "manifest.json").read_text())
    assert manifest["files"] == committed["files"]  # CDNOW is pinned, the simulator seeded, the files byte-stable
    assert manifest["training"]["transactions"] == committed["training"]["transactions"]
    from nextbest.decide.scoring import Models
    from nextbest_lab.simulator import CATALOGUE

    shipped = Models.load(ROOT / "models")
    assert set(shipped.items) == {sku for sku, *_ in CATALOGUE}  # recommends the demo shop's catalogue


def test_train_then_score_a_csv_never_reads_past_as_of(tmp_path):
    rows = [t for t in models.cdnow_transactions() if t.at < datetime(1998, 1, 1, tzinfo=UTC)]
    source = models.write_transactions(tmp_path / "t.csv", rows)
    manifest = models.train(source, models.parse_time("1997-12-01"), 60, tmp_path / "m")
    assert manifest["training"]["window"][1] == "1997-12-01"
    assert 60 in manifest["training"]["horizons_days"]
    count = models.score_file(tmp_path / "m", source, models.parse_time("1997-12-01"), tmp_path / "s.csv")
    with (tmp_path / "s.csv").open() as f:
        scored = list(csv.DictReader(f))
    assert count == len(scored) == len({t.customer_id for t in rows if t.at < datetime(1997, 12, 1, tzinfo=UTC)})
    assert all(0 < float(r["lapse_risk"]) < 1 and 0 < float(r["purchase_propensity"]) < 1 for r in scored)


def test_training_refuses_a_horizon_the_data_cannot_label(tmp_path):
    rows = [t for t in models.cdnow_transactions() if t.at < datetime(1997, 2, 1, tzinfo=UTC)]
    source = models.write_transactions(tmp_path / "t.csv", rows)
    with pytest.raises(ValueError, match="too short"):
        models.train(source, models.parse_time("1997-02-01"), 90, tmp_path / "m")


@pytest.fixture(scope="module")
def unseen():
    """20 random halves of the sample's customers: train on one half's past, score the other's 39 weeks."""
    return models.generalisation(models.cdnow_transactions(), datetime(1997, 10, 1, tzinfo=UTC), 273, splits=20)


def test_on_customers_it_never_saw_the_lapse_model_still_ranks_better_than_recency_and_bgnbd(unseen):
    auc = unseen["lapse_auc"]
    assert unseen["customers"] == 2357 and all(len(v) == 20 for v in unseen["per_split"].values())
    for baseline in ("recency", "bgnbd_expected_purchases"):
        assert auc[baseline]["model_minus_this"] > 0, baseline  # paired, same halves
        assert auc[baseline]["model_wins"] > 0.5, baseline
    assert 0 < auc["model"]["sd"] < 0.03  # halves differ, and no split is a fluke far from the others


def test_the_backtest_learns_as_much_as_the_holdouts_own_labels_would_teach(unseen):
    # the same estimator fitted to the training half's labels from after the split (not shippable): the
    # model, which only saw cut-offs before it, ranks unseen customers about as well, so what the lapse
    # model lacks to go higher is information, not fit
    auc = unseen["lapse_auc"]
    assert abs(auc["model"]["mean"] - auc["hindsight_ceiling"]["mean"]) < 0.005


def test_generalisation_trains_on_one_half_of_the_customers_and_scores_the_other():
    # customer "a" bought once; "b" bought weekly: the backtest's customer column must keep their rows apart
    start = datetime(2026, 1, 1, tzinfo=UTC)
    logs = {
        "a": OrderLog([(start, Decimal(10))]),
        "b": OrderLog([(start + timedelta(days=7 * k), Decimal(10)) for k in range(40)]),
    }
    examples = models.backtest(logs, start + timedelta(days=300), [30, 90])
    orders = examples.x[:, FEATURES.index("orders")]
    assert set(examples.customer) == {0, 1}
    assert (orders[examples.customer == 0] == 1).all()
    assert (orders[examples.customer == 1] > 1).all()


def test_evaluate_customer_splits_prints_and_writes_the_unseen_customer_table(tmp_path, capsys):
    from nextbest_cli.main import main

    code = main(["models", "evaluate", "--dataset", "cdnow", "--customer-splits", "2", "--json", str(tmp_path / "r")])
    report = json.loads((tmp_path / "r").read_text())
    assert code == 0 and report["splits"] == 2 and len(report["per_split"]["model"]) == 2
    assert set(report["lapse_auc"]) >= {"model", "recency", "bgnbd_expected_purchases", "hindsight_ceiling"}
    assert "unseen customers" in capsys.readouterr().out


def test_the_quantity_experiment_scores_the_shipped_backtest_plus_its_own_columns():
    # docs/experiments/lapse_quantity.py, which README's quantity table comes from, must compare against what
    # the package trains: its backtest's first columns are the package's rows, its labels and customers too
    import importlib.util

    spec = importlib.util.spec_from_file_location("lapse_quantity", ROOT / "docs" / "experiments" / "lapse_quantity.py")
    assert spec and spec.loader
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    shop = experiment.Shop()
    as_of = datetime(1997, 10, 1, tzinfo=UTC)
    x, y, who = shop.backtest(as_of, [90, 273])
    shipped = models.backtest(models.order_logs(models.cdnow_transactions()), as_of, [90, 273])
    assert np.array_equal(x[:, : len(FEATURES) + 1], shipped.x, equal_nan=True)
    assert np.array_equal(y, shipped.y) and np.array_equal(who, shipped.customer)
    assert x.shape[1] == len(experiment.NAMES) and np.isfinite(x[:, len(FEATURES) + 1 :]).all()
    assert experiment.CANDIDATES["base"] == (models.MODEL_INPUTS, 1.0)
