"""The churn workflow's data and models: seeded synthetic telecom churn, splits, 51 per-state models.

Everything is generated from a seed (nothing downloaded), in the classic 21-column layout the
reference demo uses; churn depends on the features with a per-state twist, so models learn.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmeperf._deps import require
from mmeperf._types import Array, Layout, PathLike
from mmeperf.errors import ConfigurationError, ModelExistsError

if TYPE_CHECKING:
    from mmeperf.repository import ModelRepository

__all__ = [
    "COLUMNS",
    "FEATURES",
    "LABEL",
    "RATES",
    "STATES",
    "TEST_COLUMNS",
    "ChurnBuild",
    "ChurnSplits",
    "StateSplit",
    "TrainedModel",
    "build_churn_repository",
    "generate",
    "model_name",
    "prepare",
    "roc_auc",
    "train_state_models",
]

#: The 50 states and DC, as the State column spells them.
STATES: tuple[str, ...] = (
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID", "IL",
    "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE",
    "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT",
    "VA", "VT", "WA", "WI", "WV", "WY",
)
#: The label column; 'True.'/'False.' in generated data, 1/0 after :func:`prepare`.
LABEL = "Churn?"
#: The 21 columns of the classic churn data set, in its order.
COLUMNS: tuple[str, ...] = (
    "State", "Account Length", "Area Code", "Phone", "Int'l Plan", "VMail Plan",
    "VMail Message", "Day Mins", "Day Calls", "Day Charge", "Eve Mins", "Eve Calls",
    "Eve Charge", "Night Mins", "Night Calls", "Night Charge", "Intl Mins", "Intl Calls",
    "Intl Charge", "CustServ Calls", LABEL,
)
#: The 17 model inputs, in the order a CSV payload sends them.
FEATURES: tuple[str, ...] = tuple(
    c for c in COLUMNS if c not in ("State", "Area Code", "Phone", LABEL)
)
#: Columns of the held-out test file: id, label (1/0), state (picks the model), then FEATURES.
TEST_COLUMNS: tuple[str, ...] = ("CustomerID", LABEL, "State", *FEATURES)
#: Price per minute for each period: Charge = round(Mins * rate, 2), as in the classic data.
RATES: dict[str, float] = {"Day": 0.17, "Eve": 0.085, "Night": 0.045, "Intl": 0.27}
# Overall churn rate of the classic data set (about one customer in seven).
_CHURN_RATE = 0.145


def _state_twists(rng: np.random.Generator) -> dict[str, Array]:
    """Per-state differences: how much support calls and heavy usage drive churn, and a base offset."""
    n = len(STATES)
    return {
        "service": rng.uniform(0.4, 1.8, n),
        "usage": rng.uniform(0.4, 1.8, n),
        "offset": rng.normal(0.0, 0.35, n),
    }


def generate(n_rows: int = 5000, *, seed: int = 0) -> pd.DataFrame:
    """Synthetic churn data: ``n_rows`` customers in the 21 classic columns, same seed same data.

    Churn is drawn from a logistic model of the features: many customer-service calls, heavy
    day usage (high charges), an international plan with heavy international use raise it; a
    voicemail plan lowers it. Each state weighs service and usage differently and has its own
    base rate, so one model per state is worth having. About 14.5% of customers churn.
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < len(STATES) * 10:
        raise ConfigurationError(
            f"Expected n_rows as an integer of at least {len(STATES) * 10} (ten per state), "
            f"received {n_rows!r}"
        )
    rng = np.random.default_rng(seed)
    n_states = len(STATES)
    # Every state present, unevenly sized like real customer bases.
    weights = rng.uniform(0.6, 1.4, n_states)
    base = np.repeat(np.arange(n_states), 5)  # at least 5 rows per state
    extra = rng.choice(n_states, size=n_rows - base.size, p=weights / weights.sum())
    state_idx = rng.permutation(np.concatenate([base, extra]))

    def normal(mean: float, sd: float, low: float, high: float) -> Array:
        return np.clip(rng.normal(mean, sd, n_rows), low, high)

    account_length = np.rint(normal(101, 40, 1, 243)).astype(np.int64)
    area_code = rng.choice(np.array([408, 415, 510]), size=n_rows, p=[0.25, 0.5, 0.25])
    phone = [f"{a}-{b:04d}" for a, b in zip(rng.integers(327, 423, n_rows), rng.integers(0, 10000, n_rows), strict=True)]
    intl_plan = rng.random(n_rows) < 0.10
    vmail_plan = rng.random(n_rows) < 0.27
    vmail_message = np.where(vmail_plan, np.rint(normal(29, 7.5, 4, 51)), 0).astype(np.int64)
    minutes = {
        "Day": np.round(normal(180, 54, 0, 351), 1),
        "Eve": np.round(normal(201, 51, 0, 364), 1),
        "Night": np.round(normal(201, 51, 23, 395), 1),
        "Intl": np.round(normal(10.2, 2.8, 0, 20), 1),
    }
    calls = {
        "Day": np.rint(normal(100, 20, 0, 165)).astype(np.int64),
        "Eve": np.rint(normal(100, 20, 0, 170)).astype(np.int64),
        "Night": np.rint(normal(100, 20, 33, 175)).astype(np.int64),
        "Intl": np.minimum(rng.poisson(4.5, n_rows), 20).astype(np.int64),
    }
    cust_serv = np.minimum(rng.poisson(1.56, n_rows), 9).astype(np.int64)

    twist = _state_twists(rng)
    service = 2.4 * (cust_serv >= 4) + 0.3 * cust_serv
    usage = 3.2 * (minutes["Day"] > 240) + 0.016 * (minutes["Day"] - 180)
    logit = (
        twist["offset"][state_idx]
        + twist["service"][state_idx] * service
        + twist["usage"][state_idx] * usage
        + 1.8 * intl_plan
        + 2.4 * (intl_plan & (minutes["Intl"] > 13))
        - 1.4 * vmail_plan
        + 0.004 * (minutes["Eve"] - 201)
    )
    intercept = _calibrate_intercept(logit, _CHURN_RATE)
    churn = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-(logit + intercept)))

    data: dict[str, Any] = {
        "State": np.asarray(STATES)[state_idx],
        "Account Length": account_length,
        "Area Code": area_code,
        "Phone": phone,
        "Int'l Plan": np.where(intl_plan, "yes", "no"),
        "VMail Plan": np.where(vmail_plan, "yes", "no"),
        "VMail Message": vmail_message,
    }
    for period in ("Day", "Eve", "Night", "Intl"):
        data[f"{period} Mins"] = minutes[period]
        data[f"{period} Calls"] = calls[period]
        data[f"{period} Charge"] = np.round(minutes[period] * RATES[period], 2)
    data["CustServ Calls"] = cust_serv
    data[LABEL] = np.where(churn, "True.", "False.")
    return pd.DataFrame(data, columns=list(COLUMNS))


