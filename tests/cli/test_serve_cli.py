import subprocess
import sys
from pathlib import Path


def test_bad_sizes_are_usage_errors_naming_the_expected_form(tmp_path: Path) -> None:
    for flag in ("--disk-cache", "--memory-budget"):
        out = subprocess.run(
            [sys.executable, "-m", "mmeperf", "serve", str(tmp_path), "--port", "0", flag, "lots"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 2, (flag, out.stderr)
        assert "512MiB" in out.stderr and "'lots'" in out.stderr
