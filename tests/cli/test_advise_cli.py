import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmeperf", "advise", *args], capture_output=True, text=True, timeout=60)


def test_churn_case_is_multi_model_with_reasons() -> None:
    out = _run("--models", "51", "--fluctuating")
    assert out.returncode == 0, out.stderr
    assert "Host on: multi-model-endpoint" in out.stdout
    assert "51 models share one framework" in out.stdout
    assert "Add autoscaling" in out.stdout and "Run at least two instances" in out.stdout


def test_large_payload_goes_async() -> None:
    out = _run("--payload-mb", "20")
    assert out.returncode == 0 and "asynchronous-inference" in out.stdout


def test_bad_option_is_a_usage_error() -> None:
    out = _run("--models", "0")
    assert out.returncode == 2 and "models" in out.stderr.lower()