def _calibrate_intercept(logit: Array, rate: float) -> float:
    """The intercept that makes the expected churn rate equal ``rate`` (bisection)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        if float(np.mean(1.0 / (1.0 + np.exp(-(logit + mid))))) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass(frozen=True)
class StateSplit:
    """One state's training rows: ``Churn?`` (1/0) first, then the 17 FEATURES."""

    train: pd.DataFrame
    validation: pd.DataFrame


@dataclass(frozen=True)
class ChurnSplits:
    """The held-out test rows (TEST_COLUMNS) and each state's train/validation split."""

    test: pd.DataFrame
    states: dict[str, StateSplit]

    def test_for(self, state: str) -> pd.DataFrame:
        """The held-out test rows of one state."""
        return self.test[self.test["State"] == state]


def prepare(
    df: pd.DataFrame,
    *,
    test_fraction: float = 0.1,
    validation_fraction: float = 0.1,
    seed: int = 42,
) -> ChurnSplits:
    """Preprocess as the reference does and split.

    Int'l Plan and VMail Plan yes/no -> 1/0, ``Churn?`` 'True.'/'False.' -> 1/0, Area Code and
    Phone dropped, ``CustomerID`` = the row's position in ``df``. ``test_fraction`` of each
    state's rows are held out (stratified by State); each state's remaining rows are split
    ``1 - validation_fraction`` / ``validation_fraction`` stratified by ``Churn?``.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ConfigurationError(f"Expected the churn columns {list(COLUMNS)}; missing {missing}")
    for name, value in (("test_fraction", test_fraction), ("validation_fraction", validation_fraction)):
        if not 0.0 < value < 1.0:
            raise ConfigurationError(f"Expected {name} between 0 and 1, received {value!r}")
    frame = df.reset_index(drop=True).copy()
    frame.insert(0, "CustomerID", np.arange(len(frame), dtype=np.int64))
    for column in ("Int'l Plan", "VMail Plan"):
        values = frame[column].astype(str).str.lower()
        if not values.isin(["yes", "no"]).all():
            raise ConfigurationError(f"Expected yes/no in {column!r}, received {sorted(set(values))[:5]}")
        frame[column] = (values == "yes").astype(np.int64)
    labels = frame[LABEL].astype(str)
    if not labels.isin(["True.", "False."]).all():
        raise ConfigurationError(f"Expected 'True.'/'False.' in {LABEL!r}, received {sorted(set(labels))[:5]}")
    frame[LABEL] = (labels == "True.").astype(np.int64)
    frame = frame.drop(columns=["Area Code", "Phone"])

    rng = np.random.default_rng(seed)
    state_of = frame["State"].to_numpy()
    label_of = frame[LABEL].to_numpy()
    positions = np.arange(len(frame))
    columns = [LABEL, *FEATURES]
    test_rows: list[Array] = []
    states: dict[str, StateSplit] = {}
    for state in sorted(set(state_of.tolist())):
        rows = positions[state_of == state]
        # Stratified by State, and within a state by Churn? too, so that (almost) every state's
        # held-out rows hold churners and its AUC is defined.
        picked_test: list[Array] = []
        for label in (0, 1):
            class_rows = rows[label_of[rows] == label]
            n_class = round(test_fraction * len(class_rows))
            if n_class == 0 and len(class_rows) >= 3:
                n_class = 1
            picked_test.append(rng.permutation(class_rows)[:n_class])
        test_part = np.sort(np.concatenate(picked_test))
        rest = np.setdiff1d(rows, test_part)
        if len(rest) < 2:
            raise ConfigurationError(f"State {state!r} has too few rows ({len(rows)}) to split")
        picked_val: list[Array] = []
        for label in (0, 1):
            class_rows = rest[label_of[rest] == label]
            picked_val.append(rng.permutation(class_rows)[: round(validation_fraction * len(class_rows))])
        validation = np.sort(np.concatenate(picked_val))
        test_rows.append(test_part)
        states[str(state)] = StateSplit(
            train=frame.iloc[np.setdiff1d(rest, validation)][columns].reset_index(drop=True),
            validation=frame.iloc[validation][columns].reset_index(drop=True),
        )
    test = frame.iloc[np.sort(np.concatenate(test_rows))][list(TEST_COLUMNS)].reset_index(drop=True)
    return ChurnSplits(test=test, states=states)


def model_name(state: str, *, template: str = "churn-xgb-{state}") -> str:
    """The model name of one state's model, e.g. ``churn-xgb-CA``."""
    from mmeperf.repository.names import validate_model_name

    try:
        name = template.format(state=state)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigurationError(f"Expected a template using {{state}}, received {template!r}") from exc
    if name == template:
        raise ConfigurationError(f"Expected a template using {{state}}, received {template!r}")
    return validate_model_name(name)


