"""The model-format benchmark: one CV or NLP model as TorchScript, ONNX and TensorRT, N copies of
each served by the local MME under one memory budget, users stepped up, results side by side.

It reproduces the SageMaker GPU MME reference on any machine: export the model to every format
available here (TensorRT is reported with the reason when it is not), measure the resident memory
one loaded copy of each format holds, package Triton model folders and SageMaker MME tarballs,
load copies one at a time into the local MME (each charged its measured size) until the first
eviction, step users up against the copies that fit, and write ``summary_results.csv`` with the
reference's two charts. Latency figures are each step's own exact percentiles. The memory probe
is :mod:`mmeperf.backends.memory_probe`; the charts are drawn by :mod:`mmeperf.results.charts`.
"""

from __future__ import annotations

import csv
import importlib.util
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmeperf.backends.memory_probe import ResidentMemory, measure_resident_memory
from mmeperf.errors import ConfigurationError, MmeperfError

__all__ = [
    "FORMATS",
    "SUMMARY_COLUMNS",
    "FormatOutcome",
    "FormatsDemoOptions",
    "FormatsDemoResult",
    "ResidentMemory",  # from mmeperf.backends.memory_probe
    "max_users_without_failures",
    "measure_resident_memory",  # from mmeperf.backends.memory_probe
    "run_formats_demo",
]

#: Backend plugins the demo tries, in order.
FORMATS: tuple[str, ...] = ("pytorch", "onnx", "tensorrt")
#: summary_results.csv, the reference's columns plus p95/p99 (times in milliseconds).
SUMMARY_COLUMNS: tuple[str, ...] = (
    "model_name",
    "instance_type",
    "platform",
    "max_models_loaded",
    "User Count",
    "Requests/s",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total p95 Response Time",
    "Total p99 Response Time",
    "Successful Requests",
    "Failed Requests",
)


class FormatsDemoOptions(BaseModel):
    """Options of ``mmeperf demo formats``; ``tiny`` keeps the whole run to a couple of minutes."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["resnet50", "vit", "bert"] = "resnet50"
    """Sample model: ResNet-50, ViT-Base or BERT-base shaped, random weights."""
    tiny: bool = False
    """Use the tiny variant and short steps (for a quick run or CI)."""
    copies: int | None = Field(default=None, ge=1)
    """Copies of each format put in the repository (``{name}-v{i}.tar.gz``). Default: enough
    to pass the memory budget at the format's measured size per copy (at most 256)."""
    out: Path = Path("mmeperf-out/formats")
    """Where exports, repositories, runs, summary_results.csv and charts go."""
    formats: list[str] = Field(default_factory=lambda: list(FORMATS))
    """Formats to try; those unavailable here are reported with the reason."""
    users: list[int] | None = None
    """User steps (default: 1, 2, 4, 8 tiny; 10, 20, 40, 60, 80 otherwise; the reference went to 200)."""
    step_duration_s: float | None = Field(default=None, gt=0)
    """Seconds per step (default 5 tiny, 30 otherwise, as the reference)."""
    wait_min_s: float | None = Field(default=None, ge=0)
    """Each user waits wait_min_s..wait_max_s between requests. Default 0.05-0.5 s (the
    reference's); 0 with ``tiny``, so a few users saturate the server and req/s compares formats."""
    wait_max_s: float | None = Field(default=None, ge=0)
    memory_budget: int | str | None = None
    """Model-cache budget of the local MME, the same for every format. Default 32 MiB with
    ``tiny``, 4 GiB otherwise. Each loaded copy is charged its measured resident memory."""
    payload: Literal["npy", "json"] = "npy"
    """Request encoding: NPY (NPZ for several inputs) or JSON (KServe v2, as the reference)."""
    seed: int = 0
    """Seed of the model weights and the payloads."""

    @field_validator("formats")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in FORMATS]
        if unknown or not value:
            raise ValueError(f"formats must be among {list(FORMATS)}, got {value}")
        return value

    @field_validator("users")
    @classmethod
    def _steps(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(u < 1 for u in value)):
            raise ValueError(f"users must be positive user counts, got {value}")
        return value

    def user_steps(self) -> list[int]:
        return self.users or ([1, 2, 4, 8] if self.tiny else [10, 20, 40, 60, 80])

    def wait_range(self) -> tuple[float, float]:
        low = self.wait_min_s if self.wait_min_s is not None else (0.0 if self.tiny else 0.05)
        high = (
            self.wait_max_s
            if self.wait_max_s is not None
            else (low if self.tiny else max(low, 0.5))
        )
        if high < low:
            raise ConfigurationError(f"wait_max_s ({high}) must be >= wait_min_s ({low})")
        return low, high

    def step_seconds(self) -> float:
        return self.step_duration_s or (5.0 if self.tiny else 30.0)


