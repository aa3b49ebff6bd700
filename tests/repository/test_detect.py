"""Which backend an unpacked artifact belongs to, told by file names alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from mmeperf.repository import detect_backend


def test_detecting_a_backend_imports_no_framework(tmp_path: Path, model_dir: Path) -> None:
    shutil.copytree(model_dir, tmp_path / "copy")
    code = (
        "import sys; from mmeperf.repository import detect_backend; "
        f"print(detect_backend({str(tmp_path / 'copy')!r})); "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'tensorrt', 'xgboost') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["xgboost", "[]"]


def test_exact_artifact_names_win_over_wildcards(tmp_path: Path) -> None:
    # An ONNX folder carries signature.json, which the xgboost backend's "*.json" also matches.
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    (onnx / "model.onnx").write_bytes(b"\x08\x07")
    (onnx / "signature.json").write_text("{}")
    assert detect_backend(onnx) == "onnx"
    xgb = tmp_path / "xgb"
    xgb.mkdir()
    (xgb / "model.json").write_text("{}")
    assert detect_backend(xgb) == "xgboost"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("nothing to serve")
    assert detect_backend(empty) is None