def roc_auc(y_true: Array, y_score: Array) -> float:
    """Area under the ROC curve by ranks (ties averaged); NaN when only one class is present."""
    y = np.asarray(y_true).astype(bool).ravel()
    scores = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != scores.shape:
        raise ConfigurationError(f"Expected labels and scores of one length, received {y.size} and {scores.size}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based mean rank of each tie group
    ranks = average_rank[inverse]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True)
class TrainedModel:
    """One state's booster and how well it does on that state's held-out test rows."""

    state: str
    booster: Any
    auc: float
    """Held-out test AUC (NaN when the state's test rows hold one class only)."""
    validation_auc: float
    n_train: int
    n_validation: int
    n_test: int


def _matrix(frame: pd.DataFrame) -> Array:
    return frame.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)


def train_state_models(
    splits: ChurnSplits,
    *,
    rounds: int = 20,
    seed: int = 0,
    n_jobs: int = 1,
    states: tuple[str, ...] | None = None,
) -> dict[str, TrainedModel]:
    """One ``binary:logistic`` XGBoost booster per state, ``rounds`` rounds, nothing else tuned."""
    xgb = require("xgboost", what="Training the churn models", extra="xgboost")
    if rounds < 1:
        raise ConfigurationError(f"Expected at least 1 boosting round, received {rounds}")
    chosen = tuple(splits.states) if states is None else states
    unknown = [s for s in chosen if s not in splits.states]
    if unknown:
        raise ConfigurationError(f"Expected states from {sorted(splits.states)}, received {unknown}")
    params = {"objective": "binary:logistic", "nthread": n_jobs, "seed": seed, "verbosity": 0}
    out: dict[str, TrainedModel] = {}
    for state in chosen:
        split = splits.states[state]
        booster = xgb.train(
            params,
            # nthread on the DMatrix too: its default (all cores) costs 10x on tiny frames.
            xgb.DMatrix(_matrix(split.train), label=split.train[LABEL].to_numpy(), nthread=n_jobs),
            num_boost_round=rounds,
        )
        test = splits.test_for(state)

        def score(frame: pd.DataFrame, booster: Any = booster) -> float:
            if frame.empty:
                return math.nan
            return roc_auc(frame[LABEL].to_numpy(), booster.predict(xgb.DMatrix(_matrix(frame), nthread=n_jobs)))

        out[state] = TrainedModel(
            state=state,
            booster=booster,
            auc=score(test),
            validation_auc=score(split.validation),
            n_train=len(split.train),
            n_validation=len(split.validation),
            n_test=len(test),
        )
    return out


