"""Exporters: source model -> target backend artifact, with a parity report."""

from mmeperf.exporters.base import Exporter, ExportResult, ParityReport

__all__ = ["ExportResult", "Exporter", "ParityReport"]
