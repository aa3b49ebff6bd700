"""Shared exporter machinery: example normalization, parity arithmetic, staging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmeperf.errors import ExportError
from mmeperf.exporters._common import (
    check_destination,
    compare_outputs,
    default_sampler,
    parity_batches,
    staged_export,
    to_numpy_inputs,
)


def test_examples_are_named_by_dict_forward_or_position() -> None:
    x = np.ones((2, 3), np.float32)
    assert list(to_numpy_inputs({"b": x, "a": x}, ["a", "b"])) == ["a", "b"]
    assert list(to_numpy_inputs({"INPUT__0": x}, ["pixel_values"])) == ["INPUT__0"]
    assert list(to_numpy_inputs((x, x), ["ids", "mask"])) == ["ids", "mask"]
    assert list(to_numpy_inputs(x, None)) == ["INPUT__0"]
    with pytest.raises(ExportError, match="numeric tensor"):
        to_numpy_inputs(np.array(["a"]), None)
    with pytest.raises(ExportError, match="takes 1 inputs"):
        to_numpy_inputs({"a": x, "b": x}, ["a"])


def test_parity_is_checked_element_by_element() -> None:
    ref = np.array([[100.0, -200.0]], np.float32)
    got = ref + np.array([[0.0, 0.5]], np.float32)
    report = compare_outputs([(ref, ref), (ref, got)], atol=1e-4, rtol=1e-2)
    assert report.n_inputs == 2 and report.n_elements == 4
    assert report.max_abs_error == pytest.approx(0.5)
    assert report.max_rel_error == pytest.approx(0.5 / 200)
    assert report.passed  # 0.5 <= 1e-4 + 1e-2 * 200
    assert report.worst_ratio == pytest.approx(0.5 / (1e-4 + 2.0))
    strict = compare_outputs([(ref, got)], atol=1e-4, rtol=1e-4)
    assert not strict.passed and strict.n_mismatched == 1
    nan = compare_outputs([(ref, ref * np.nan)], atol=1, rtol=1)
    assert not nan.passed
    with pytest.raises(ExportError, match="shape"):
        compare_outputs([(ref, ref[:, :1])], atol=1, rtol=1)
    with pytest.raises(ExportError, match="Tolerances must be >= 0"):
        compare_outputs([(ref, ref)], atol=-1, rtol=0)


def test_small_elements_must_meet_their_own_tolerance() -> None:
    # Off by 50x its own size next to a large element: a tolerance relative to the output's
    # largest value (0.49 / 1000 < 1e-2) would pass it; element by element it fails.
    ref = np.array([1000.0, 0.01])
    got = np.array([1000.0, 0.5])
    report = compare_outputs([(ref, got)], atol=1e-4, rtol=1e-2)
    assert not report.passed
    assert report.n_mismatched == 1
    assert report.worst_reference == pytest.approx(0.01)
    assert report.worst_candidate == pytest.approx(0.5)
    assert report.worst_ratio == pytest.approx(0.49 / (1e-4 + 1e-2 * 0.01))
    assert report.max_rel_error == pytest.approx(49.0)
    assert "1 of 2 elements exceed" in report.describe()


def test_default_sampler_keeps_dtypes_ranges_and_masks() -> None:
    example = {
        "ids": np.array([[5, 9, 7]], np.int64),
        "attention_mask": np.array([[1, 1, 0]], np.int64),
        "x": np.full((1, 3), 2.0, np.float32),
    }
    drawn = default_sampler(example)(4, seed=1)
    assert drawn["ids"].shape == (4, 3) and drawn["ids"].dtype == np.int64
    assert drawn["ids"].min() >= 5 and drawn["ids"].max() <= 9
    mask = drawn["attention_mask"]
    assert set(np.unique(mask)) <= {0, 1} and (mask[:, 0] == 1).all()
    assert drawn["x"].dtype == np.float32
    assert parity_batches(4) == [1, 2, 3, 1]
    assert parity_batches(3, min_batch=4, max_batch=3) == [4, 4, 4]


def test_staging_moves_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "artifact"
    with (
        pytest.raises(RuntimeError),
        staged_export(target, ["model.bin"], overwrite=False) as stage,
    ):
        (stage / "model.bin").write_bytes(b"half")
        raise RuntimeError("export failed midway")
    assert not target.exists()
    with staged_export(target, ["model.bin"], overwrite=False) as stage:
        (stage / "model.bin").write_bytes(b"whole")
    assert (target / "model.bin").read_bytes() == b"whole"
    with (
        pytest.raises(ExportError, match="already holds"),
        staged_export(target, ["model.bin"], overwrite=False),
    ):
        pass


def test_destination_is_checked_on_its_own(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ExportError, match="already holds"):
        check_destination(tmp_path, ["model.bin"], overwrite=False)
    assert check_destination(tmp_path, ["model.bin"], overwrite=True) == tmp_path
    with pytest.raises(ExportError, match="not a folder"):
        check_destination(tmp_path / "model.bin", ["model.bin"], overwrite=True)
