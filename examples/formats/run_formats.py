"""The model-format benchmark through mmeperf's public API, step by step (what ``mmeperf demo
formats`` does): export a tiny BERT to TorchScript and ONNX, package N copies of each as SageMaker
GPU MME tarballs with Triton configs, serve them on the local MME, step users up, compare.

    python examples/formats/run_formats.py --out /tmp/formats-example
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmeperf import Benchmark, LoadProfile, ModelRepository, get_backend
from mmeperf.backends.bodies import encode_request
from mmeperf.backends.tensors import NPZ_TYPE, Signature
from mmeperf.endpoints.local import LocalEndpoint
from mmeperf.exporters import OnnxExporter, TorchScriptExporter
from mmeperf.load import Traffic
from mmeperf.repository.triton import config_for_signature
from mmeperf.repository.triton.packaging import package_model
from mmeperf.sample_models import bert_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("mmeperf-out/formats-example"))
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--users", default="1,2,4")
    parser.add_argument("--step-seconds", type=float, default=3.0)
    args = parser.parse_args()

    model = bert_base(tiny=True)  # full size: bert_base() (BERT-base, sequence length 128)
    example = model.example_inputs(2)
    bodies = [encode_request(model.example_inputs(1, seed=i), NPZ_TYPE) for i in range(8)]
    exporters = {"pytorch": TorchScriptExporter(), "onnx": OnnxExporter()}
    best_rps: dict[str, float] = {}
    for fmt, exporter in exporters.items():
        # 1. Export, with proof: parity against eager torch on several random batches.
        result = exporter.export(
            model.module,
            example,
            args.out / "exports" / fmt,
            output_name=model.output_name,
            sampler=model.example_inputs,
            overwrite=True,
        )
        print(
            f"{fmt}: {result.size_bytes:,} bytes, max abs error {result.parity.max_abs_error:.1e}"
        )

        # 2. Triton config + SageMaker GPU MME tarballs <name>.tar.gz holding <name>/config.pbtxt
        #    and <name>/1/model.*, plus copies <name>-v{i}.tar.gz to fill memory.
        signature = Signature.model_validate(result.details["signature"])
        config = config_for_signature(fmt, signature, max_batch_size=32, preferred_batch_sizes=[16])
        repo = ModelRepository(args.out / "repository" / fmt)
        name = f"bert-tiny-{fmt}"
        package_model(repo, name, result, config, copies=args.copies, overwrite=True)
        # TorchScript archives run their author's code when loaded: opt in only because we
        # exported this one ourselves a moment ago.
        memory = get_backend(fmt).load(result.directory, allow_pickle=True).memory_bytes
        print(f"{fmt}: {memory:,} bytes per copy in memory")

        # 3. Serve the copies on the local MME and step users up; each request picks a copy.
        targets = [f"{name}-v{i}.tar.gz" for i in range(args.copies)]
        profile = LoadProfile.steps(
            users=[int(u) for u in args.users.split(",")],
            step_duration=args.step_seconds,
            traffic=Traffic.from_bytes(bodies, models=targets, content_type=NPZ_TYPE),
            wait={"min": 0, "max": 0},
        )
        with LocalEndpoint(memory_budget="256MiB", allow_pickle=fmt == "pytorch").deploy(
            repo
        ) as endpoint:
            run = Benchmark(endpoint, profile, platform=fmt).run(args.out / "results" / fmt)
        print(run.summary[["users", "rps", "p50_ms", "p99_ms", "failures"]].to_string(index=False))
        best_rps[fmt] = float(run.summary["rps"].max())

    print(
        f"ONNX Runtime / TorchScript, highest req/s: {best_rps['onnx'] / best_rps['pytorch']:.2f}"
    )


if __name__ == "__main__":
    main()
