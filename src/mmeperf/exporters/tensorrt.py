"""ONNX -> TensorRT engine (``model.plan``): builder + ONNX parser, one optimization profile for
min/opt/max batch, FP16 optional; parity against ONNX Runtime on the same ONNX file.

The options and the ONNX file are checked before TensorRT is imported, then the parser's errors
(unsupported operators) and a failed build stop the export before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from mmeperf._deps import require
from mmeperf._types import Tensors
from mmeperf.backends.tensorrt import BUILD_INFO_FILE, MODEL_FILE, EngineProfile, import_tensorrt
from mmeperf.backends.tensors import Signature
from mmeperf.errors import ExportError
from mmeperf.exporters._common import (
    DEFAULT_TOLERANCES,
    InputSampler,
    check_destination,
    first_line,
    folder_size,
    load_and_compare,
    parity_batches,
    staged_export,
    to_numpy_inputs,
)
from mmeperf.exporters.base import Exporter, ExportResult

__all__ = ["TensorRTExporter", "onnx_source"]

_DEFAULT_WORKSPACE = 4 * 2**30


def onnx_source(model: Any) -> Path:
    """The ONNX file to build from: a path, a folder holding ``model.onnx``, or an ExportResult."""
    if isinstance(model, ExportResult):
        if model.backend != "onnx":
            raise ExportError(f"TensorRT builds from an ONNX export, got a {model.backend!r} one")
        model = model.artifact
    if not isinstance(model, (str, Path)):
        raise ExportError(
            f"The TensorRT exporter reads an ONNX file (path, folder or ExportResult), got "
            f"{type(model).__name__}; export torch modules to ONNX first (OnnxExporter)"
        )
    path = Path(model)
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise ExportError(f"No ONNX file at {path}")
    return path


class TensorRTExporter(Exporter):
    """``model.onnx`` -> ``model.plan`` for the ``tensorrt`` backend (Triton ``tensorrt_plan``)."""

    source: ClassVar[str] = "onnx"
    target: ClassVar[str] = "tensorrt"

    def export(
        self,
        model: Any,
        example_input: Any,
        directory: Path,
        *,
        min_batch: int = 1,
        opt_batch: int = 16,
        max_batch: int = 32,
        fp16: bool = False,
        tf32: bool = False,
        workspace_bytes: int = _DEFAULT_WORKSPACE,
        n_parity_inputs: int = 3,
        sampler: InputSampler | None = None,
        atol: float | None = None,
        rtol: float | None = None,
        overwrite: bool = False,
        **options: Any,
    ) -> ExportResult:
        """Build an engine from the ONNX ``model`` for batches ``min_batch..max_batch`` (tuned
        for ``opt_batch``); ``example_input`` gives each input's per-sample shape.

        ``tf32`` lets fp32 layers use TF32 tensor cores (faster, ~1e-3 relative error);
        without it fp32 engines stay within 1e-3 of ONNX Runtime. ``fp16`` allows half
        precision kernels (tolerance 5e-2 absolute / 2e-2 relative by default).
        """
        if options:
            raise ExportError(f"Unknown TensorRT export options: {sorted(options)}")
        try:
            profile = EngineProfile(
                min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch, fp16=fp16
            )
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
        if n_parity_inputs < 1:
            raise ExportError(f"n_parity_inputs must be >= 1, got {n_parity_inputs}")
        if workspace_bytes < 2**20:
            raise ExportError(f"workspace_bytes must be at least 1 MiB, got {workspace_bytes}")
        check_destination(Path(directory), [MODEL_FILE], overwrite=overwrite)
        source = onnx_source(model)
        ort = require("onnxruntime", what="The TensorRT exporter (parity reference)", extra="onnx")
        from mmeperf.backends.onnx import onnx_signature

        try:
            reference_session = ort.InferenceSession(
                str(source), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ExportError(f"{source} is not a loadable ONNX model: {first_line(exc)}") from exc
        onnx_sig = onnx_signature(reference_session)
        inputs = to_numpy_inputs(example_input, onnx_sig.input_names)
        _check_inputs_against_onnx(inputs, onnx_sig, profile)

        trt = import_tensorrt()  # the one-sentence fix when TensorRT is missing
        require("torch", what="The TensorRT exporter (GPU buffers)", extra="torch")
        plan = _build_engine(
            trt, source, inputs, profile, tf32=tf32, workspace_bytes=workspace_bytes
        )
        profile = profile.model_copy(
            update={"tensorrt_version": str(trt.__version__), "device": _device_name()}
        )

        from mmeperf.backends.tensorrt import TensorRTBackend

        tolerance_key = "tensorrt-fp16" if fp16 else "tensorrt"
        default_atol, default_rtol = DEFAULT_TOLERANCES[tolerance_key]
        atol = default_atol if atol is None else atol
        rtol = default_rtol if rtol is None else rtol
        backend = TensorRTBackend()
        with staged_export(Path(directory), [MODEL_FILE], overwrite=overwrite) as staging:
            (staging / MODEL_FILE).write_bytes(plan)
            profile.save(staging)
            load_time, parity, signature = load_and_compare(
                lambda: backend.load(staging),
                lambda drawn: reference_session.run(None, drawn)[0],
                inputs,
                parity_batches(n_parity_inputs, min_batch=min_batch, max_batch=min(max_batch, 3)),
                sampler=sampler, atol=atol, rtol=rtol,
                what="TensorRT output differs from ONNX Runtime",
                keep=lambda runner: runner.signature,  # type: ignore[attr-defined]
            )
            size = folder_size(staging)
        directory = Path(directory)
        return ExportResult(
            backend="tensorrt",
            directory=directory,
            artifact=directory / MODEL_FILE,
            size_bytes=size,
            load_time_s=load_time,
            parity=parity,
            details={
                "profile": profile.model_dump(),
                "build_info_file": BUILD_INFO_FILE,
                "tf32": tf32,
                "signature": signature.model_dump(),
            },
        )


def _check_inputs_against_onnx(
    inputs: Tensors, onnx_sig: Signature, profile: EngineProfile
) -> None:
    """The example must name every ONNX input, fit its fixed dims, and the batch axis must be
    dynamic when the profile spans more than one batch size."""
    if list(inputs) != onnx_sig.input_names:
        raise ExportError(
            f"Example inputs {list(inputs)} do not match the ONNX inputs {onnx_sig.input_names}"
        )
    for spec in onnx_sig.inputs:
        array = inputs[spec.name]
        if spec.shape is None:
            continue
        if array.ndim != len(spec.shape):
            raise ExportError(
                f"Example input {spec.name!r} has shape {list(array.shape)}; the ONNX input is {spec.shape}"
            )
        for axis, (want, got) in enumerate(
            zip(spec.shape[1:], array.shape[1:], strict=True), start=1
        ):
            if want != -1 and want != got:
                raise ExportError(
                    f"Example input {spec.name!r} axis {axis} is {got}; the ONNX input fixes it to {want}"
                )
        if spec.shape[0] != -1 and (
            profile.min_batch != spec.shape[0] or profile.max_batch != spec.shape[0]
        ):
            raise ExportError(
                f"ONNX input {spec.name!r} has a fixed batch of {spec.shape[0]}; export it with a "
                f"dynamic batch axis to build for batches {profile.min_batch}..{profile.max_batch}"
            )


def _shapes(inputs: Mapping[str, Any], batch: int) -> dict[str, tuple[int, ...]]:
    return {name: (batch, *(int(d) for d in array.shape[1:])) for name, array in inputs.items()}


def _build_engine(
    trt: Any,
    source: Path,
    inputs: Tensors,
    profile: EngineProfile,
    *,
    tf32: bool,
    workspace_bytes: int,
) -> bytes:
    """Parse the ONNX file and build a serialized engine (in memory; nothing written)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(str(trt.__version__).split(".", 1)[0])
    # TensorRT 10 networks are always explicit-batch (the flag is deprecated); 8.x needs it.
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(
            f"TensorRT's ONNX parser rejected {source.name} (unsupported operator?): "
            + "; ".join(errors[:3] or ["no detail"])
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if profile.fp16:
        if not getattr(builder, "platform_has_fast_fp16", True):
            raise ExportError("fp16 was asked for but this GPU has no fast FP16 support")
        config.set_flag(trt.BuilderFlag.FP16)
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    optimization = builder.create_optimization_profile()
    low, opt, high = (
        _shapes(inputs, b) for b in (profile.min_batch, profile.opt_batch, profile.max_batch)
    )
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        if name not in low:
            raise ExportError(f"The ONNX network has input {name!r} that the example does not give")
        optimization.set_shape(name, low[name], opt[name], high[name])
    config.add_optimization_profile(optimization)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(
            "TensorRT failed to build the engine (see its log above: out of workspace memory, "
            "or a layer without a kernel for this GPU/precision)"
        )
    return bytes(memoryview(serialized))


def _device_name() -> str | None:
    try:
        import torch

        return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None
    except Exception:
        return None
