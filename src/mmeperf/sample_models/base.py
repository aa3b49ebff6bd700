"""What a sample model is: a torch module with named, typed inputs, and example inputs for it.

The module's forward takes plain tensors in ``inputs`` order and returns one tensor, so
TorchScript tracing and ONNX export are clean.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mmeperf._types import Array, Tensors
from mmeperf.backends.tensors import Signature, TensorSpec
from mmeperf.errors import ConfigurationError

if TYPE_CHECKING:
    import torch

__all__ = ["SampleInput", "SampleModel", "seeded"]


@dataclass(frozen=True)
class SampleInput:
    """One input of a sample model: its name, per-sample shape, dtype and value range."""

    name: str
    shape: tuple[int, ...]
    """Shape of one sample (no batch axis)."""
    dtype: str
    """numpy dtype name."""
    high: int | None = None
    """Integer inputs draw from [low, high) (vocabulary size for token ids); None for floats."""
    low: int = 0


@dataclass(frozen=True)
class SampleModel:
    """A ready-to-export model with the facts an exporter and a Triton config need."""

    name: str
    """``resnet50``, ``vit``, ``bert`` with ``-tiny`` for the tiny variants."""
    task: Literal["cv", "nlp"]
    module: torch.nn.Module
    """Eager module in eval mode; forward(*inputs in order) -> one tensor."""
    inputs: tuple[SampleInput, ...]
    output_name: str
    output_shape: tuple[int, ...]
    """Shape of one sample's output (no batch axis)."""
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    """The transformers config the module was built from (for reports)."""

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    @property
    def parameter_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.module.parameters())

    def signature(self) -> Signature:
        """The tensors the model takes and returns, with a dynamic batch axis."""
        return Signature(
            inputs=[
                TensorSpec(name=i.name, dtype=i.dtype, shape=[-1, *i.shape]) for i in self.inputs
            ],
            outputs=[
                TensorSpec(name=self.output_name, dtype="float32", shape=[-1, *self.output_shape])
            ],
        )

    def example_inputs(self, batch_size: int = 1, *, seed: int = 0) -> Tensors:
        """Random inputs of ``batch_size`` rows, reproducible by ``seed``.

        NLP attention masks mark a random-length prefix of each row as real tokens, as a
        tokenizer padding to the sequence length would.
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        rng = np.random.default_rng(seed)
        out: Tensors = {}
        for spec in self.inputs:
            shape = (batch_size, *spec.shape)
            if spec.name == "attention_mask":
                lengths = rng.integers(1, spec.shape[-1] + 1, size=batch_size)
                out[spec.name] = (np.arange(spec.shape[-1])[None, :] < lengths[:, None]).astype(
                    spec.dtype
                )
            elif spec.high is not None:
                out[spec.name] = rng.integers(spec.low, spec.high, size=shape).astype(spec.dtype)
            else:
                out[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        return out

    def predict(self, inputs: Tensors) -> Array:
        """Run the eager module on numpy inputs (the reference an export is compared with)."""
        import torch

        with torch.inference_mode():
            result = self.module(
                *[torch.from_numpy(np.asarray(inputs[n])) for n in self.input_names]
            )
        return np.asarray(result.detach().cpu().numpy())


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block only (the caller's RNG state is restored)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
