"""torch module -> TorchScript (``model.pt``) by tracing or scripting, checked against eager torch.

The example input is run through the eager module first, so an input of the wrong shape fails
with the model's own complaint before anything is traced or written.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from mmeperf._deps import require
from mmeperf._types import Array, Tensors
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

__all__ = ["TorchScriptExporter", "check_torch_module", "quiet_jit", "run_eager"]


def check_torch_module(model: Any, what: str) -> Any:
    """``model`` as an eval-mode torch module; ExportError for anything else."""
    torch = require("torch", what=what, extra="torch")
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"{what} exports a torch.nn.Module, got {type(model).__name__}")
    return model.eval()


def run_eager(model: Any, inputs: Tensors, *, what: str = "the example input") -> Array:
    """Run the eager module on numpy inputs; ExportError (naming the cause) when it fails."""
    import torch

    try:
        with torch.inference_mode():
            result = model(*[torch.from_numpy(np.ascontiguousarray(a)) for a in inputs.values()])
    except Exception as exc:
        shapes = {k: list(v.shape) for k, v in inputs.items()}
        raise ExportError(f"The model cannot run {what} {shapes}: {first_line(exc)}") from exc
    if not isinstance(result, torch.Tensor):
        raise ExportError(
            f"The model's forward must return one tensor, got {type(result).__name__}; wrap it "
            f"(see mmeperf.sample_models) so it returns e.g. the logits"
        )
    return np.asarray(result.detach().cpu().numpy())


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """Hide torch.jit's deprecation notices and tracer warnings (trace/script work in 2.x;
    parity, not the tracer's heuristics, is our proof)."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*", category=FutureWarning)
        warnings.filterwarnings("ignore", category=getattr(torch.jit, "TracerWarning", Warning))
        # transformers' own deprecations fire when the tracer walks the module's attributes
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*")
        yield


class TorchScriptExporter(Exporter):
    """torch.nn.Module -> ``model.pt`` for the ``pytorch`` backend (Triton ``pytorch_libtorch``)."""

    source: ClassVar[str] = "torch"
    target: ClassVar[str] = "pytorch"

    def export(
        self,
        model: Any,
        example_input: Any,
        directory: Path,
        *,
        method: Literal["trace", "script"] = "trace",
        input_names: Sequence[str] | None = None,
        output_name: str = "OUTPUT__0",
        n_parity_inputs: int = 3,
        sampler: InputSampler | None = None,
        atol: float | None = None,
        rtol: float | None = None,
        overwrite: bool = False,
        **options: Any,
    ) -> ExportResult:
        """Trace (default) or script ``model`` with ``example_input``; write ``model.pt`` and
        ``signature.json`` into ``directory`` once parity holds on ``n_parity_inputs`` inputs.

        ``input_names`` name the forward's inputs in order (default: its parameter names);
        ``sampler(batch_size, seed=...)`` draws the parity inputs (default: like the example).
        """
        if options:
            raise ExportError(f"Unknown TorchScript export options: {sorted(options)}")
        if method not in ("trace", "script"):
            raise ExportError(f"method must be 'trace' or 'script', got {method!r}")
        if n_parity_inputs < 1:
            raise ExportError(f"n_parity_inputs must be >= 1, got {n_parity_inputs}")
        import torch

        from mmeperf.backends.pytorch import MODEL_FILE, TorchScriptBackend

        check_destination(Path(directory), [MODEL_FILE], overwrite=overwrite)
        module = check_torch_module(model, "The TorchScript exporter")
        names = list(input_names) if input_names is not None else forward_names(module)
        inputs = to_numpy_inputs(example_input, names)
        reference = run_eager(module, inputs)
        default_atol, default_rtol = DEFAULT_TOLERANCES["pytorch"]
        atol = default_atol if atol is None else atol
        rtol = default_rtol if rtol is None else rtol

        try:
            with quiet_jit():
                if method == "trace":
                    args = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs.values())
                    scripted = torch.jit.trace(module, args, check_trace=False)  # type: ignore[no-untyped-call]
                else:
                    scripted = torch.jit.script(module)
        except Exception as exc:
            raise ExportError(f"torch.jit.{method} failed: {first_line(exc)}") from exc

        signature = Signature.from_arrays(inputs, {output_name: reference})
        backend = TorchScriptBackend()
        with staged_export(Path(directory), [MODEL_FILE], overwrite=overwrite) as staging:
            torch.jit.save(scripted, str(staging / MODEL_FILE))
            signature.save(staging)
            # We wrote this archive ourselves a moment ago: loading it runs no foreign code.
            load_time, parity, _ = load_and_compare(
                lambda: backend.load(staging, allow_pickle=True),
                lambda drawn: run_eager(module, drawn, what="a parity input"),
                inputs,
                parity_batches(n_parity_inputs),
                sampler=sampler, atol=atol, rtol=rtol,
                what="TorchScript output differs from eager torch",
            )
            size = folder_size(staging)
        directory = Path(directory)
        return ExportResult(
            backend="pytorch",
            directory=directory,
            artifact=directory / MODEL_FILE,
            size_bytes=size,
            load_time_s=load_time,
            parity=parity,
            details={
                "method": method,
                "torch_version": str(torch.__version__),
                "signature": signature.model_dump(),
            },
        )
