"""``mmeperf demo formats`` end to end on a tiny model (real local MME, real load runner), and the
"max users without failures" rule."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mmeperf.demos.formats import (
    SUMMARY_COLUMNS,
    FormatsDemoOptions,
    max_users_without_failures,
    run_formats_demo,
)
from mmeperf.errors import ConfigurationError


def test_max_users_without_failures_stops_at_the_first_failing_step() -> None:
    # (users, requests, failures)
    assert max_users_without_failures([(10, 50, 0), (20, 90, 0), (40, 99, 3), (60, 120, 0)]) == 20
    assert max_users_without_failures([(10, 5, 1), (20, 9, 0)]) == 0
    assert max_users_without_failures([(10, 5, 0), (20, 9, 0)]) == 20
    assert max_users_without_failures([]) == 0


def test_a_step_that_completed_nothing_stops_the_count() -> None:
    # A server that answered nothing in a step (no failure recorded either) held no users.
    assert max_users_without_failures([(10, 50, 0), (20, 0, 0), (40, 80, 0)]) == 10
    assert max_users_without_failures([(10, 0, 0)]) == 0


def test_options_are_checked_up_front() -> None:
    with pytest.raises(ValueError, match="formats must be among"):
        FormatsDemoOptions(formats=["caffe"])
    with pytest.raises(ValueError, match="positive user counts"):
        FormatsDemoOptions(users=[0, 4])
    with pytest.raises(ConfigurationError, match="wait_max_s"):
        FormatsDemoOptions(wait_min_s=1.0, wait_max_s=0.5).wait_range()
    assert FormatsDemoOptions(tiny=True).wait_range() == (0.0, 0.0)
    assert FormatsDemoOptions().wait_range() == (0.05, 0.5)


@pytest.mark.slow
def test_tiny_run_writes_summary_charts_and_repositories(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    options = FormatsDemoOptions(
        model="resnet50",
        tiny=True,
        out=tmp_path / "out",
        formats=["pytorch", "tensorrt"],
        users=[1, 2],
        step_duration_s=1.5,
        memory_budget="12MiB",
    )
    messages: list[str] = []
    result = run_formats_demo(options, progress=messages.append)

    by_format = {o.format: o for o in result.outcomes}
    torch_outcome = by_format["pytorch"]
    assert torch_outcome.available
    # Models loaded come from measured resident memory, not from the weights: a TorchScript
    # copy holds far more than its (tiny) weights.
    resident = torch_outcome.resident_bytes_per_copy
    weights = torch_outcome.memory_bytes
    assert resident is not None and weights is not None and resident > 4 * weights
    budget = result.memory_budget_bytes
    assert budget == 12 * 2**20
    loaded = torch_outcome.models_loaded
    assert loaded is not None and loaded >= 1
    # Copies were loaded one at a time until one evicted another: what fits at that size.
    assert torch_outcome.first_eviction_at == loaded + 1
    assert loaded * resident <= budget < (loaded + 2) * resident
    assert torch_outcome.copies_packaged is not None and torch_outcome.copies_packaged > loaded
    assert torch_outcome.parity_max_abs_error is not None
    assert torch_outcome.parity_max_abs_error <= 1e-4
    trt = by_format["tensorrt"]
    assert not trt.available and trt.reason
    assert any("tensorrt: unavailable" in m for m in messages)

    with result.summary_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert [int(r["User Count"]) for r in rows] == [1, 2]
    assert all(r["platform"] == "pytorch" and r["max_models_loaded"] == str(loaded) for r in rows)
    assert sum(int(r["Successful Requests"]) for r in rows) > 0
    assert all(r["Failed Requests"] == "0" for r in rows)
    first = rows[0]
    assert float(first["Total Min Response Time"]) <= float(first["Total Median Response Time"])
    assert float(first["Total Median Response Time"]) <= float(first["Total p99 Response Time"])
    assert float(first["Total p99 Response Time"]) <= float(first["Total Max Response Time"])
    assert all(c.is_file() and c.stat().st_size > 0 for c in result.charts)

    out = tmp_path / "out"
    sagemaker = out / "repositories" / "sagemaker" / "pytorch"
    assert sorted(p.name for p in sagemaker.glob("*.tar.gz")) == sorted(
        [f"resnet50-tiny-pytorch-v{i}.tar.gz" for i in range(torch_outcome.copies_packaged)]
        + ["resnet50-tiny-pytorch.tar.gz"]
    )
    triton = out / "repositories" / "triton" / "pytorch" / "resnet50-tiny-pytorch"
    assert (triton / "config.pbtxt").is_file() and (triton / "1" / "model.pt").is_file()