class FormatOutcome(BaseModel):
    """What happened to one format: exported and benchmarked, or why not."""

    format: str
    available: bool
    reason: str | None = None
    """Why the format was skipped (a missing package, no GPU, a failed export)."""
    export_s: float | None = None
    parity_max_abs_error: float | None = None
    artifact_bytes: int | None = None
    load_time_s: float | None = None
    memory_bytes: int | None = None
    """The runner's own memory estimate for one copy (its weights)."""
    resident_bytes_per_copy: int | None = None
    """Resident memory one loaded and invoked copy adds, measured in a separate process; what
    the local MME charges each copy against the budget."""
    copies_packaged: int | None = None
    """Copies of this format in the repository."""
    models_loaded: int | None = None
    """Copies resident in the local MME just before its first eviction, loading one copy at a
    time (or all copies packaged, when none was evicted)."""
    first_eviction_at: int | None = None
    """The copy whose load evicted another (1-based); None when every copy fitted."""
    max_rps: float | None = None
    lowest_p50_ms: float | None = None
    max_users_without_failures: int | None = None
    run_dir: Path | None = None


class FormatsDemoResult(BaseModel):
    """Where the demo wrote its outputs, and its headline figures."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    out: Path
    summary_csv: Path
    charts: list[Path]
    outcomes: list[FormatOutcome]
    memory_budget_bytes: int
    summary: Any
    """The summary_results.csv frame (pandas)."""
    onnx_vs_torchscript_rps: float | None
    """Highest ONNX Runtime req/s over highest TorchScript req/s, both measured in this run."""


def max_users_without_failures(steps: list[tuple[int, int, int]]) -> int:
    """The user count of the last step before the first step that failed.

    ``steps`` are (users, requests, failures) in run order. A step fails when a request failed
    or when none completed (a server that answers nothing holds no users). 0 when the first step
    already failed; the last step's users when none failed. (The reference took the largest
    zero-failure step even after an earlier step had failed.)
    """
    best = 0
    for users, requests, failures in steps:
        if failures > 0 or requests - failures <= 0:
            return best
        best = users
    return best


def _format_available(fmt: str) -> str | None:
    """Why ``fmt`` cannot run here, or None."""
    from mmeperf.plugins import get_backend

    needs = {"onnx": ("onnx", "onnxscript"), "pytorch": (), "tensorrt": ("onnx", "onnxscript")}[fmt]
    try:
        get_backend(fmt)
        for module in needs:
            if importlib.util.find_spec(module) is None:
                return (
                    f"the ONNX export needs {module}. Install it with: pip install 'mmeperf[onnx]'"
                )
    except MmeperfError as exc:
        return str(exc)
    if fmt == "tensorrt":
        import torch

        if not torch.cuda.is_available():
            return "TensorRT needs a CUDA GPU; none is visible"
    return None


def run_formats_demo(
    options: FormatsDemoOptions,
    *,
    progress: Callable[[str], None] = print,
) -> FormatsDemoResult:
    """Run the whole benchmark and write its outputs under ``options.out``."""
    from mmeperf.sample_models import sample_model

    options.wait_range()  # refuse a bad range before any work
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model = sample_model(options.model, tiny=options.tiny, seed=options.seed)
    progress(
        f"Model {model.name}: {model.parameter_count / 1e6:.2f}M parameters, inputs "
        f"{[(i.name, list(i.shape), i.dtype) for i in model.inputs]}"
    )

    outcomes: dict[str, FormatOutcome] = {}
    exports: dict[str, Any] = {}
    for fmt in options.formats:
        reason = _format_available(fmt)
        if reason is not None:
            outcomes[fmt] = FormatOutcome(format=fmt, available=False, reason=reason)
            progress(f"  {fmt}: unavailable: {reason}")
            continue
        try:
            t0 = time.perf_counter()
            exports[fmt] = _export(fmt, model, out / "exports" / fmt, exports)
            export = exports[fmt]
            outcomes[fmt] = FormatOutcome(
                format=fmt,
                available=True,
                export_s=time.perf_counter() - t0,
                parity_max_abs_error=export.parity.max_abs_error,
                artifact_bytes=export.size_bytes,
                load_time_s=export.load_time_s,
            )
            progress(
                f"  {fmt}: exported in {outcomes[fmt].export_s:.1f} s, {export.size_bytes / 1e6:.2f} MB, "
                f"max abs error {export.parity.max_abs_error:.2e} on {export.parity.n_inputs} inputs"
            )
        except MmeperfError as exc:
            outcomes[fmt] = FormatOutcome(
                format=fmt, available=False, reason=f"export failed: {exc}"
            )
            progress(f"  {fmt}: export failed: {exc}")

    if not exports:
        raise ConfigurationError(
            "No format could be exported here: "
            + "; ".join(f"{o.format}: {o.reason}" for o in outcomes.values())
        )

    # Memory of one copy per format: measured, not estimated from the weights.
    from mmeperf.plugins import get_backend

    probe_inputs = model.example_inputs(1, seed=options.seed + 1000)
    for fmt, export in exports.items():
        runner = get_backend(fmt).load(export.directory, allow_pickle=True)  # built here
        outcomes[fmt].memory_bytes = int(runner.memory_bytes)
        runner.close()
        measured = measure_resident_memory(
            fmt, export.directory, probe_inputs, copies=4 if options.tiny else 2
        )
        outcomes[fmt].resident_bytes_per_copy = max(measured.per_copy_bytes, 1)
    from mmeperf.units import parse_size

    if options.memory_budget is None:
        budget = parse_size("32MiB" if options.tiny else "4GiB")
    else:
        budget = parse_size(options.memory_budget)
    for fmt in exports:
        resident = outcomes[fmt].resident_bytes_per_copy or 1
        outcomes[fmt].copies_packaged = options.copies or min(-(-budget // resident) + 1, 256)
    progress(
        "Resident memory per loaded copy (measured): "
        + ", ".join(
            f"{f} {(outcomes[f].resident_bytes_per_copy or 0) / 2**20:.2f} MiB "
            f"(weights {(outcomes[f].memory_bytes or 0) / 2**20:.2f} MiB)"
            for f in exports
        )
        + f"; budget {budget / 2**20:.1f} MiB"
    )

    repos = _build_repositories(options, model, exports, outcomes, out, progress)

    rows: list[dict[str, Any]] = []
    stage_frames: dict[str, Any] = {}
    for fmt in exports:
        outcome = outcomes[fmt]
        frame = _benchmark_format(options, model, fmt, repos[fmt], budget, out, outcome, progress)
        stage_frames[f"{model.name} {fmt}"] = frame
        rows.extend(_summary_rows(model.name, fmt, outcome, frame))

    import pandas as pd

    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary_csv = out / "summary_results.csv"
    with summary_csv.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(SUMMARY_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)

    charts = _charts(out, model.name, stage_frames, list(outcomes.values()))
    ratio = None
    onnx_rps, torch_rps = outcomes.get("onnx"), outcomes.get("pytorch")
    if onnx_rps and torch_rps and onnx_rps.max_rps and torch_rps.max_rps:
        ratio = onnx_rps.max_rps / torch_rps.max_rps
    (out / "formats.json").write_text(
        FormatsDemoResult(
            out=out,
            summary_csv=summary_csv,
            charts=charts,
            outcomes=list(outcomes.values()),
            memory_budget_bytes=budget,
            summary=None,
            onnx_vs_torchscript_rps=ratio,
        ).model_dump_json(indent=2, exclude={"summary"})
    )
    progress(f"Done in {time.perf_counter() - started:.0f} s")
    return FormatsDemoResult(
        out=out,
        summary_csv=summary_csv,
        charts=charts,
        outcomes=list(outcomes.values()),
        memory_budget_bytes=budget,
        summary=summary,
        onnx_vs_torchscript_rps=ratio,
    )


def _export(fmt: str, model: Any, directory: Path, done: dict[str, Any]) -> Any:
    from mmeperf.exporters import OnnxExporter, TensorRTExporter, TorchScriptExporter

    if directory.exists():
        shutil.rmtree(directory)
    example = model.example_inputs(2, seed=0)
    common: dict[str, Any] = {"sampler": model.example_inputs}
    if fmt == "pytorch":
        return TorchScriptExporter().export(
            model.module, example, directory, output_name=model.output_name, **common
        )
    if fmt == "onnx":
        return OnnxExporter().export(
            model.module, example, directory, output_name=model.output_name, **common
        )
    source = done.get("onnx")
    if source is None:
        source = OnnxExporter().export(
            model.module,
            example,
            directory.parent / "onnx-for-tensorrt",
            output_name=model.output_name,
            **common,
        )
    # The reference's profiles: CV 1/64/128, NLP 1/16/32, FP16.
    opt, high = (64, 128) if model.task == "cv" else (16, 32)
    return TensorRTExporter().export(
        source, example, directory, min_batch=1, opt_batch=opt, max_batch=high, fp16=True, **common
    )


def _build_repositories(
    options: FormatsDemoOptions,
    model: Any,
    exports: dict[str, Any],
    outcomes: dict[str, FormatOutcome],
    out: Path,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Triton layout (kept for a real Triton server) and SageMaker GPU MME tarballs (served)."""
    from mmeperf.backends.tensorrt import EngineProfile
    from mmeperf.backends.tensors import Signature
    from mmeperf.repository import ModelRepository
    from mmeperf.repository.triton import config_for_signature
    from mmeperf.repository.triton.packaging import package_model

    repos: dict[str, Any] = {}
    for fmt, export in exports.items():
        name = f"{model.name}-{fmt}"
        signature = Signature.model_validate(export.details["signature"])
        profile = EngineProfile.load(export.directory) if fmt == "tensorrt" else None
        max_batch = profile.max_batch if profile else (32 if model.task == "cv" else 128)
        config = config_for_signature(
            fmt,
            signature,
            max_batch_size=max_batch,
            preferred_batch_sizes=[min(16, max_batch)],
            instance_kind="KIND_GPU",
            warmup=fmt == "tensorrt",
            engine_profile=profile,
        )
        for layout in ("triton", "sagemaker"):
            folder = out / "repositories" / layout / fmt
            if folder.exists():
                shutil.rmtree(folder)
            repo = ModelRepository(folder, layout=layout)
            package_model(repo, name, export, config, copies=outcomes[fmt].copies_packaged or 1)
            if layout == "sagemaker":
                repos[fmt] = repo
        progress(
            f"  {fmt}: Triton folder and {outcomes[fmt].copies_packaged} SageMaker MME copies of {name} under "
            f"{out / 'repositories'}"
        )
    return repos


