"""The config.pbtxt schema: what Triton's own protobuf parses, and what is refused before
anything is written."""

from __future__ import annotations

from typing import Any

import pytest

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")

from mmeperf.backends.tensorrt import EngineProfile  # noqa: E402
from mmeperf.errors import ConfigurationError  # noqa: E402
from mmeperf.repository.triton import (  # noqa: E402
    BatchingSpec,
    TritonModelConfig,
    TritonTensor,
    WarmupSpec,
    check_engine_profile,
    cv_config,
    parse_config,
)
from tests.repository.triton.conftest import parsed  # noqa: E402


def test_strings_are_escaped() -> None:
    config = cv_config("onnxruntime_onnx", name='odd"name\\x', input_name="in:0")
    msg = parsed(config)
    assert msg.name == 'odd"name\\x' and msg.input[0].name == "in:0"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"max_batch_size": 8, "dynamic_batching": BatchingSpec(preferred_batch_size=[16])},
            "exceed max_batch_size 8",
        ),
        ({"max_batch_size": 0, "dynamic_batching": BatchingSpec()}, "needs max_batch_size > 0"),
        ({"max_batch_size": -1}, "max_batch_size must be >= 0"),
        ({"inputs": [], "outputs": []}, "need their inputs and outputs"),
        (
            {"inputs": [TritonTensor(name="a", data_type="TYPE_FP32", dims=[1])] * 2},
            "input names repeat",
        ),
        (
            {
                "warmup": [
                    WarmupSpec(
                        batch_size=64,
                        inputs={
                            "INPUT__0": TritonTensor(name="x", data_type="TYPE_FP32", dims=[3])
                        },
                    )
                ]
            },
            "batch_size 64 exceeds max_batch_size 32",
        ),
        (
            {
                "warmup": [
                    WarmupSpec(
                        inputs={"nope": TritonTensor(name="x", data_type="TYPE_FP32", dims=[3])}
                    )
                ]
            },
            "unknown inputs",
        ),
        ({"name": "a/b"}, "single folder name"),
    ],
)
def test_invalid_configs_are_refused(fields: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "platform": "pytorch_libtorch",
        "max_batch_size": 32,
        "inputs": [TritonTensor(name="INPUT__0", data_type="TYPE_FP32", dims=[3])],
        "outputs": [TritonTensor(name="OUTPUT__0", data_type="TYPE_FP32", dims=[2])],
    }
    with pytest.raises(ValueError, match=message):
        TritonModelConfig(**(base | fields))


def test_engine_profile_against_config() -> None:
    profile = EngineProfile(min_batch=1, opt_batch=64, max_batch=128)
    # The reference's bug: engine built for 128, config capping batches at 12.
    capped = cv_config("tensorrt_plan", max_batch_size=12, preferred_batch_sizes=[12])
    with pytest.raises(ConfigurationError, match="below the engine's profile max batch 128"):
        check_engine_profile(capped, profile)
    check_engine_profile(capped, profile, allow_unused_profile=True)
    with pytest.raises(ConfigurationError, match="exceeds the engine's profile max batch 128"):
        check_engine_profile(cv_config("tensorrt_plan", max_batch_size=256), profile)
    check_engine_profile(
        cv_config("tensorrt_plan", max_batch_size=128, preferred_batch_sizes=[64]), profile
    )
    with pytest.raises(ConfigurationError, match="tensorrt_plan"):
        check_engine_profile(cv_config("pytorch_libtorch"), profile)


def test_parse_config_reports_what_triton_would_reject() -> None:
    with pytest.raises(ConfigurationError, match="no field named"):
        parse_config('platform: "onnxruntime_onnx"\nmax_batch: 3\n')
    assert parse_config(cv_config("onnxruntime_onnx").to_pbtxt()).platform == "onnxruntime_onnx"
