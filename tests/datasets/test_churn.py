"""The synthetic churn data, its splits, the rank AUC and the 51-model repository build."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmeperf.datasets import churn
from mmeperf.errors import ConfigurationError, InvalidModelNameError


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return churn.generate()


@pytest.fixture(scope="module")
def splits(data: pd.DataFrame) -> churn.ChurnSplits:
    return churn.prepare(data)


def test_generate_has_the_classic_columns_and_all_states(data: pd.DataFrame) -> None:
    assert tuple(data.columns) == churn.COLUMNS and len(churn.COLUMNS) == 21
    assert len(data) == 5000
    assert len(churn.STATES) == 51 and len(set(churn.STATES)) == 51 and "DC" in churn.STATES
    assert set(data["State"]) == set(churn.STATES)
    assert set(data[churn.LABEL]) == {"True.", "False."}
    assert set(data["Int'l Plan"]) == set(data["VMail Plan"]) == {"yes", "no"}
    assert set(data["Area Code"]) == {408, 415, 510}
    assert data["Phone"].str.fullmatch(r"\d{3}-\d{4}").all()
    assert 0.10 < (data[churn.LABEL] == "True.").mean() < 0.20
    assert (data.loc[data["VMail Plan"] == "no", "VMail Message"] == 0).all()


def test_charges_follow_minutes(data: pd.DataFrame) -> None:
    for period, rate in churn.RATES.items():
        expected = (data[f"{period} Mins"] * rate).round(2)
        np.testing.assert_allclose(data[f"{period} Charge"], expected, atol=0.0051)
    assert (data[[c for c in data.columns if "Mins" in c or "Calls" in c]] >= 0).all().all()


def test_generate_is_deterministic_per_seed() -> None:
    a, b, c = churn.generate(600, seed=7), churn.generate(600, seed=7), churn.generate(600, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    with pytest.raises(ConfigurationError, match="at least 510"):
        churn.generate(100)


def test_churn_depends_on_the_features(data: pd.DataFrame) -> None:
    churned = data[churn.LABEL] == "True."
    many_calls = data["CustServ Calls"] >= 4
    assert churned[many_calls].mean() > 2 * churned[~many_calls].mean()
    assert churned[data["Int'l Plan"] == "yes"].mean() > churned[data["Int'l Plan"] == "no"].mean()
    assert data.loc[churned, "Day Mins"].mean() > data.loc[~churned, "Day Mins"].mean() + 10


def test_prepare_makes_17_features_and_the_test_file(data: pd.DataFrame, splits: churn.ChurnSplits) -> None:
    assert len(churn.FEATURES) == 17
    assert not {"State", "Area Code", "Phone", churn.LABEL} & set(churn.FEATURES)
    test = splits.test
    assert tuple(test.columns) == churn.TEST_COLUMNS == ("CustomerID", "Churn?", "State", *churn.FEATURES)
    assert set(test[churn.LABEL]) == {0, 1} and set(test["Int'l Plan"]) == {0, 1}
    # 10% held out, per state.
    assert abs(len(test) - 500) <= 20
    per_state = test["State"].value_counts()
    totals = data["State"].value_counts()
    assert set(per_state.index) == set(churn.STATES)
    assert all(abs(per_state[s] - 0.1 * totals[s]) <= 2 for s in churn.STATES)
    # The rows are the original rows: CustomerID points back into the generated frame.
    row = test.iloc[0]
    original = data.iloc[int(row["CustomerID"])]
    assert original["State"] == row["State"] and original["Day Mins"] == row["Day Mins"]


def test_state_splits_partition_the_training_rows(data: pd.DataFrame, splits: churn.ChurnSplits) -> None:
    assert set(splits.states) == set(churn.STATES)
    total = len(splits.test)
    for state, split in splits.states.items():
        assert tuple(split.train.columns) == (churn.LABEL, *churn.FEATURES)
        n = len(split.train) + len(split.validation)
        assert n + len(splits.test_for(state)) == (data["State"] == state).sum()
        assert abs(len(split.validation) - 0.1 * n) <= 2
        assert split.train[churn.LABEL].sum() > 0
        total += n
    assert total == len(data)


def test_splits_are_disjoint() -> None:
    # Make row content unique so disjointness can be checked on values.
    df = churn.generate(1000, seed=3)
    df["Account Length"] = np.arange(len(df))
    s = churn.prepare(df)
    test_ids = set(s.test["Account Length"])
    for split in s.states.values():
        train, val = set(split.train["Account Length"]), set(split.validation["Account Length"])
        assert not (train & val) and not (train & test_ids) and not (val & test_ids)


def test_prepare_refuses_other_frames(data: pd.DataFrame) -> None:
    with pytest.raises(ConfigurationError, match="missing"):
        churn.prepare(data.drop(columns=["Phone"]))
    bad = data.copy()
    bad[churn.LABEL] = "maybe"
    with pytest.raises(ConfigurationError, match="True"):
        churn.prepare(bad)


def test_roc_auc_matches_the_definition() -> None:
    assert churn.roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert churn.roc_auc(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert churn.roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert math.isnan(churn.roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))
    # Against the pairwise definition, ties counting one half.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200), 1)  # many ties
    pos, neg = scores[y == 1], scores[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert churn.roc_auc(y, scores) == pytest.approx(pairwise)


def test_model_name() -> None:
    assert churn.model_name("CA") == "churn-xgb-CA"
    assert churn.model_name("CA", template="m/{state}.v2") == "m/CA.v2"
    with pytest.raises(ConfigurationError):
        churn.model_name("CA", template="fixed")
    with pytest.raises(InvalidModelNameError):
        churn.model_name("CA", template="../{state}")


def test_train_state_models_learns(splits: churn.ChurnSplits) -> None:
    pytest.importorskip("xgboost")
    models = churn.train_state_models(splits, states=("CA", "TX", "NY"), rounds=5)
    assert set(models) == {"CA", "TX", "NY"}
    model = models["CA"]
    assert model.n_train == len(splits.states["CA"].train) and model.n_test == len(splits.test_for("CA"))
    assert model.booster.num_boosted_rounds() == 5 and model.booster.num_features() == 17
    with pytest.raises(ConfigurationError, match="states"):
        churn.train_state_models(splits, states=("XX",))


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> churn.ChurnBuild:
    pytest.importorskip("xgboost")
    return churn.build_churn_repository(tmp_path_factory.mktemp("churn") / "repo")


def test_build_writes_51_verified_models_that_learned(build: churn.ChurnBuild) -> None:
    repo = build.repository
    assert repo.names() == sorted(f"churn-xgb-{s}" for s in churn.STATES)
    assert {e.backend for e in repo} == {"xgboost"}
    assert repo.verify().ok
    # Held-out AUC per model; the median is clearly above chance.
    assert set(build.aucs) == set(repo.names())
    assert build.median_auc > 0.7
    assert sum(math.isnan(v) for v in build.aucs.values()) <= 5


def test_build_test_csv_is_what_load_tests_send(build: churn.ChurnBuild, tmp_path: Path) -> None:
    from mmeperf import get_backend

    test = pd.read_csv(build.test_csv)  # with a header row
    assert tuple(test.columns) == churn.TEST_COLUMNS
    assert Path(build.test_csv).parent == Path(build.repository.root)
    assert "churn_test" not in " ".join(build.repository.names())
    row = test[test["State"] == "CA"].iloc[[0]]
    # One CSV line without header, as the locustfile sends it, scored by the served artifact.
    line = row.loc[:, list(churn.FEATURES)].to_csv(header=False, index=False).encode()
    backend = get_backend("xgboost")
    folder = build.repository.fetch(churn.model_name("CA") + ".tar.gz", tmp_path)
    runner = backend.load(folder)
    served = runner.predict(backend.decode(line, "text/csv", runner))
    import xgboost

    expected = build.models["churn-xgb-CA"].booster.predict(
        xgboost.DMatrix(row.loc[:, list(churn.FEATURES)].to_numpy(np.float32))
    )
    np.testing.assert_allclose(served, expected, rtol=1e-6)


def test_build_refuses_to_overwrite_unless_asked(build: churn.ChurnBuild) -> None:
    from mmeperf.errors import ModelExistsError

    with pytest.raises(ModelExistsError):
        churn.build_churn_repository(build.repository.url, n_rows=600)
