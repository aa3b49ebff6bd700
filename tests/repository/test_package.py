"""The storage layer's import boundary: only Triton packaging knows exporters and TensorRT."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["mmeperf.repository", "mmeperf.repository.triton", "mmeperf.repository.triton.config",
     "mmeperf.repository.triton.presets"],
)
def test_importing_the_storage_layer_imports_no_exporter(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('mmeperf.exporters', 'mmeperf.backends.tensorrt') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_packaging_is_where_exporters_come_in() -> None:
    # The check above can fail: packaging itself does import them.
    code = (
        "import sys, mmeperf.repository.triton.packaging; "
        "print('mmeperf.exporters' in sys.modules, 'mmeperf.backends.tensorrt' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True True"
