"""Plugin discovery: lazy, honest about what is missing, accountable for who provides what."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import mmeperf
from mmeperf import plugins as _plugins
from mmeperf.backends.base import Backend, Runner
from mmeperf.errors import (
    MissingDependencyError,
    PluginError,
    PluginNotImplementedError,
    UnknownPluginError,
)
from mmeperf.plugins import (
    BACKENDS,
    ENDPOINTS,
    get_backend,
    get_backend_class,
    get_endpoint_class,
    load_plugin,
    register,
)
from mmeperf.plugins import (
    available as known_plugins,
)
from mmeperf.plugins import (
    status as plugin_status,
)

BUILTIN_BACKENDS = {"xgboost", "pytorch", "onnx", "tensorrt"}
BUILTIN_ENDPOINTS = {"local", "sagemaker", "triton"}


@pytest.fixture(autouse=True)
def isolated_registry() -> Iterator[None]:
    """Plugins registered by a test vanish after it (the registry is process-wide)."""
    table = _plugins._discover()
    saved = ({g: dict(t) for g, t in table.items()}, dict(_plugins._loaded), dict(_plugins._backend_instances))
    yield
    for group, entries in saved[0].items():
        table[group].clear()
        table[group].update(entries)
    _plugins._loaded.clear()
    _plugins._loaded.update(saved[1])
    _plugins._backend_instances.clear()
    _plugins._backend_instances.update(saved[2])


class _NeedsMissing(Backend):
    name: ClassVar[str] = "needs-missing"
    requires: ClassVar[tuple[str, ...]] = ("mmeperf_test_no_such_module",)
    extra: ClassVar[str | None] = "nosuch"

    def save(self, model: Any, directory: Path) -> Path:
        raise NotImplementedError

    def load(self, directory: Path, *, allow_pickle: bool = False) -> Runner:
        raise NotImplementedError


def test_builtins_register_through_entry_points_with_their_provider() -> None:
    backends, endpoints = known_plugins(BACKENDS), known_plugins(ENDPOINTS)
    assert BUILTIN_BACKENDS <= set(backends)
    assert BUILTIN_ENDPOINTS <= set(endpoints)
    xgb = backends["xgboost"]
    assert (xgb.provider, xgb.version) == ("mmeperf", mmeperf.__version__)
    assert xgb.value == "mmeperf.backends.xgboost:XGBoostBackend"


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(UnknownPluginError) as info:
        get_backend("xgbost")
    message = str(info.value)
    assert message.startswith("Unknown backend plugin 'xgbost'; expected one of: ")
    for name in BUILTIN_BACKENDS:
        assert name in message
    assert isinstance(info.value, LookupError)


def test_unknown_endpoint_lists_the_known_ones() -> None:
    with pytest.raises(UnknownPluginError, match=r"Unknown endpoint plugin 'k8s'; expected one of: .*local.*sagemaker.*triton"):
        get_endpoint_class("k8s")


def test_missing_dependency_gives_the_one_sentence_fix() -> None:
    register(BACKENDS, "needs-missing", _NeedsMissing)
    with pytest.raises(MissingDependencyError) as info:
        get_backend("needs-missing")
    assert str(info.value) == (
        "The 'needs-missing' backend needs mmeperf_test_no_such_module. "
        "Install it with: pip install 'mmeperf[nosuch]'"
    )
    assert isinstance(info.value.__cause__, ImportError)  # raised from the original ImportError
    assert get_backend_class("needs-missing") is _NeedsMissing  # the class itself stays light


def test_a_backend_without_an_extra_names_itself_as_the_extra() -> None:
    class NoExtra(_NeedsMissing):
        name: ClassVar[str] = "no-extra"
        extra: ClassVar[str | None] = None

    register(BACKENDS, "no-extra", NoExtra)
    with pytest.raises(MissingDependencyError, match=r"pip install 'mmeperf\[no-extra\]'"):
        get_backend("no-extra")


def test_registered_name_whose_module_has_not_landed_says_so() -> None:
    register(BACKENDS, "future", "mmeperf.backends.not_landed_yet:FutureBackend", provider="mmeperf")
    with pytest.raises(PluginNotImplementedError, match=re.escape("module mmeperf.backends.not_landed_yet is not in this version")):
        get_backend("future")


def test_registered_name_whose_class_is_missing_says_so() -> None:
    register(BACKENDS, "ghost", "mmeperf.backends.base:GhostBackend")
    with pytest.raises(PluginNotImplementedError, match=re.escape("names mmeperf.backends.base:GhostBackend, which does not exist")):
        get_backend("ghost")


def test_a_broken_plugin_is_a_plugin_error_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mmeperf_test_broken_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "mmeperf_test_needs_dep.py").write_text("import mmeperf_test_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register(BACKENDS, "broken", "mmeperf_test_broken_plugin:Backend")
    register(BACKENDS, "needs-dep", "mmeperf_test_needs_dep:Backend")
    with pytest.raises(PluginError, match="failed to import: RuntimeError\\('boom at import'\\)"):
        get_backend("broken")
    # A third-party module importing something absent is broken, not "not implemented yet".
    with pytest.raises(PluginError, match="failed to import") as info:
        get_backend("needs-dep")
    assert not isinstance(info.value, PluginNotImplementedError)


def test_a_non_backend_class_is_refused() -> None:
    register(BACKENDS, "not-a-backend", "pathlib:Path")
    with pytest.raises(PluginError, match="must be a Backend subclass"):
        get_backend("not-a-backend")


def test_get_backend_shares_one_instance() -> None:
    pytest.importorskip("xgboost")
    assert get_backend("xgboost") is get_backend("xgboost")
    assert load_plugin(BACKENDS, "xgboost") is get_backend_class("xgboost")


def test_plugin_status_is_honest_about_each_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # plugin_status() imports every plugin (torch included): one test calls it, for all checks.
    (tmp_path / "mmeperf_test_broken_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register(BACKENDS, "broken", "mmeperf_test_broken_plugin:Backend")
    register(BACKENDS, "needs-missing", _NeedsMissing)
    statuses = {(s.info.group, s.info.name): s for s in plugin_status()}
    missing = statuses[(BACKENDS, "needs-missing")]
    assert missing.loads is False and "pip install 'mmeperf[nosuch]'" in (missing.error or "")
    broken = statuses[(BACKENDS, "broken")]
    assert broken.loads is False and "boom at import" in (broken.error or "")
    assert {name for group, name in statuses if group == BACKENDS} >= BUILTIN_BACKENDS
    assert {name for group, name in statuses if group == ENDPOINTS} >= BUILTIN_ENDPOINTS
    if _importable("xgboost"):
        assert statuses[(BACKENDS, "xgboost")].loads  # a broken plugin never stops the others
    for (group, name), status in statuses.items():
        # The status says exactly whether using the plugin works here.
        try:
            get_backend(name) if group == BACKENDS else get_endpoint_class(name)
        except Exception as exc:
            assert not status.loads and status.error == str(exc), name
        else:
            assert status.loads and status.error is None, name


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_discovery_is_lazy() -> None:
    code = (
        "import sys, mmeperf\n"
        "from mmeperf.plugins import BACKENDS, ENDPOINTS, available as known_plugins, get_backend_class\n"
        "known_plugins(BACKENDS); known_plugins(ENDPOINTS); get_backend_class('xgboost')\n"
        "heavy = ('xgboost', 'torch', 'onnxruntime', 'tensorrt', 'tritonclient', 'boto3', 'locust', 'gevent')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_isolated_registry_undoes_registrations() -> None:
    from mmeperf.plugins import available as known_plugins
    from mmeperf.plugins import isolated_registry, unregister

    before = known_plugins(BACKENDS)
    with isolated_registry():
        register(BACKENDS, "temporary", "mmeperf.backends.xgboost:XGBoostBackend")
        unregister(BACKENDS, "xgboost")
        assert "temporary" in known_plugins(BACKENDS) and "xgboost" not in known_plugins(BACKENDS)
    assert known_plugins(BACKENDS) == before


def test_a_third_party_plugin_names_its_own_package_in_the_install_hint() -> None:
    # The provider is the installed distribution that registered the plugin (here: pytest).
    class WithExtra(_NeedsMissing):
        name: ClassVar[str] = "with-extra"
        extra: ClassVar[str | None] = "dev"  # an extra pytest declares

    register(BACKENDS, "with-extra", WithExtra, provider="pytest")
    with pytest.raises(MissingDependencyError) as info:
        get_backend("with-extra")
    assert str(info.value).endswith("Install it with: pip install 'pytest[dev]'")
    assert isinstance(info.value.__cause__, ImportError)
    # An extra the provider does not declare would be a pip command that installs nothing.
    register(BACKENDS, "needs-missing", _NeedsMissing, provider="pytest")
    with pytest.raises(MissingDependencyError) as info:
        get_backend("needs-missing")
    assert str(info.value).endswith("Install it with: pip install mmeperf_test_no_such_module")
    assert "mmeperf[" not in str(info.value)


def test_the_registry_checks_shape_and_imports_nothing_above_core() -> None:
    import ast

    from mmeperf import plugins

    tree = ast.parse(Path(plugins.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {m for m in imported if m.startswith("mmeperf")} <= {"mmeperf.errors"}
    assert isinstance(_NeedsMissing, plugins.BackendPlugin)
    assert not isinstance(Path, plugins.BackendPlugin)


def test_load_object_resolves_module_attr_paths() -> None:
    from mmeperf.plugins import load_object

    assert load_object("pathlib:PurePath.joinpath") is __import__("pathlib").PurePath.joinpath
    with pytest.raises(PluginError, match="has no Nope"):
        load_object("pathlib:Nope")
    with pytest.raises(PluginError, match="failed to import"):
        load_object("mmeperf_test_no_such_module:X")