def _payloads(options: FormatsDemoOptions, model: Any) -> tuple[list[bytes], str]:
    from mmeperf.backends.bodies import encode_request
    from mmeperf.backends.tensors import JSON_TYPE, NPY_TYPE, NPZ_TYPE

    if options.payload == "json":
        content_type = JSON_TYPE
    else:
        content_type = NPY_TYPE if len(model.inputs) == 1 else NPZ_TYPE
    bodies = []
    for i in range(8):
        inputs = model.example_inputs(1, seed=options.seed + 1000 + i)
        single = next(iter(inputs.values())) if content_type == NPY_TYPE else inputs
        bodies.append(encode_request(single, content_type))
    return bodies, content_type


def _benchmark_format(
    options: FormatsDemoOptions,
    model: Any,
    fmt: str,
    repo: Any,
    budget: int,
    out: Path,
    outcome: FormatOutcome,
    progress: Callable[[str], None],
) -> Any:
    """Serve the copies of one format, count how many fit, step users up; the per-step frame."""
    import pandas as pd

    from mmeperf.endpoints.local import LocalEndpoint
    from mmeperf.load import Benchmark, LoadProfile, Traffic

    name = f"{model.name}-{fmt}"
    copies = [f"{name}-v{i}.tar.gz" for i in range(outcome.copies_packaged or 1)]
    bodies, content_type = _payloads(options, model)
    run_dir = out / "results" / model.name / fmt
    if run_dir.exists():
        shutil.rmtree(run_dir)
    resident = outcome.resident_bytes_per_copy or 0
    # The cache charges a runner's own estimate plus the per-model overhead: make the sum the
    # measured resident size, so the budget is spent the way memory really is.
    overhead = max(resident - (outcome.memory_bytes or 0), 0)
    with LocalEndpoint(
        memory_budget=budget,
        per_model_overhead=overhead,
        endpoint_name=f"formats-{fmt}",
        allow_pickle=fmt == "pytorch",  # the demo built these TorchScript archives itself
    ).deploy(repo) as endpoint:
        # Fill the budget one copy at a time until a load evicts an earlier copy.
        wanted = set(copies)
        invoked = 0
        loaded: list[str] = []
        current: list[str] = []
        for target in copies:
            answer = endpoint.invoke(target, bodies[0], content_type=content_type)
            if not answer.ok:
                raise MmeperfError(
                    f"{fmt}: invoking {target} failed with {answer.status} {answer.error_code}: "
                    f"{answer.error_message}"
                )
            invoked += 1
            now = sorted(
                m for m in endpoint.loaded_models() if m in wanted or m + ".tar.gz" in wanted
            )
            current = now
            if len(now) < invoked:
                outcome.first_eviction_at = invoked
                break
            loaded = now
        outcome.models_loaded = len(loaded)
        # Users step against what is resident now (the copy that evicted another included).
        targets = [m if m.endswith(".tar.gz") else m + ".tar.gz" for m in current] or copies[:1]
        fill = (
            f"the load of copy {outcome.first_eviction_at} evicted one"
            if outcome.first_eviction_at
            else f"all {len(copies)} packaged copies fitted (no eviction)"
        )
        progress(
            f"  {fmt}: {len(loaded)} copies resident at {resident / 2**20:.2f} MiB each in a "
            f"{budget / 2**20:.1f} MiB budget ({fill}); stepping users {options.user_steps()}"
        )
        profile = LoadProfile.steps(
            users=options.user_steps(),
            step_duration=options.step_seconds(),
            spawn_rate=max(options.user_steps()) * 10.0,
            traffic=Traffic.from_bytes(bodies, models=targets, content_type=content_type),
            wait={"min": options.wait_range()[0], "max": options.wait_range()[1]},
            seed=options.seed,
            request_timeout=30.0,
        )
        bench = Benchmark(endpoint, profile, platform=fmt, models_loaded=len(loaded))
        result = bench.run(
            run_dir, timeout=options.step_seconds() * len(options.user_steps()) + 120
        )
    outcome.run_dir = run_dir
    frame = result.summary.copy()
    frame = frame[frame["users"].notna()] if "users" in frame else frame
    hists = result.histograms().get("stages", {})
    mins: list[float | None] = []
    for stage in frame["stage"].tolist():
        merged = None
        for key, hist in hists.items():
            if key.split("/", 1)[0] == str(stage):
                if merged is None:
                    from mmeperf.load.hist import Histogram

                    merged = Histogram()
                merged.merge(hist)
        mins.append(None if merged is None or merged.total == 0 else merged.min_us / 1000.0)
    frame["min_ms"] = mins
    frame = pd.DataFrame(frame).reset_index(drop=True)
    ok = frame[frame["requests"] > 0]
    outcome.max_rps = float(ok["rps"].max()) if len(ok) else None
    outcome.lowest_p50_ms = float(ok["p50_ms"].min()) if len(ok) else None
    outcome.max_users_without_failures = max_users_without_failures(
        [
            (int(u), int(r), int(f))
            for u, r, f in zip(frame["users"], frame["requests"], frame["failures"], strict=True)
        ]
    )
    return frame


