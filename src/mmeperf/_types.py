"""Type aliases shared across mmeperf (one module, so signatures read the same everywhere)."""

from __future__ import annotations

import os
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

#: A filesystem path given by a user.
PathLike: TypeAlias = str | os.PathLike[str]
#: A batch of inputs or outputs: the first axis indexes rows/samples.
Array: TypeAlias = npt.NDArray[Any]
#: Named tensors, for models with several inputs (NLP: input_ids, attention_mask, ...).
Tensors: TypeAlias = dict[str, Array]
#: What a backend's runner takes and returns.
Batch: TypeAlias = Array | Tensors
#: JSON-compatible value.
JSON: TypeAlias = dict[str, Any] | list[Any] | str | int | float | bool | None
#: Repository layouts a server understands.
Layout: TypeAlias = Literal["sagemaker", "triton"]
#: Bytes, counted as integers everywhere (parse "512MiB" with mmeperf.units.parse_size).
ByteCount: TypeAlias = int

__all__ = ["JSON", "Array", "Batch", "ByteCount", "Layout", "PathLike", "Tensors", "np"]
