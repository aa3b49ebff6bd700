"""Triton config.pbtxt: every config the library writes parses with Triton's own protobuf; invalid
requests are refused before anything is written; packaging into SageMaker and Triton layouts."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")

from mmeperf.backends.tensorrt import EngineProfile  # noqa: E402
from mmeperf.errors import ConfigurationError  # noqa: E402
from mmeperf.repository import ModelRepository  # noqa: E402
from mmeperf.repository.triton import (  # noqa: E402
    BatchingSpec,
    TritonModelConfig,
    TritonTensor,
    WarmupSpec,
    check_engine_profile,
    config_for_signature,
    cv_config,
    fil_config,
    nlp_config,
    package_model,
    parse_config,
    python_config,
    triton_model_folder,
)

PLATFORMS = ["pytorch_libtorch", "onnxruntime_onnx", "tensorrt_plan"]


def _parsed(config: TritonModelConfig) -> Any:
    from google.protobuf import text_format

    # Straight through Triton's protobuf, not our wrapper: strict about unknown fields.
    return text_format.Parse(config.to_pbtxt(), pb.ModelConfig())


@pytest.mark.parametrize("platform", PLATFORMS)
def test_cv_configs_parse_with_the_reference_shape(platform: str) -> None:
    msg = _parsed(cv_config(platform, name="resnet", warmup=True, max_queue_delay_microseconds=500))  # type: ignore[arg-type]
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
    msg = _parsed(config)
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
    msg = _parsed(
        nlp_config("tensorrt_plan", io=False, max_batch_size=32, preferred_batch_sizes=[16])
    )
    assert len(msg.input) == 0 and len(msg.output) == 0 and msg.platform == "tensorrt_plan"


def test_fil_and_python_configs_parse() -> None:
    fil = _parsed(
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
    assert _parsed(sagemaker_style).default_model_filename == "xgboost-model"
    assert sagemaker_style.model_filename == "xgboost-model"

    metrics = python_config(
        name="server_metrics",
        inputs=[TritonTensor(name="dummy", data_type="TYPE_FP32", dims=[1])],
        outputs=[TritonTensor(name="metrics", data_type="TYPE_STRING", dims=[1])],
    )
    msg = _parsed(metrics)
    assert msg.backend == "python" and msg.output[0].data_type == pb.TYPE_STRING
    assert msg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU


def test_strings_are_escaped() -> None:
    config = cv_config("onnxruntime_onnx", name='odd"name\\x', input_name="in:0")
    msg = _parsed(config)
    assert msg.name == 'odd"name\\x' and msg.input[0].name == "in:0"


def test_config_from_an_exported_signature_parses() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from mmeperf.backends.tensors import Signature
    from tests.exporters._shared import exported

    for backend, platform in (("pytorch", "pytorch_libtorch"), ("onnx", "onnxruntime_onnx")):
        signature = Signature.load(exported("bert", backend).directory)
        assert signature is not None
        msg = _parsed(
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


def test_model_folder_needs_the_platforms_artifact(tmp_path: Path) -> None:
    artifact = tmp_path / "art"
    artifact.mkdir()
    (artifact / "model.onnx").write_bytes(b"onnx")
    with pytest.raises(ConfigurationError, match=r"loads model\.pt"):
        triton_model_folder(tmp_path / "m", cv_config("pytorch_libtorch"), artifact)
    assert not (tmp_path / "m").exists()
    folder = triton_model_folder(tmp_path / "m", cv_config("onnxruntime_onnx"), artifact)
    assert (folder / "config.pbtxt").is_file() and (
        folder / "1" / "model.onnx"
    ).read_bytes() == b"onnx"


def _plan_folder(tmp_path: Path, max_batch: int) -> Path:
    art = tmp_path / "plan"
    art.mkdir()
    (art / "model.plan").write_bytes(b"engine")
    EngineProfile(min_batch=1, opt_batch=min(64, max_batch), max_batch=max_batch).save(art)
    return art


def test_sagemaker_packaging_holds_name_folder_and_copies(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    entries = package_model(
        repo,
        "resnet",
        _plan_folder(tmp_path, 32),
        cv_config("tensorrt_plan", max_batch_size=32),
        backend="tensorrt",
        copies=3,
    )
    assert [e.target for e in entries] == [
        "resnet.tar.gz",
        "resnet-v0.tar.gz",
        "resnet-v1.tar.gz",
        "resnet-v2.tar.gz",
    ]
    with tarfile.open(tmp_path / "repo" / "resnet-v2.tar.gz") as tar:
        names = sorted(tar.getnames())
        assert names == ["resnet/1/model.plan", "resnet/1/tensorrt.json", "resnet/config.pbtxt"]
        text = tar.extractfile("resnet/config.pbtxt").read().decode()  # type: ignore[union-attr]
    assert parse_config(text).platform == "tensorrt_plan"
    assert all(e.backend == "tensorrt" for e in entries)


def test_packaging_refuses_a_config_the_engine_cannot_serve_before_writing(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    with pytest.raises(ConfigurationError, match="below the engine's profile max batch 128"):
        package_model(
            repo,
            "resnet",
            _plan_folder(tmp_path, 128),
            cv_config("tensorrt_plan", max_batch_size=12, preferred_batch_sizes=[12]),
            backend="tensorrt",
        )
    assert repo.names() == []
    with pytest.raises(ConfigurationError, match="served by Triton's onnxruntime_onnx"):
        package_model(repo, "m", tmp_path, cv_config("pytorch_libtorch"), backend="onnx")
    assert repo.names() == []


def test_triton_layout_packaging(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "triton", layout="triton")
    package_model(
        repo,
        "resnet",
        _plan_folder(tmp_path, 32),
        cv_config("tensorrt_plan", name="resnet", max_batch_size=32),
        backend="tensorrt",
        copies=1,
    )
    root = tmp_path / "triton"
    assert (root / "resnet" / "1" / "model.plan").is_file()
    assert parse_config((root / "resnet" / "config.pbtxt").read_text()).name == "resnet"
    # The repository renames the copy's config so Triton accepts the folder.
    assert parse_config((root / "resnet-v0" / "config.pbtxt").read_text()).name == "resnet-v0"


@pytest.mark.parametrize("name", ["../escaped", "a/../../escaped", ".."])
def test_packaging_validates_the_name_before_building_any_folder(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from mmeperf.errors import InvalidModelNameError

    # The staging folder is made under TMPDIR: a name used as a path there would land beside it.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    repo = ModelRepository(tmp_path / "repo")
    with pytest.raises(InvalidModelNameError):
        package_model(
            repo,
            name,
            _plan_folder(tmp_path, 32),
            cv_config("tensorrt_plan", max_batch_size=32),
            backend="tensorrt",
        )
    assert list(scratch.iterdir()) == []  # nothing written beside (or inside) the temp folder
    assert not (tmp_path / "escaped").exists()
    assert repo.names() == []


def _signature(shape: list[int], out_shape: list[int]) -> Any:
    from mmeperf.backends.tensors import Signature, TensorSpec

    return Signature(
        inputs=[TensorSpec(name="x", dtype="float32", shape=shape)],
        outputs=[TensorSpec(name="y", dtype="float32", shape=out_shape)],
    )


def test_dims_leave_out_the_batch_axis_only_when_triton_batches() -> None:
    batched = _parsed(config_for_signature("onnx", _signature([-1, 4], [-1, 3]), max_batch_size=8))
    assert batched.max_batch_size == 8
    assert list(batched.input[0].dims) == [4] and list(batched.output[0].dims) == [3]

    # max_batch_size 0: Triton wants the full shape, batch axis included.
    fixed = _parsed(config_for_signature("onnx", _signature([2, 4], [2, 3]), max_batch_size=0))
    assert fixed.max_batch_size == 0
    assert list(fixed.input[0].dims) == [2, 4] and list(fixed.output[0].dims) == [2, 3]

    # A dynamic first axis without Triton batching stays -1; warmup sends one row.
    free = _parsed(
        config_for_signature(
            "pytorch", _signature([-1, 4], [-1, 3]), max_batch_size=0, warmup=True
        )
    )
    assert list(free.input[0].dims) == [-1, 4]
    assert list(free.model_warmup[0].inputs["x"].dims) == [1, 4]

    # One value per row: dims [1] with a reshape to a scalar, as Triton documents it.
    scalar = _parsed(config_for_signature("onnx", _signature([-1, 4], [-1]), max_batch_size=8))
    assert list(scalar.output[0].dims) == [1]
    assert scalar.output[0].HasField("reshape") and list(scalar.output[0].reshape.shape) == []


def test_a_fixed_batch_export_is_refused_for_a_batching_config() -> None:
    # Exported with dynamic_batch=False (shape [2, 4]): Triton would add a batch axis in front.
    with pytest.raises(ConfigurationError, match=r"fixed shape \[2, 4\].*max_batch_size=32"):
        config_for_signature("onnx", _signature([2, 4], [2, 3]), max_batch_size=32)
