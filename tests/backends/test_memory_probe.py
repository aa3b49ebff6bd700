"""The resident-memory probe: its arguments, and a failure in the probe process reported with its cause."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmeperf.backends.memory_probe import main, measure_resident_memory
from mmeperf.errors import ConfigurationError, MmeperfError


def test_copies_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="copies must be >= 1, got 0"):
        measure_resident_memory("xgboost", tmp_path, {"x": np.zeros(2)}, copies=0)


def test_the_probe_process_failure_names_the_format_and_its_cause(tmp_path: Path) -> None:
    # python -m mmeperf.backends.memory_probe really runs; an unknown backend fails inside it.
    with pytest.raises(MmeperfError, match=r"Measuring no-such-format memory failed: .*no-such-format"):
        measure_resident_memory("no-such-format", tmp_path, {"x": np.zeros(2)}, copies=1, timeout_s=120)


def test_main_takes_one_request() -> None:
    with pytest.raises(SystemExit, match="usage"):
        main([])
