"""A faster, verified prediction path for small XGBoost batches (one-row requests).

XGBoost's predict costs ~150-300 us per call whatever the row count (configuration, proxy
matrix, threads), while 20 small trees written out as nested ``if``s take a few microseconds
for one row. The booster's trees are generated as Python source from the numbers in its JSON
dump and compiled; the compiled model must reproduce XGBoost's own outputs bit for bit on probe
rows (float32 sums in tree order, the same base margin, glibc's ``expf`` for the sigmoid, as
XGBoost computes them), else the model keeps using XGBoost.

It must never hurt. Generated Python holds the GIL while XGBoost's predict releases it, so:

* parsing, generating, compiling and verifying run in a separate process (the server only
  unmarshals the finished bytecode), so a 500-tree model never stalls other requests;
* models whose row costs more than :data:`MAX_PATH_COMPARISONS` node comparisons are not
  compiled at all (measured break-even: see :data:`MAX_PATH_COMPARISONS`);
* a batch takes the compiled path only while its worst case stays under
  :data:`BATCH_MAX_COMPARISONS` (about 100 us of GIL); larger ones go to XGBoost;
* once built, a few timed one-row predictions of both runners decide: the compiled runner is
  kept only when it is at most :data:`MIN_GAIN` of XGBoost's time.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import marshal
import math
import pickle
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmeperf._types import Array, Batch
from mmeperf.backends.base import Runner

if TYPE_CHECKING:
    from mmeperf.backends.xgboost import XGBoostRunner

__all__ = ["CompiledTrees", "CompiledXGBoostRunner", "build_compiled_trees", "compile_runner", "shutdown_compiler"]

log = logging.getLogger(__name__)

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

#: Break-even by model size. One row through the compiled trees costs about 4 us plus 45 ns per
#: node comparison on its path (measured on this project's 2-core host, binary:logistic, 20
#: features: 20 trees x depth 3 = 60 comparisons 6.6 us; 200 x 6 = 948, 36 us; 500 x 3 = 1,481,
#: 71 us; 500 x 6 = 1,646, 75 us), against XGBoost's 210-300 us per call. In isolation even 500
#: trees win, but those microseconds hold the GIL while XGBoost's predict releases it: under
#: concurrent load a 500-tree model's compiled rows starve every other request
#: (benchmarks/fast_path.py). Models whose worst row costs more than this many comparisons
#: (about 50 us of GIL) keep XGBoost.
MAX_PATH_COMPARISONS = 1024
#: Worst case, in comparisons, of one batch on the compiled path (about 100 us of GIL); larger
#: batches go to XGBoost, whose cost hardly grows with rows.
BATCH_MAX_COMPARISONS = 2048
#: The compiled runner is kept only if its median one-row time is at most this share of
#: XGBoost's (it holds the GIL, XGBoost does not: a bare tie is a loss under load).
MIN_GAIN = 0.5
#: Timed one-row predictions of each runner in the gain check.
GAIN_SAMPLES = 15

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


@dataclass(frozen=True)
class CompiledTrees:
    """What the compiler process returns: the bytecode of ``margin(r, acc)`` and its constants."""

    code: bytes
    """``marshal`` of the module code defining ``margin`` (same interpreter: same format)."""
    leaves: Any
    """float32 ndarray of leaf values, ``L`` in the generated code."""
    base_margin: float
    sigmoid: bool
    nodes: int
    path_comparisons: int
    """Worst-case comparisons for one row: the deepest root-to-leaf path of each tree, summed."""
    source_bytes: int


class CompiledXGBoostRunner(Runner):
    """Wraps an XGBoost runner: small batches run generated Python, larger ones use XGBoost."""

    def __init__(self, inner: XGBoostRunner, trees: CompiledTrees, max_rows: int) -> None:
        namespace: dict[str, Any] = {"L": tuple(np.asarray(trees.leaves, dtype=np.float32))}
        # Our own bytecode, generated from numbers only: nothing from the artifact is executed.
        exec(marshal.loads(trees.code), namespace)
        self._margin = namespace["margin"]
        self._inner = inner
        self._nodes = trees.nodes
        self.path_comparisons = trees.path_comparisons
        row_cost = trees.path_comparisons + ROW_COST_COMPARISONS
        #: Rows whose worst case stays under BATCH_MAX_COMPARISONS; more go to XGBoost.
        self.max_rows = max(1, min(BATCH_MAX_COMPARISONS // row_cost, max_rows))
        #: Rows this runner may predict on the event loop (their worst case stays bounded).
        self.inline_max_rows = min(INLINE_MAX_COMPARISONS // row_cost, self.max_rows)
        self._source_bytes = trees.source_bytes
        self._base = _F32(trees.base_margin)
        self._sigmoid = trees.sigmoid
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
        if not isinstance(batch, np.ndarray) or batch.ndim != 2 or batch.shape[0] > self.max_rows \
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


def build_compiled_trees(raw_model: bytes, n_features: int, probes: Array | None = None) -> CompiledTrees | str:
    """Parse, generate, compile and verify a booster saved as UBJSON: the compiled trees, or why
    not (one line). Runs in the compiler process (any process works: tests call it directly)."""
    import xgboost

    from mmeperf.backends.xgboost import XGBoostRunner

    booster = xgboost.Booster(model_file=bytearray(raw_model))
    model = json.loads(bytes(booster.save_raw(raw_format="json")))
    learner = model["learner"]
    objective = learner["objective"]["name"]
    params = learner["learner_model_param"]
    gbm = learner["gradient_booster"]
    if gbm.get("name") != "gbtree" or objective not in _IDENTITY | _SIGMOID:
        return f"objective {objective!r} / booster {gbm.get('name')!r} not compiled"
    if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
        return "multi-class or multi-target model"
    trees: list[_Tree] = []
    for tree in gbm["model"]["trees"]:
        if any(int(t) != 0 for t in tree.get("split_type", [])) or int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            return "categorical splits or vector leaves"
        trees.append((
            [int(v) for v in tree["left_children"]],
            [int(v) for v in tree["right_children"]],
            [int(v) for v in tree["split_indices"]],
            [float(np.float32(v)) for v in tree["split_conditions"]],
            [bool(v) for v in tree["default_left"]],
        ))
    nodes = sum(len(t[0]) for t in trees)
    path = sum(_depth(t) for t in trees)
    if nodes > MAX_NODES or path > MAX_PATH_COMPARISONS:
        return f"too large to pay: {len(trees)} trees, {path} comparisons per row (limit {MAX_PATH_COMPARISONS})"
    base = float(json.loads(params["base_score"])[0]) if params["base_score"].startswith("[") \
        else float(params["base_score"])
    sigmoid = objective in _SIGMOID
    source, leaves = _generate(trees)
    code = marshal.dumps(compile(source, "<mmeperf-compiled-xgboost>", "exec"))
    runner = XGBoostRunner(booster, serialized_bytes=len(raw_model), source=Path("."))
    rng = np.random.default_rng(0)
    if probes is None or len(probes) == 0:
        probes = rng.normal(size=(256, n_features)).astype(np.float32)
    probe = np.concatenate([np.asarray(probes, np.float32), rng.normal(size=(64, n_features)).astype(np.float32) * 100])
    probe[::7, 0] = np.nan  # missing values take the default branches
    expected_margin = np.asarray(booster.inplace_predict(probe, predict_type="margin"), dtype=np.float32)
    expected = np.asarray(runner.predict(probe), dtype=np.float32)
    # The base margin XGBoost uses (ProbToMargin in float32); try its float32 neighbours too.
    guess = -math.log(1.0 / base - 1.0) if sigmoid else base
    for candidate in _neighbours(np.float32(guess)):
        trial = CompiledTrees(code=code, leaves=np.array(leaves, dtype=np.float32), base_margin=float(candidate),
                              sigmoid=sigmoid, nodes=nodes, path_comparisons=path, source_bytes=len(source))
        compiled = CompiledXGBoostRunner(runner, trial, DEFAULT_MAX_ROWS)
        if np.array_equal(np.array(compiled.margins(probe), np.float32), expected_margin, equal_nan=True):
            break
    else:
        return "no base margin reproduces XGBoost's margins"
    if not np.array_equal(compiled.compiled_predict(probe), expected, equal_nan=True):
        return "outputs differ from XGBoost's"
    return trial


class _CompilerProcess:
    """A plain child process (``python -c``) that runs :func:`build_compiled_trees` on request:
    pickled arguments in on stdin, the pickled result out on stdout, one at a time. Not
    multiprocessing: its "spawn" re-runs the parent's ``__main__``, and "fork" copies a process
    with threads and an event loop. The child ends when its stdin closes (the parent is gone)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", "from mmeperf.endpoints.local.fastpath import _serve; _serve()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
        return self._proc

    def build(self, raw: bytes, n_features: int, probes: Array | None) -> CompiledTrees | str:
        with self._lock:
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                pickle.dump((raw, n_features, probes), proc.stdin)
                proc.stdin.flush()
                result: CompiledTrees | str = pickle.load(proc.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                self._stop_locked()
                return f"compiler process failed ({type(exc).__name__})"
            return result

    def _stop_locked(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()


_COMPILER = _CompilerProcess()


def _serve() -> None:
    """The compiler process's loop (see :class:`_CompilerProcess`)."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            raw, n_features, probes = pickle.load(stdin)
        except EOFError:
            return
        try:
            result: CompiledTrees | str = build_compiled_trees(raw, n_features, probes)
        except Exception as exc:  # any surprise in the model's JSON: the parent keeps XGBoost
            result = f"{type(exc).__name__}: {exc}"
        pickle.dump(result, stdout)
        stdout.flush()


def shutdown_compiler() -> None:
    """Stop the compiler process (a later compile starts a new one)."""
    _COMPILER.stop()


def _median_us(predict: Any, row: Array) -> float:
    samples = []
    for _ in range(GAIN_SAMPLES):
        t0 = time.perf_counter()
        predict(row)
        samples.append(time.perf_counter() - t0)
        time.sleep(0)  # let the server's threads run between samples
    return statistics.median(samples) * 1e6


def measure_gain(compiled: CompiledXGBoostRunner, row: Array) -> float:
    """Median one-row time of the compiled runner over XGBoost's (alternating, interleaved)."""
    inner = compiled.inner
    _median_us(compiled.compiled_predict, row)  # warm both
    xgb = _median_us(inner.predict, row)
    fast = _median_us(compiled.compiled_predict, row)
    return fast / xgb if xgb > 0 else math.inf


def compile_runner(
    runner: Runner, *, probes: Array | None = None, max_rows: int = DEFAULT_MAX_ROWS,
    in_process: bool = False, check_gain: bool = True,
) -> Runner:
    """``runner`` wrapped in the compiled path when it is an XGBoost model the path reproduces
    exactly on probe rows, small enough to pay, and measured faster; otherwise ``runner``.

    The work happens in the compiler process (``in_process=True``: in this one, for tools and
    tests); this process only loads the bytecode, re-checks a few rows and times both runners.
    """
    from mmeperf.backends.xgboost import XGBoostRunner

    # Exactly XGBoost's runner: a subclass may predict differently, which compiled trees would skip.
    if type(runner) is not XGBoostRunner or _EXPF is None:
        return runner
    try:
        booster = runner.booster
        raw = bytes(booster.save_raw(raw_format="ubj"))  # exact, and XGBoost's C code releases the GIL
        n = runner.n_features
        if in_process:
            built = build_compiled_trees(raw, n, probes)
        else:
            built = _COMPILER.build(raw, n, probes)
        if isinstance(built, str):
            log.info("Fast path not used for %s: %s", runner.source, built)
            return runner
        compiled = CompiledXGBoostRunner(runner, built, max_rows)
        rng = np.random.default_rng(1)
        check = rng.normal(size=(8, n)).astype(np.float32)
        check[::3, 0] = np.nan
        for i in range(len(check)):  # this very runner agrees (row by row: short GIL holds)
            row = check[i: i + 1]
            if not np.array_equal(compiled.compiled_predict(row), np.asarray(runner.predict(row), np.float32),
                                  equal_nan=True):
                return runner
        if check_gain:
            ratio = measure_gain(compiled, check[1:2])
            if ratio > MIN_GAIN:
                log.info("Fast path not used for %s: compiled/XGBoost time %.2f > %.2f", runner.source, ratio, MIN_GAIN)
                return runner
        return compiled
    except Exception as exc:  # any surprise: XGBoost's own path is always right
        log.info("Fast path not used for %s: %s: %s", getattr(runner, "source", "?"), type(exc).__name__, exc)
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
