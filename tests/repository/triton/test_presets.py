"""Ready-made configs (CV, NLP, FIL, Python, from an export's signature) parse with Triton's protobuf."""

from __future__ import annotations

from typing import Any

import pytest

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")

from mmeperf.errors import ConfigurationError  # noqa: E402
from mmeperf.repository.triton import (  # noqa: E402
    TritonTensor,
    config_for_signature,
    cv_config,
    fil_config,
    nlp_config,
    python_config,
)
from tests.repository.triton.conftest import parsed  # noqa: E402

PLATFORMS = ["pytorch_libtorch", "onnxruntime_onnx", "tensorrt_plan"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_cv_configs_parse_with_the_reference_shape(platform: str) -> None:
    msg = parsed(cv_config(platform, name="resnet", warmup=True, max_queue_delay_microseconds=500))  # type: ignore[arg-type]
    assert msg.name == "resnet" and msg.platform == platform and msg.max_batch_size == 32
    assert msg.input[0].name == "INPUT__0" and list(msg.input[0].dims) == [3, 224, 224]
    assert msg.input[0].data_type == pb.TYPE_FP32
    assert msg.output[0].name == "OUTPUT__0" and list(msg.output[0].dims) == [1000]
    assert (
        msg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
        and msg.instance_group[0].count == 1
    )
    assert list(msg.dynamic_batching.preferred_batch_size) == [16]
    assert msg.dynamic_batching.max_queue_delay_microseconds == 500
    warm = msg.model_warmup[0]
    assert warm.batch_size == 1 and warm.inputs["INPUT__0"].random_data
    assert list(warm.inputs["INPUT__0"].dims) == [3, 224, 224]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_nlp_configs_parse(platform: str) -> None:
    config = nlp_config(
        platform,  # type: ignore[arg-type]
        input_names=("input_ids", "attention_mask", "token_type_ids"),
        input_dtype="TYPE_INT32",
        instance_kind="KIND_CPU",
        instance_count=2,
    )
    msg = parsed(config)
    assert [i.name for i in msg.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(i.data_type == pb.TYPE_INT32 and list(i.dims) == [128] for i in msg.input)
    assert msg.output[0].name == "last_hidden_state" and list(msg.output[0].dims) == [128, 768]
    assert msg.max_batch_size == 128 and msg.HasField("dynamic_batching")
    assert not list(msg.dynamic_batching.preferred_batch_size)
    assert (
        msg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
        and msg.instance_group[0].count == 2
    )


def test_tensorrt_nlp_config_can_leave_io_to_auto_complete() -> None:
    msg = parsed(
        nlp_config("tensorrt_plan", io=False, max_batch_size=32, preferred_batch_sizes=[16])
    )
    assert len(msg.input) == 0 and len(msg.output) == 0 and msg.platform == "tensorrt_plan"


def test_fil_and_python_configs_parse() -> None:
    fil = parsed(
        fil_config(num_features=17, name="churn", threshold=0.3, predict_proba=True, num_outputs=2)
    )
    assert fil.backend == "fil" and not fil.platform
    assert fil.input[0].name == "input__0" and list(fil.input[0].dims) == [17]
    assert fil.parameters["model_type"].string_value == "xgboost_json"
    assert fil.parameters["predict_proba"].string_value == "true"
    assert fil.parameters["threshold"].string_value == "0.3"
    sagemaker_style = fil_config(
        num_features=17, model_type="xgboost_ubj", default_model_filename="xgboost-model"
    )
    assert parsed(sagemaker_style).default_model_filename == "xgboost-model"
    assert sagemaker_style.model_filename == "xgboost-model"

    metrics = python_config(
        name="server_metrics",
        inputs=[TritonTensor(name="dummy", data_type="TYPE_FP32", dims=[1])],
        outputs=[TritonTensor(name="metrics", data_type="TYPE_STRING", dims=[1])],
    )
    msg = parsed(metrics)
    assert msg.backend == "python" and msg.output[0].data_type == pb.TYPE_STRING
    assert msg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU


def test_config_from_an_exported_signature_parses() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from mmeperf.backends.tensors import Signature
    from tests.exporters._shared import exported

    for backend, platform in (("pytorch", "pytorch_libtorch"), ("onnx", "onnxruntime_onnx")):
        signature = Signature.load(exported("bert", backend).directory)
        assert signature is not None
        msg = parsed(
            config_for_signature(
                backend, signature, max_batch_size=16, preferred_batch_sizes=[4, 8]
            )
        )
        assert msg.platform == platform
        assert [(i.name, i.data_type, list(i.dims)) for i in msg.input] == [
            ("input_ids", pb.TYPE_INT64, [16]),
            ("attention_mask", pb.TYPE_INT64, [16]),
        ]
        assert list(msg.output[0].dims) == [16, 32]


def test_builders_raise_configuration_errors() -> None:
    with pytest.raises(
        ConfigurationError, match=r"preferred batch sizes \[64\] exceed max_batch_size 32"
    ):
        cv_config("pytorch_libtorch", preferred_batch_sizes=[16, 64])
    with pytest.raises(ConfigurationError, match="dims must be positive"):
        cv_config("pytorch_libtorch", image_shape=(3, 0, 224))
    with pytest.raises(ConfigurationError, match="model_type"):
        fil_config(num_features=3, model_type="pickle")
    with pytest.raises(ValueError, match="count must be >= 1"):
        cv_config("pytorch_libtorch", instance_count=0)


def _signature(shape: list[int], out_shape: list[int]) -> Any:
    from mmeperf.backends.tensors import Signature, TensorSpec

    return Signature(
        inputs=[TensorSpec(name="x", dtype="float32", shape=shape)],
        outputs=[TensorSpec(name="y", dtype="float32", shape=out_shape)],
    )


def test_dims_leave_out_the_batch_axis_only_when_triton_batches() -> None:
    batched = parsed(config_for_signature("onnx", _signature([-1, 4], [-1, 3]), max_batch_size=8))
    assert batched.max_batch_size == 8
    assert list(batched.input[0].dims) == [4] and list(batched.output[0].dims) == [3]

    # max_batch_size 0: Triton wants the full shape, batch axis included.
    fixed = parsed(config_for_signature("onnx", _signature([2, 4], [2, 3]), max_batch_size=0))
    assert fixed.max_batch_size == 0
    assert list(fixed.input[0].dims) == [2, 4] and list(fixed.output[0].dims) == [2, 3]

    # A dynamic first axis without Triton batching stays -1; warmup sends one row.
    free = parsed(
        config_for_signature(
            "pytorch", _signature([-1, 4], [-1, 3]), max_batch_size=0, warmup=True
        )
    )
    assert list(free.input[0].dims) == [-1, 4]
    assert list(free.model_warmup[0].inputs["x"].dims) == [1, 4]

    # One value per row: dims [1] with a reshape to a scalar, as Triton documents it.
    scalar = parsed(config_for_signature("onnx", _signature([-1, 4], [-1]), max_batch_size=8))
    assert list(scalar.output[0].dims) == [1]
    assert scalar.output[0].HasField("reshape") and list(scalar.output[0].reshape.shape) == []


def test_a_fixed_batch_export_is_refused_for_a_batching_config() -> None:
    # Exported with dynamic_batch=False (shape [2, 4]): Triton would add a batch axis in front.
    with pytest.raises(ConfigurationError, match=r"fixed shape \[2, 4\].*max_batch_size=32"):
        config_for_signature("onnx", _signature([2, 4], [2, 3]), max_batch_size=32)
