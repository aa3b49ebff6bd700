"""Resident memory one loaded copy of a model holds, measured in a fresh process.

:func:`measure_resident_memory` starts ``python -m mmeperf.backends.memory_probe '<request json>'``, which
loads copies of an artifact through its backend plugin and prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from mmeperf.errors import ConfigurationError, MmeperfError

__all__ = ["ResidentMemory", "main", "measure_resident_memory", "probe"]


class ResidentMemory(BaseModel):
    """Resident memory (RSS) one loaded copy of a model holds, measured in a fresh process."""

    per_copy_bytes: int
    """(RSS after loading and invoking ``copies`` copies - RSS before) / ``copies``."""
    copies: int
    """Copies loaded for the measurement (after one warm-up copy, not counted)."""
    baseline_bytes: int
    """The probe process's RSS with the framework imported and one copy warm."""
    estimate_bytes: int
    """The runner's own estimate (its weights), for comparison."""


def measure_resident_memory(
    fmt: str, directory: Path, inputs: dict[str, Any], *, copies: int = 4, timeout_s: float = 300
) -> ResidentMemory:
    """Load ``copies`` copies of the artifact in ``directory`` through the ``fmt`` backend in a
    subprocess, one prediction each (as the MME serves a copy once loaded), and measure the RSS
    they add. One warm-up copy is loaded first so that the framework's one-time allocations
    (libraries, thread pools, kernels) are not charged to the copies.

    The artifact must be one the caller built (TorchScript is loaded with ``allow_pickle``).
    """
    if copies < 1:
        raise ConfigurationError(f"copies must be >= 1, got {copies}")
    with tempfile.TemporaryDirectory(prefix="mmeperf-rss-") as tmp:
        npz = Path(tmp) / "inputs.npz"
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in inputs.items()}
        np.savez(npz, **arrays)
        request = json.dumps(
            {"format": fmt, "directory": str(directory), "inputs": str(npz), "copies": copies}
        )
        try:
            done = subprocess.run(
                [sys.executable, "-m", "mmeperf.backends.memory_probe", request],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise MmeperfError(f"Measuring {fmt} memory took over {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MmeperfError(f"Measuring {fmt} memory failed: {tail[0]}")
    return ResidentMemory.model_validate_json(done.stdout.strip().splitlines()[-1])


def probe(request: str) -> ResidentMemory:
    """The subprocess side of :func:`measure_resident_memory`: load, invoke and measure, in this process.

    ``request`` is the JSON that :func:`measure_resident_memory` passes on the command line.
    """
    import psutil

    from mmeperf.backends import get_backend

    args = json.loads(request)
    backend = get_backend(args["format"])
    with np.load(args["inputs"]) as archive:
        inputs = {k: archive[k] for k in archive.files}
    directory = Path(args["directory"])
    process = psutil.Process()

    def load_one() -> Any:
        runner = backend.load(directory, allow_pickle=True)  # an artifact the caller built
        runner.predict(inputs)
        return runner

    warm = load_one()
    gc.collect()
    before = process.memory_info().rss
    runners = [load_one() for _ in range(int(args["copies"]))]
    gc.collect()
    after = process.memory_info().rss
    return ResidentMemory(
        per_copy_bytes=max(int((after - before) / len(runners)), 0),
        copies=len(runners),
        baseline_bytes=int(before),
        estimate_bytes=int(warm.memory_bytes),
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m mmeperf.backends.memory_probe '<request json>'``: print the measurement as one JSON line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m mmeperf.backends.memory_probe '<request json>'")
    print(probe(args[0]).model_dump_json())


if __name__ == "__main__":
    main()
