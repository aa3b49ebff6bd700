"""The ``pytorch`` backend: TorchScript archives (``model.pt``), as Triton's libtorch backend serves.

Saves a scripted or traced module, loads it on the GPU when one is present (else the CPU) and
runs named tensors through it. Export from an eager module with :class:`TorchScriptExporter`.
A TorchScript archive is code from its author (PyTorch's SECURITY.md: treat models like
executable programs), so ``load`` refuses it unless the caller opts in with ``allow_pickle=True``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mmeperf._types import Tensors
from mmeperf.backends.tensors import (
    Signature,
    TensorBackend,
    TensorRunner,
    TensorSpec,
    main_artifact,
)
from mmeperf.errors import ConfigurationError, ModelLoadError, PredictionError

if TYPE_CHECKING:
    import torch

__all__ = ["MODEL_FILE", "TorchScriptBackend", "TorchScriptRunner"]

#: The artifact's file name (what Triton's pytorch_libtorch platform loads from ``1/``).
MODEL_FILE = "model.pt"


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``; ``MMEPERF_TORCH_DEVICE`` overrides."""
    import torch

    return os.environ.get("MMEPERF_TORCH_DEVICE") or (
        "cuda" if torch.cuda.is_available() else "cpu"
    )


class TorchScriptRunner(TensorRunner):
    """A TorchScript module in memory, called with its inputs in forward order."""

    def __init__(self, module: torch.jit.ScriptModule, signature: Signature, device: str) -> None:
        super().__init__(signature)
        self.module = module
        self.device = device
        self._memory_bytes = sum(
            t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()]
        )

    @property
    def memory_bytes(self) -> int:
        """Bytes of the module's parameters and buffers (activations come on top, per batch)."""
        return int(self._memory_bytes)

    def run(self, inputs: Tensors) -> Tensors:
        import torch

        try:
            with torch.inference_mode():
                args = [
                    torch.from_numpy(inputs[name]).to(self.device)
                    for name in self.signature.input_names
                ]
                result = self.module(*args)
        except RuntimeError as exc:
            raise PredictionError(f"TorchScript model failed: {_last_line(exc)}") from exc
        return _name_outputs(result, self.signature)

    def close(self) -> None:
        del self.module
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


class TorchScriptBackend(TensorBackend):
    """TorchScript (``model.pt``): Triton's ``pytorch_libtorch`` platform."""

    name: ClassVar[str] = "pytorch"
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    extra: ClassVar[str | None] = "torch"
    artifact_patterns: ClassVar[tuple[str, ...]] = (MODEL_FILE,)
    triton_platform: ClassVar[str | None] = "pytorch_libtorch"

    def save(self, model: Any, directory: Path) -> Path:
        """Write a ScriptModule (or a scriptable module) as ``model.pt``.

        Eager modules that ``torch.jit.script`` cannot compile need an example input: use
        :class:`mmeperf.exporters.TorchScriptExporter`, which traces them.
        """
        import torch

        if isinstance(model, torch.jit.ScriptModule):
            scripted = model
        elif isinstance(model, torch.nn.Module):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.simplefilter("ignore", FutureWarning)
                    scripted = torch.jit.script(model.eval())
            except Exception as exc:
                raise ConfigurationError(
                    f"torch.jit.script cannot compile {type(model).__name__} "
                    f"({_first_line(exc)}); trace it with "
                    f"mmeperf.exporters.TorchScriptExporter and an example input instead"
                ) from exc
        else:
            raise ConfigurationError(
                f"The 'pytorch' backend saves a torch.nn.Module or ScriptModule, got {type(model).__name__}"
            )
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        torch.jit.save(scripted, str(path))
        return path

    def load(self, directory: Path, *, allow_pickle: bool = False) -> TorchScriptRunner:
        """Load ``model.pt``; refused (ModelLoadError) unless ``allow_pickle=True``.

        TorchScript archives carry code and pickled data that run when loaded: PyTorch's
        security policy says to treat them like executable programs from their provider. Opt
        in only for artifacts you trust (``mmeperf serve --allow-pickle``,
        ``LocalEndpoint(allow_pickle=True)``); mmeperf's exporters opt in for the archives they
        have just written themselves.
        """
        path = main_artifact(directory, MODEL_FILE)
        if not allow_pickle:
            raise ModelLoadError(
                f"{path} is a TorchScript archive, which runs code from its author when loaded, "
                f"so it is refused. If you trust it, opt in with allow_pickle=True "
                f"(mmeperf serve --allow-pickle, LocalEndpoint(allow_pickle=True))"
            )
        import torch

        device = default_device()
        try:
            module = torch.jit.load(str(path), map_location=device)  # type: ignore[no-untyped-call]
        except Exception as exc:  # torch raises RuntimeError/ValueError for foreign files
            raise ModelLoadError(
                f"{path} is not a TorchScript archive: {_last_line(exc)}"
            ) from exc
        module.eval()
        signature = Signature.load(path.parent) or _signature_from_schema(module)
        return TorchScriptRunner(module, signature, device)


def _signature_from_schema(module: torch.jit.ScriptModule) -> Signature:
    """Input names from the forward schema when no ``signature.json`` came with the archive."""
    names = [a.name for a in module.forward.schema.arguments[1:]]  # type: ignore[attr-defined]
    return Signature(
        inputs=[TensorSpec(name=n) for n in names],
        outputs=[TensorSpec(name="OUTPUT__0")],
    )


def _name_outputs(result: Any, signature: Signature) -> Tensors:
    import torch

    if isinstance(result, torch.Tensor):
        values = [result]
    elif isinstance(result, (tuple, list)):
        values = [r for r in result if isinstance(r, torch.Tensor)]
    elif isinstance(result, dict):
        values = [v for v in result.values() if isinstance(v, torch.Tensor)]
    else:
        raise PredictionError(f"TorchScript model returned {type(result).__name__}, not tensors")
    names = signature.output_names
    out: Tensors = {}
    for i, value in enumerate(values):
        name = names[i] if i < len(names) else f"OUTPUT__{i}"
        out[name] = np.ascontiguousarray(value.detach().cpu().numpy())
    return out


def _first_line(exc: BaseException) -> str:
    """The first line: what torch.jit.script's compile errors lead with (source follows)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _last_line(exc: BaseException, limit: int = 500) -> str:
    """The last non-empty line of an exception's message: TorchScript's first line is a
    generic "The following operation failed in the TorchScript interpreter.", its last the
    real exception (e.g. ``RuntimeError: mat1 and mat2 shapes cannot be multiplied``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:limit] if lines else type(exc).__name__
