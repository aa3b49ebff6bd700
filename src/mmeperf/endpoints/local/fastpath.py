"""A faster, verified prediction path for small XGBoost batches (one-row requests).

XGBoost's predict costs ~150-300 us per call whatever the row count (configuration, proxy
matrix, threads), while 20 small trees written out as nested ``if``s take a few microseconds
for one row. At load time the booster's trees are generated as Python source from the numbers
in its JSON dump and compiled; the compiled model must reproduce
XGBoost's own outputs bit for bit on probe rows (float32 sums in tree order, the same base
margin, glibc's ``expf`` for the sigmoid, as XGBoost computes them), else the model keeps using
XGBoost. Batches larger than ``max_rows`` always go to XGBoost, which is faster there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mmeperf._types import Array, Batch
from mmeperf.backends.base import Runner

if TYPE_CHECKING:
    from mmeperf.backends.xgboost import XGBoostRunner

__all__ = ["CompiledXGBoostRunner", "compile_runner"]

#: Objectives whose output the compiled path reproduces.
_IDENTITY = {"reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror"}
_SIGMOID = {"binary:logistic", "reg:logistic"}
#: Rows up to which the compiled path beats XGBoost's per-call overhead (20 trees: 1 row 6 us
#: vs 260 us, 16 rows 56 us vs 245 us, measured on this project's 2-core host).
DEFAULT_MAX_ROWS = 32


def _libm_expf() -> Any:
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).expf
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


_EXPF = _libm_expf()
_F32 = np.float32
_MAX_EXP_ARG = float(np.float32(88.7))


#: Worst-case cost, in node comparisons, of a batch predicted on the event loop instead of in a
#: thread (see Batcher.try_inline). A comparison costs ~50 ns in CPython here and a row's fixed
#: work (list conversion, call, sigmoid) about as much as 64 of them (a 20-tree row: ~6 us), so
#: 512 keeps an inline batch under ~25-35 us, below a thread hand-off and back.
INLINE_MAX_COMPARISONS = 512
ROW_COST_COMPARISONS = 64

#: Trees deeper than this, or models with more nodes, are not compiled (Python's parser nests
#: blocks only so deep; huge models are where XGBoost's own predict is efficient anyway).
MAX_DEPTH = 40
MAX_NODES = 200_000

_Tree = tuple[list[int], list[int], list[int], list[float], list[bool]]


def _generate(trees: list[_Tree]) -> tuple[str, list[np.float32]]:
    """Python source of ``margin(r)``: each tree as nested ifs on constants, leaves summed in
    float32 in tree order. Only numbers parsed from the model reach the source."""
    leaves: list[np.float32] = []
    lines = ["def margin(r, acc):"]

    def emit(tree: _Tree, node: int, depth: int) -> None:
        left, right, feat, value, default_left = tree
        pad = "    " * (depth + 1)
        if left[node] == -1:
            lines.append(f"{pad}acc = acc + L[{len(leaves)}]")
            leaves.append(np.float32(value[node]))
            return
        if depth > MAX_DEPTH:
            raise ValueError("tree too deep")
        f, threshold = int(feat[node]), float(value[node])
        # NaN compares false both ways: it goes to the default side, as in XGBoost.
        test = f"not (r[{f}] >= {threshold!r})" if default_left[node] else f"r[{f}] < {threshold!r}"
        lines.append(f"{pad}if {test}:")
        emit(tree, left[node], depth + 1)
        lines.append(f"{pad}else:")
        emit(tree, right[node], depth + 1)

    for tree in trees:
        emit(tree, 0, 0)
    lines.append("    return acc")
    return "\n".join(lines), leaves


class CompiledXGBoostRunner(Runner):
    """Wraps an XGBoost runner: small batches run generated Python, larger ones use XGBoost."""

    def __init__(self, inner: XGBoostRunner, trees: list[_Tree], base_margin: np.float32,
                 sigmoid: bool, max_rows: int) -> None:
        source, leaves = _generate(trees)
        namespace: dict[str, Any] = {"L": tuple(leaves)}
        # Our own source, built from numbers only: nothing from the artifact is executed.
        exec(compile(source, "<mmeperf-compiled-xgboost>", "exec"), namespace)
        self._margin = namespace["margin"]
        self._inner = inner
        self._nodes = sum(len(t[0]) for t in trees)
        #: Worst-case comparisons for one row: the deepest root-to-leaf path of each tree, summed.
        self.path_comparisons = sum(_depth(t) for t in trees)
        #: Rows this runner may predict on the event loop (their worst case stays bounded).
        self.inline_max_rows = min(INLINE_MAX_COMPARISONS // (self.path_comparisons + ROW_COST_COMPARISONS),
                                   max_rows)
        self._source_bytes = len(source)
        self._base = base_margin
        self._sigmoid = sigmoid
        self._max_rows = max_rows
        self._n = inner.n_features

    @property
    def inner(self) -> XGBoostRunner:
        return self._inner

    @property
    def n_features(self) -> int:
        return self._n

    @property
    def memory_bytes(self) -> int:
        # Bytecode and constants of the generated function: of the order of its source size.
        return self._inner.memory_bytes + self._source_bytes + self._nodes * 32

    def close(self) -> None:
        self._inner.close()

    def predict(self, batch: Batch) -> Array:
        if not isinstance(batch, np.ndarray) or batch.ndim != 2 or batch.shape[0] > self._max_rows \
                or batch.shape[1] != self._n:
            return self._inner.predict(batch)
        return self.compiled_predict(batch)

    def margins(self, rows: Array) -> list[np.float32]:
        margin, base = self._margin, self._base
        return [margin(row, base) for row in rows.astype(np.float32).tolist()]

    def compiled_predict(self, rows: Array) -> Array:
        margins = self.margins(rows)
        if not self._sigmoid:
            return np.array(margins, dtype=np.float32)
        expf = _EXPF
        one = _F32(1.0)
        # XGBoost's Sigmoid: 1 / (expf(min(-x, 88.7)) + 1 + 1e-16f); the epsilon vanishes in float32.
        return np.array([one / (_F32(expf(min(-float(m), _MAX_EXP_ARG))) + one) for m in margins],
                        dtype=np.float32)


def compile_runner(runner: Runner, *, probes: Array | None = None, max_rows: int = DEFAULT_MAX_ROWS) -> Runner:
    """``runner`` wrapped in the compiled path when it is an XGBoost model the path reproduces
    exactly on probe rows; otherwise ``runner`` unchanged."""
    from mmeperf.backends.xgboost import XGBoostRunner

    # Exactly XGBoost's runner: a subclass may predict differently, which compiled trees would skip.
    if type(runner) is not XGBoostRunner or _EXPF is None:
        return runner
    try:
        booster = runner.booster
        model = json.loads(bytes(booster.save_raw(raw_format="json")))
        learner = model["learner"]
        objective = learner["objective"]["name"]
        params = learner["learner_model_param"]
        gbm = learner["gradient_booster"]
        if gbm.get("name") != "gbtree" or objective not in _IDENTITY | _SIGMOID:
            return runner
        if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
            return runner
        trees: list[_Tree] = []
        for tree in gbm["model"]["trees"]:
            if any(int(t) != 0 for t in tree.get("split_type", [])) or int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
                return runner  # categorical splits or vector leaves: not compiled
            trees.append((
                [int(v) for v in tree["left_children"]],
                [int(v) for v in tree["right_children"]],
                [int(v) for v in tree["split_indices"]],
                [float(np.float32(v)) for v in tree["split_conditions"]],
                [bool(v) for v in tree["default_left"]],
            ))
        if sum(len(t[0]) for t in trees) > MAX_NODES:
            return runner
        base = float(json.loads(params["base_score"])[0]) if params["base_score"].startswith("[") \
            else float(params["base_score"])
        sigmoid = objective in _SIGMOID
        n = runner.n_features
        rng = np.random.default_rng(0)
        if probes is None or len(probes) == 0:
            probes = rng.normal(size=(256, n)).astype(np.float32)
        probe = np.concatenate([probes.astype(np.float32), rng.normal(size=(64, n)).astype(np.float32) * 100])
        probe[::7, 0] = np.nan  # missing values take the default branches
        expected_margin = np.asarray(booster.inplace_predict(probe, predict_type="margin"), dtype=np.float32)
        expected = np.asarray(runner.predict(probe), dtype=np.float32)
        # The base margin XGBoost uses (ProbToMargin in float32); try its float32 neighbours too.
        guess = -math.log(1.0 / base - 1.0) if sigmoid else base
        for candidate in _neighbours(np.float32(guess)):
            compiled = CompiledXGBoostRunner(runner, trees, candidate, sigmoid, max_rows)
            if np.array_equal(np.array(compiled.margins(probe), np.float32), expected_margin, equal_nan=True):
                break
        else:
            return runner
        if not np.array_equal(compiled.compiled_predict(probe), expected, equal_nan=True):
            return runner
        return compiled
    except Exception:  # any surprise in the model's JSON: XGBoost's own path is always right
        return runner


def _depth(tree: _Tree) -> int:
    """Comparisons on the deepest root-to-leaf path of ``tree``."""
    left, right = tree[0], tree[1]
    deepest = 0
    stack = [(0, 0)]
    while stack:
        node, depth = stack.pop()
        if left[node] == -1:
            deepest = max(deepest, depth)
        else:
            stack.append((left[node], depth + 1))
            stack.append((right[node], depth + 1))
    return deepest


def _neighbours(x: np.float32) -> list[np.float32]:
    up = np.nextafter(x, np.float32(np.inf))
    down = np.nextafter(x, np.float32(-np.inf))
    return [x, up, down, np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))]
