"""Helpers for the Triton config tests."""

from __future__ import annotations

from typing import Any

import pytest

from mmeperf.repository.triton import TritonModelConfig


def parsed(config: TritonModelConfig) -> Any:
    """``config`` parsed straight by Triton's protobuf, not our wrapper: strict about unknown fields."""
    pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    return text_format.Parse(config.to_pbtxt(), pb.ModelConfig())