def _summary_rows(
    model_name: str, fmt: str, outcome: FormatOutcome, frame: Any
) -> list[dict[str, Any]]:
    rows = []
    for rec in frame.to_dict("records"):
        requests = int(rec.get("requests") or 0)
        failures = int(rec.get("failures") or 0)
        rows.append(
            {
                "model_name": model_name,
                "instance_type": rec.get("instance_type") or "local",
                "platform": fmt,
                "max_models_loaded": outcome.models_loaded,
                "User Count": int(rec["users"]),
                "Requests/s": _round(rec.get("rps")),
                "Total Median Response Time": _round(rec.get("p50_ms")),
                "Total Average Response Time": _round(rec.get("mean_ms")),
                "Total Min Response Time": _round(rec.get("min_ms")),
                "Total Max Response Time": _round(rec.get("max_ms")),
                "Total p95 Response Time": _round(rec.get("p95_ms")),
                "Total p99 Response Time": _round(rec.get("p99_ms")),
                "Successful Requests": requests - failures,
                "Failed Requests": failures,
            }
        )
    return rows


def _round(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else round(number, 3)


def _charts(
    out: Path, model_name: str, frames: dict[str, Any], outcomes: list[FormatOutcome]
) -> list[Path]:
    """Chart 1 (per format: throughput and latency vs users, success/failure bars) and chart 2
    (per format: models loaded, lowest latency, highest throughput, most users without failures)."""
    import pandas as pd

    from mmeperf.results.charts import formats_comparison, latency_throughput_vs_users

    first = latency_throughput_vs_users(
        frames, out / "chart_latency_throughput.png", title="req/s and latency vs users"
    )
    available = pd.DataFrame(
        [o.model_dump() for o in outcomes if o.available],
        columns=["format", "models_loaded", "lowest_p50_ms", "max_rps", "max_users_without_failures"],
    )
    second = formats_comparison(available, out / "chart_formats.png", model_name=model_name)
    return [first, second]
