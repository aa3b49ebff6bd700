"""What every exporter does the same way: normalize example inputs, draw parity inputs, compare
outputs, and stage the artifact in a temporary folder so a failed export writes nothing.
"""

from __future__ import annotations

import contextlib
import inspect
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmeperf._types import Array, Tensors
from mmeperf.backends.base import Runner
from mmeperf.errors import ExportError, ParityError
from mmeperf.exporters.base import ParityReport

__all__ = [
    "DEFAULT_TOLERANCES",
    "InputSampler",
    "check_destination",
    "compare_outputs",
    "default_sampler",
    "folder_size",
    "forward_names",
    "staged_export",
    "to_numpy_inputs",
]

#: A function (batch_size, seed) -> named inputs; ``SampleModel.example_inputs`` is one.
InputSampler = Callable[..., Tensors]

#: (atol, rtol) an artifact must meet against its source, per target format. fp32 exports of
#: the same graph agree to float rounding; TensorRT picks other kernels (and TF32 when allowed).
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "pytorch": (1e-4, 1e-4),
    "onnx": (1e-4, 1e-4),
    "tensorrt": (1e-3, 1e-3),
    "tensorrt-fp16": (5e-2, 2e-2),
}


def forward_names(model: Any) -> list[str] | None:
    """Parameter names of ``model.forward`` (torch modules), or None when not inspectable."""
    forward = getattr(model, "forward", None)
    if forward is None:
        return None
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]


def to_numpy_inputs(example: Any, names: Sequence[str] | None) -> Tensors:
    """An example input (array, tensor, tuple/list of them, or a dict) as named numpy arrays.

    Names come from the dict, else ``names`` (the exporter's ``input_names`` or forward's
    parameters), else ``INPUT__<i>``.
    """

    def as_array(value: Any, what: str) -> np.ndarray[Any, Any]:
        if hasattr(value, "detach") and hasattr(
            value, "cpu"
        ):  # torch.Tensor, without importing torch
            value = value.detach().cpu().numpy()
        array = np.asarray(value)
        if array.dtype.kind not in "iubf" or array.ndim == 0:
            raise ExportError(
                f"Example input {what} must be a numeric tensor with a batch axis, got "
                f"{array.dtype.name} of shape {list(array.shape)}"
            )
        return array

    if isinstance(example, dict):
        if not example:
            raise ExportError("Example input is an empty dict; expected named tensors")
        out = {str(k): as_array(v, repr(k)) for k, v in example.items()}
        if names is None:
            return out
        if set(out) == set(names):
            return {n: out[n] for n in names}  # the model's order
        if len(out) == len(names):
            return out  # other names than forward's parameters: positional, in the dict's order
        raise ExportError(
            f"Example has {len(out)} tensors {list(out)} but the model takes {len(names)} inputs {list(names)}"
        )
    values = list(example) if isinstance(example, (tuple, list)) else [example]
    if not values:
        raise ExportError("Example input is empty; expected one tensor per model input")
    if names is not None and len(names) < len(values):
        raise ExportError(
            f"Example has {len(values)} tensors but the model takes {len(names)} inputs {list(names)}"
        )
    labels = (
        list(names)[: len(values)]
        if names is not None
        else [f"INPUT__{i}" for i in range(len(values))]
    )
    return {label: as_array(v, repr(label)) for label, v in zip(labels, values, strict=True)}


def default_sampler(example: Tensors) -> InputSampler:
    """Random inputs shaped like ``example``: normal floats with the example's mean and spread;
    integers uniform over the example's range; 0/1 masks as prefixes of ones (padding)."""

    def sample(batch_size: int = 1, *, seed: int = 0) -> Tensors:
        rng = np.random.default_rng(seed)
        out: Tensors = {}
        for name, array in example.items():
            shape = (batch_size, *array.shape[1:])
            if array.dtype.kind == "f":
                spread = float(array.std()) or 1.0
                out[name] = (rng.standard_normal(shape) * spread + float(array.mean())).astype(
                    array.dtype
                )
            elif array.dtype.kind == "b":
                out[name] = rng.integers(0, 2, size=shape).astype(bool)
            elif "mask" in name and set(np.unique(array).tolist()) <= {0, 1} and array.ndim == 2:
                lengths = rng.integers(1, shape[-1] + 1, size=batch_size)
                out[name] = (np.arange(shape[-1])[None, :] < lengths[:, None]).astype(array.dtype)
            else:
                low, high = int(array.min()), int(array.max())
                out[name] = rng.integers(low, high + 1, size=shape).astype(array.dtype)
        return out

    return sample


def parity_batches(n_inputs: int, *, min_batch: int = 1, max_batch: int = 3) -> list[int]:
    """Batch sizes for the parity inputs: 1, 2, 3, ... within the allowed range, so the check
    also proves the batch axis is dynamic."""
    top = max(min_batch, max_batch)
    return [min_batch + (i % (top - min_batch + 1)) for i in range(n_inputs)]


