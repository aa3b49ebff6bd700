"""Tiny sample models and their exports, built once per test session and shared by the format
tests (exporters, backends, Triton repositories, the demo): exports cost seconds each."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mmeperf.exporters.base import ExportResult
from mmeperf.sample_models import SampleModel, sample_model

_ROOT = Path(tempfile.mkdtemp(prefix="mmeperf-test-exports-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@functools.cache
def tiny(name: str) -> SampleModel:
    """The tiny variant of sample model ``name`` (resnet50, vit, bert), seed 0."""
    return sample_model(name, tiny=True, seed=0)


@functools.cache
def exported(name: str, fmt: str) -> ExportResult:
    """The tiny model ``name`` exported to ``fmt`` (pytorch or onnx), once per session.

    Treat the folder as read-only: copy it before changing anything.
    """
    from mmeperf.exporters import OnnxExporter, TorchScriptExporter

    model = tiny(name)
    exporter: Any = {"pytorch": TorchScriptExporter, "onnx": OnnxExporter}[fmt]()
    return exporter.export(  # type: ignore[no-any-return]
        model.module,
        model.example_inputs(2),
        _ROOT / name / fmt,
        output_name=model.output_name,
        sampler=model.example_inputs,
    )
