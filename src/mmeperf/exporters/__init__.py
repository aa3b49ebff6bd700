"""Exporters: source model -> target backend artifact, with a parity report.

``TorchScriptExporter`` (torch -> ``pytorch``), ``OnnxExporter`` (torch -> ``onnx``) and
``TensorRTExporter`` (ONNX -> ``tensorrt``); each imports its framework only when it runs.
"""

from mmeperf.exporters.base import Exporter, ExportResult, ParityReport
from mmeperf.exporters.onnx import OnnxExporter
from mmeperf.exporters.tensorrt import TensorRTExporter
from mmeperf.exporters.torchscript import TorchScriptExporter

__all__ = [
    "ExportResult",
    "Exporter",
    "OnnxExporter",
    "ParityReport",
    "TensorRTExporter",
    "TorchScriptExporter",
]
