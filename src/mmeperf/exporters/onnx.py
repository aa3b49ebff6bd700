"""torch module -> ONNX (``model.onnx``) with torch's dynamo exporter, a dynamic batch axis and a
configurable opset, checked by ``onnx.checker`` and against eager torch through ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmeperf._deps import require
from mmeperf.backends.tensors import Signature
from mmeperf.errors import ExportError
from mmeperf.exporters._common import (
    DEFAULT_TOLERANCES,
    InputSampler,
    check_destination,
    first_line,
    folder_size,
    forward_names,
    load_and_compare,
    parity_batches,
    staged_export,
    to_numpy_inputs,
)
from mmeperf.exporters.base import Exporter, ExportResult
from mmeperf.exporters.torchscript import check_torch_module, run_eager

__all__ = ["OnnxExporter"]

# Models above this are saved with their weights in ``model.onnx.data`` (protobuf's 2 GiB cap).
_EXTERNAL_DATA_BYTES = 2**31 - 2**26


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter narrates its steps on stdout and warns about torchvision ops we do
    not use; keep the caller's output to what matters (errors still raise)."""
    names = ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript", "onnx_ir")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class OnnxExporter(Exporter):
    """torch.nn.Module -> ``model.onnx`` for the ``onnx`` backend (Triton ``onnxruntime_onnx``)."""

    source: ClassVar[str] = "torch"
    target: ClassVar[str] = "onnx"

    def export(
        self,
        model: Any,
        example_input: Any,
        directory: Path,
        *,
        opset: int | None = None,
        input_names: Sequence[str] | None = None,
        output_name: str = "OUTPUT__0",
        dynamic_batch: bool = True,
        n_parity_inputs: int = 3,
        sampler: InputSampler | None = None,
        atol: float | None = None,
        rtol: float | None = None,
        overwrite: bool = False,
        **options: Any,
    ) -> ExportResult:
        """Export ``model`` with inputs named ``input_names`` (default: forward's parameter
        names), output ``output_name``, the batch axis dynamic, at ``opset`` (default: the
        exporter's). Writes ``model.onnx`` into ``directory`` once parity holds.
        """
        if options:
            raise ExportError(f"Unknown ONNX export options: {sorted(options)}")
        if n_parity_inputs < 1:
            raise ExportError(f"n_parity_inputs must be >= 1, got {n_parity_inputs}")
        if opset is not None and not 7 <= opset <= 30:
            raise ExportError(f"opset must be between 7 and 30, got {opset}")
        for module_name in ("onnx", "onnxruntime", "onnxscript"):
            require(module_name, what="The ONNX exporter", extra="onnx")
        import onnx
        import torch

        from mmeperf.backends.onnx import MODEL_FILE, OnnxBackend

        check_destination(Path(directory), [MODEL_FILE], overwrite=overwrite)
        module = check_torch_module(model, "The ONNX exporter")
        names = list(input_names) if input_names is not None else forward_names(module)
        inputs = to_numpy_inputs(example_input, names)
        reference = run_eager(module, inputs)
        default_atol, default_rtol = DEFAULT_TOLERANCES["onnx"]
        atol = default_atol if atol is None else atol
        rtol = default_rtol if rtol is None else rtol

        # torch.export specializes a dimension of size 1; export with at least two rows so
        # the batch axis stays symbolic.
        export_inputs = {
            k: np.concatenate([v, v]) if dynamic_batch and v.shape[0] == 1 else v
            for k, v in inputs.items()
        }
        args = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in export_inputs.values())
        dynamic_shapes = None
        if dynamic_batch:
            batch = torch.export.Dim("batch", min=1, max=2**20)
            dynamic_shapes = tuple({0: batch} for _ in args)
        try:
            with _quiet_exporter():
                program = torch.onnx.export(
                    module,
                    args,
                    input_names=list(inputs),
                    output_names=[output_name],
                    opset_version=opset,
                    dynamo=True,
                    dynamic_shapes=dynamic_shapes,
                    verbose=False,
                )
        except Exception as exc:
            raise ExportError(
                f"torch.onnx.export failed (an operator without an ONNX translation, or "
                f"data-dependent control flow?): {first_line(exc)}"
            ) from exc
        if program is None:  # pragma: no cover - dynamo=True always returns a program
            raise ExportError("torch.onnx.export returned no program")
        written_opset = _default_opset(program.model_proto)
        if opset is not None and written_opset != opset:
            # The dynamo exporter writes its own opset (18) and converts down on request; when
            # an operator has no adapter to the older version it keeps 18 and only warns.
            raise ExportError(
                f"torch.onnx.export could not write opset {opset}: it wrote opset "
                f"{written_opset} (the version converter has no adapter to opset {opset} for an "
                f"operator of this model). Ask for opset {written_opset} or newer, or leave "
                f"opset unset"
            )

        signature = Signature.from_arrays(
            inputs, {output_name: reference}, dynamic_batch=dynamic_batch
        )
        backend = OnnxBackend()
        with staged_export(Path(directory), [MODEL_FILE], overwrite=overwrite) as staging:
            path = staging / MODEL_FILE
            large = (
                sum(p.numel() * p.element_size() for p in module.parameters())
                > _EXTERNAL_DATA_BYTES
            )
            with _quiet_exporter():
                program.save(str(path), external_data=large)
            try:
                onnx.checker.check_model(str(path))
            except Exception as exc:
                raise ExportError(f"The exported ONNX model is invalid: {first_line(exc)}") from exc
            signature.save(staging)
            batches = (
                parity_batches(n_parity_inputs)
                if dynamic_batch
                else [inputs_batch(inputs)] * n_parity_inputs
            )
            load_time, parity, providers = load_and_compare(
                lambda: backend.load(staging),
                lambda drawn: run_eager(module, drawn, what="a parity input"),
                inputs,
                batches,
                sampler=sampler, atol=atol, rtol=rtol,
                what="ONNX Runtime output differs from eager torch",
                keep=lambda runner: runner.providers,  # type: ignore[attr-defined]
            )
            size = folder_size(staging)
        directory = Path(directory)
        return ExportResult(
            backend="onnx",
            directory=directory,
            artifact=directory / MODEL_FILE,
            size_bytes=size,
            load_time_s=load_time,
            parity=parity,
            details={
                "opset": written_opset,
                "dynamic_batch": dynamic_batch,
                "providers": providers,
                "torch_version": str(torch.__version__),
                "signature": signature.model_dump(),
            },
        )


def _default_opset(model: Any) -> int | None:
    """The default-domain (``ai.onnx``) opset an ``onnx.ModelProto`` imports."""
    return max(
        (int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")),
        default=None,
    )


def inputs_batch(inputs: dict[str, Any]) -> int:
    return int(next(iter(inputs.values())).shape[0])