@dataclass(frozen=True)
class ChurnBuild:
    """What :func:`build_churn_repository` made."""

    repository: ModelRepository
    test_csv: str
    """Where the held-out test rows were written (TEST_COLUMNS, with a header row)."""
    aucs: dict[str, float]
    """Model name -> held-out test AUC on its state's rows (NaN when undefined)."""
    models: dict[str, TrainedModel] = field(repr=False)
    """Model name -> the trained model."""
    seconds: float
    """Wall time of the whole build."""

    @property
    def median_auc(self) -> float:
        """Median held-out AUC over the models where it is defined."""
        values = [v for v in self.aucs.values() if not math.isnan(v)]
        return float(np.median(values)) if values else math.nan


def build_churn_repository(
    url: PathLike,
    *,
    n_rows: int = 5000,
    seed: int = 0,
    rounds: int = 20,
    template: str = "churn-xgb-{state}",
    layout: Layout = "sagemaker",
    test_csv: PathLike | None = None,
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    n_jobs: int = 1,
) -> ChurnBuild:
    """Generate the data, train the 51 state models and add them to a repository at ``url``.

    Each model is saved by the ``xgboost`` backend (SageMaker XGBoost's single ``xgboost-model``
    file) as ``churn-xgb-{state}``. The held-out test rows are written with a header row to
    ``test_csv`` (default: ``churn_test.csv`` at the repository root, which is never listed as a
    model); load tests send their FEATURES columns to the model their State names.
    """
    from mmeperf.repository import ModelRepository

    started = time.perf_counter()
    names = {state: model_name(state, template=template) for state in STATES}
    if layout not in ("sagemaker", "triton"):
        raise ConfigurationError(f"Expected layout 'sagemaker' or 'triton', received {layout!r}")
    repo = ModelRepository(url, layout=layout, storage_options=storage_options)
    if not overwrite:
        # Fail before training, not after the first 50 models.
        taken = sorted(set(names.values()) & set(repo.names()))
        if taken:
            raise ModelExistsError(
                f"{len(taken)} churn models already exist in {repo.url!r} (e.g. {taken[0]!r}); "
                "pass overwrite=True to replace them"
            )
    splits = prepare(generate(n_rows, seed=seed))
    trained = train_state_models(splits, rounds=rounds, seed=seed, n_jobs=n_jobs)
    for state, model in trained.items():
        repo.add_model(names[state], model.booster, backend="xgboost", overwrite=overwrite)
    if test_csv is None:
        csv_path = repo.root.rstrip("/") + "/churn_test.csv"
        with repo.fs.open(csv_path, "w") as fh:
            splits.test.to_csv(fh, index=False)
        location = csv_path if repo.is_local else str(repo.fs.unstrip_protocol(csv_path))
    else:
        location = str(test_csv)
        splits.test.to_csv(location, index=False)
    return ChurnBuild(
        repository=repo,
        test_csv=location,
        aucs={names[s]: m.auc for s, m in trained.items()},
        models={names[s]: m for s, m in trained.items()},
        seconds=time.perf_counter() - started,
    )