def compare_outputs(
    pairs: Sequence[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]],
    *,
    atol: float,
    rtol: float,
) -> ParityReport:
    """Element by element over (reference, candidate) pairs, numpy's ``allclose`` rule: an
    element passes when ``|candidate - reference| <= atol + rtol * |reference|``.

    Every element must pass, small ones included: a tolerance relative to the output's largest
    value would let an element near zero be off many times its own size.
    """
    if atol < 0 or rtol < 0:
        raise ExportError(f"Tolerances must be >= 0, got atol={atol} and rtol={rtol}")
    max_abs = max_rel = worst_ratio = 0.0
    n_elements = n_mismatched = 0
    worst_ref: float | None = None
    worst_got: float | None = None
    for reference, candidate in pairs:
        if reference.shape != candidate.shape:
            raise ExportError(
                f"The artifact's output has shape {list(candidate.shape)}, the source's "
                f"{list(reference.shape)}"
            )
        ref = reference.astype(np.float64).ravel()
        got = candidate.astype(np.float64).ravel()
        n_elements += ref.size
        if ref.size == 0:
            continue
        diff = np.abs(got - ref)
        finite = np.isfinite(diff)
        if not finite.all():
            n_mismatched += int((~finite).sum())
            max_abs = max_rel = worst_ratio = float("inf")
            diff = np.where(finite, diff, 0.0)
        allowance = atol + rtol * np.abs(ref)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(diff == 0, 0.0, diff / allowance)  # allowance 0: inf when differs
            rel = np.where(diff == 0, 0.0, diff / np.abs(ref))
        n_mismatched += int((ratio > 1.0).sum())
        worst = int(np.argmax(ratio))
        if ratio[worst] > worst_ratio:
            worst_ratio = float(ratio[worst])
            worst_ref, worst_got = float(ref[worst]), float(got[worst])
        max_abs = max(max_abs, float(diff.max()))
        max_rel = max(max_rel, float(rel.max()))
    return ParityReport(
        n_inputs=len(pairs),
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        atol=atol,
        rtol=rtol,
        worst_ratio=worst_ratio,
        n_elements=n_elements,
        n_mismatched=n_mismatched,
        worst_reference=worst_ref,
        worst_candidate=worst_got,
    )


def load_and_compare(
    load: Callable[[], Runner],
    reference: Callable[[Tensors], Array],
    inputs: Tensors,
    batches: Sequence[int],
    *,
    sampler: InputSampler | None,
    atol: float,
    rtol: float,
    what: str,
    keep: Callable[[Runner], Any] | None = None,
) -> tuple[float, ParityReport, Any]:
    """Load a freshly written artifact, time the load, and compare it with ``reference`` on one
    random batch per entry of ``batches``. Raises ParityError (naming ``what``) beyond tolerance.

    Returns the load time, the parity report, and ``keep(runner)`` read before the runner closes
    (ONNX Runtime's providers, a TensorRT engine's signature).
    """
    started = time.perf_counter()
    runner = load()
    load_time = time.perf_counter() - started
    try:
        sample = sampler or default_sampler(inputs)
        pairs = []
        for seed, rows in enumerate(batches):
            drawn = sample(rows, seed=seed)
            drawn = {n: drawn[n] for n in inputs}
            pairs.append((reference(drawn), runner.predict(drawn)))
        kept = keep(runner) if keep is not None else None
    finally:
        runner.close()
    parity = compare_outputs(pairs, atol=atol, rtol=rtol)
    if not parity.passed:
        raise ParityError(f"{what}: {parity.describe()}")
    return load_time, parity, kept


def folder_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def check_destination(directory: Path, artifact_names: Sequence[str], *, overwrite: bool) -> Path:
    """Refuse (ExportError) a target that is a file, or that already holds one of the artifact
    files while ``overwrite`` is False. Exporters call it before tracing or building anything."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} exists and is not a folder")
    clashes = [n for n in artifact_names if (directory / n).exists()]
    if clashes and not overwrite:
        raise ExportError(
            f"{directory} already holds {clashes}; pass overwrite=True to replace them"
        )
    return directory


@contextlib.contextmanager
def staged_export(
    directory: Path, artifact_names: Sequence[str], *, overwrite: bool
) -> Iterator[Path]:
    """A temporary folder to build an artifact in, moved into ``directory`` only on success.

    Refuses up front (see :func:`check_destination`, checked again here in case the folder
    changed meanwhile). On any error the temporary folder is removed and ``directory`` is left
    as it was.
    """
    directory = check_destination(directory, artifact_names, overwrite=overwrite)
    staging = Path(tempfile.mkdtemp(prefix="mmeperf-export-"))
    try:
        yield staging
        directory.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            target = directory / item.name
            if target.exists():
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            shutil.move(str(item), str(target))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first meaningful line of an exception's message (torch's are pages long)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__
