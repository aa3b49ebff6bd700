"""The run folder's files: crash-safe writing, and Locust's CSV prefix."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mmeperf.load import runfolder as F


def test_appending_csv_writes_the_header_once_and_blanks_for_missing_values(tmp_path: Path) -> None:
    path = tmp_path / F.HISTORY_CSV
    first = F.AppendingCsv(path, ("a", "b"))
    first.append([{"a": 1, "b": math.nan}, {"a": None}])
    first.close()
    again = F.AppendingCsv(path, ("a", "b"))  # reopened after a restart: no second header
    again.append([{"a": 2, "b": 3}])
    again.close()
    assert path.read_text() == "a,b\n1,\n,\n2,3\n"


def test_atomic_writes_leave_no_temporary_file(tmp_path: Path) -> None:
    F.atomic_write_csv(tmp_path / "x.csv", ("a", "b"), [{"a": math.inf, "b": 1}])
    F.atomic_write_json(tmp_path / "x.json", {"path": tmp_path})
    assert (tmp_path / "x.csv").read_text() == "a,b\n,1\n"
    assert json.loads((tmp_path / "x.json").read_text()) == {"path": str(tmp_path)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "x.json"]


def test_locust_prefix_keeps_its_separators_out_of_the_parts() -> None:
    assert F.locust_csv_prefix("ml.g5_2xlarge", "a*b/c", 3) == "ml.g5-2xlarge*a-b-c*3"
