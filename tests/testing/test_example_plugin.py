"""The example third-party backend installs like any package and is found through its entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mmeperf-sklearn-backend"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder the example is pip-installed into (not the venv), removed afterwards."""
    root = tmp_path_factory.mktemp("example-plugin")
    source = root / "src"
    # Build from a copy: pip would otherwise leave build/ and *.egg-info in the repository.
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    yield target
    shutil.rmtree(root, ignore_errors=True)


def _run(site: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


def test_installed_example_is_discovered_with_its_provider(site: Path) -> None:
    code = (
        "import json\n"
        "from mmeperf import get_backend\n"
        "from mmeperf.plugins import BACKENDS, available as known_plugins\n"
        "info = known_plugins(BACKENDS)['sklearn']\n"
        "backend = get_backend('sklearn')\n"
        "print(json.dumps({'provider': info.provider, 'version': info.version, 'value': info.value,\n"
        "                  'class': type(backend).__module__ + ':' + type(backend).__name__}))\n"
    )
    out = _run(site, [sys.executable, "-c", code])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "provider": "mmeperf-sklearn-backend",
        "version": "0.1.0",
        "value": "mmeperf_sklearn:SklearnBackend",
        "class": "mmeperf_sklearn:SklearnBackend",
    }


def test_mmeperf_plugins_lists_it(site: Path) -> None:
    out = _run(site, [sys.executable, "-m", "mmeperf", "plugins"])
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if "│ sklearn " in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells == ["backends", "sklearn", "mmeperf-sklearn-backend", "0.1.0", "ok"]


def test_the_example_passes_the_conformance_suite(site: Path) -> None:
    pytest.importorskip("sklearn")
    out = _run(site, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
