"""Plugin discovery for backends and endpoints, lazy like fsspec's registry.

A table maps names to dotted paths, filled from the ``mmeperf.backends`` and
``mmeperf.endpoints`` entry-point groups (built-ins register there too) and from
:func:`register` at run time. Nothing is imported until a name is used, so a broken TensorRT
never stops an XGBoost run; each plugin remembers which installed package provided it.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal

from mmeperf.errors import (
    MissingDependencyError,
    PluginError,
    PluginNotImplementedError,
    UnknownPluginError,
)

if TYPE_CHECKING:
    from mmeperf.backends.base import Backend
    from mmeperf.endpoints.base import Endpoint

__all__ = [
    "BACKENDS",
    "ENDPOINTS",
    "PluginInfo",
    "PluginStatus",
    "get_backend",
    "get_backend_class",
    "get_endpoint_class",
    "isolated_registry",
    "known_plugins",
    "load_plugin",
    "plugin_status",
    "register",
    "unregister",
]

Group = Literal["mmeperf.backends", "mmeperf.endpoints"]
BACKENDS: Group = "mmeperf.backends"
ENDPOINTS: Group = "mmeperf.endpoints"
_GROUPS: tuple[Group, ...] = (BACKENDS, ENDPOINTS)


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin comes from: ``value`` is ``module:attribute``."""

    group: str
    name: str
    value: str
    provider: str
    version: str


@dataclass(frozen=True)
class PluginStatus:
    """A plugin and whether it loads here; ``error`` says why not."""

    info: PluginInfo
    loads: bool
    error: str | None = None


_lock = threading.Lock()
_registry: dict[str, dict[str, PluginInfo]] | None = None
_loaded: dict[tuple[str, str], Any] = {}
_backend_instances: dict[str, Backend] = {}


def _discover() -> dict[str, dict[str, PluginInfo]]:
    global _registry
    with _lock:
        if _registry is None:
            table: dict[str, dict[str, PluginInfo]] = {group: {} for group in _GROUPS}
            for group in _GROUPS:
                for ep in metadata.entry_points(group=group):
                    dist = ep.dist
                    table[group][ep.name] = PluginInfo(
                        group=group,
                        name=ep.name,
                        value=ep.value,
                        provider=dist.name if dist is not None else "unknown",
                        version=dist.version if dist is not None else "unknown",
                    )
            _registry = table
        return _registry


def register(group: Group, name: str, target: str | type, *, provider: str = "runtime") -> None:
    """Add or replace a plugin at run time (tests, notebooks). ``target``: class or ``module:attr``."""
    table = _discover()
    value = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
    with _lock:
        table[group][name] = PluginInfo(group, name, value, provider, "")
        _loaded.pop((group, name), None)
        _backend_instances.pop(name, None)
        if not isinstance(target, str):
            _loaded[(group, name)] = target


def unregister(group: Group, name: str) -> None:
    """Remove a plugin (registered at run time or by an entry point) from this process's table."""
    table = _discover()
    with _lock:
        table[group].pop(name, None)
        _loaded.pop((group, name), None)
        if group == BACKENDS:
            _backend_instances.pop(name, None)


@contextlib.contextmanager
def isolated_registry() -> Iterator[None]:
    """Undo every register()/unregister() made inside the block (for tests)."""
    table = _discover()
    with _lock:
        saved = {group: dict(entries) for group, entries in table.items()}
    try:
        yield
    finally:
        with _lock:
            for group, entries in saved.items():
                changed = {n for n in set(entries) | set(table[group]) if entries.get(n) != table[group].get(n)}
                table[group] = entries
                for name in changed:
                    _loaded.pop((group, name), None)
                    if group == BACKENDS:
                        _backend_instances.pop(name, None)


def known_plugins(group: Group) -> dict[str, PluginInfo]:
    """Name -> info for every plugin registered in ``group``."""
    return dict(_discover()[group])


def load_plugin(group: Group, name: str) -> Any:
    """Import and return the object registered as ``name`` in ``group``.

    Raises UnknownPluginError (listing the known names), MissingDependencyError (with the pip
    command) or PluginNotImplementedError (a built-in whose module has not landed yet).
    """
    key = (group, name)
    if key in _loaded:
        return _loaded[key]
    table = _discover()[group]
    if name not in table:
        raise UnknownPluginError(group.rsplit(".", 1)[-1].rstrip("s"), name, table)
    info = table[name]
    module_name, _, attr = info.value.partition(":")
    try:
        module = importlib.import_module(module_name)
    except MissingDependencyError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise PluginNotImplementedError(
                f"The {name!r} {_kind(group)} is registered by {info.provider} but its module "
                f"{module_name} is not in this version ({info.version}) yet"
            ) from exc
        raise PluginError(f"The {name!r} {_kind(group)} failed to import: {exc}") from exc
    except Exception as exc:  # a broken third-party plugin must not take the process down
        raise PluginError(f"The {name!r} {_kind(group)} failed to import: {exc!r}") from exc
    obj: Any = module
    for part in attr.split(".") if attr else []:
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise PluginNotImplementedError(
                f"The {name!r} {_kind(group)} names {info.value}, which does not exist in "
                f"{info.provider} {info.version}"
            ) from exc
    _loaded[key] = obj
    return obj


def _kind(group: str) -> str:
    return "backend" if group == BACKENDS else "endpoint"


def get_backend_class(name: str) -> type[Backend]:
    """The backend plugin class ``name``, imported but with its dependencies unchecked (light)."""
    from mmeperf.backends.base import Backend

    cls = load_plugin(BACKENDS, name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise PluginError(f"Backend plugin {name!r} must be a Backend subclass, got {cls!r}")
    return cls


def get_backend(name: str) -> Backend:
    """The backend plugin ``name`` (one shared instance; backends are stateless)."""
    if name not in _backend_instances:
        cls = get_backend_class(name)
        cls.check_dependencies()
        _backend_instances[name] = cls()
    return _backend_instances[name]


def get_endpoint_class(name: str) -> type[Endpoint]:
    """The endpoint plugin class ``name``."""
    from mmeperf.endpoints.base import Endpoint

    cls = load_plugin(ENDPOINTS, name)
    if not (isinstance(cls, type) and issubclass(cls, Endpoint)):
        raise PluginError(f"Endpoint plugin {name!r} must be an Endpoint subclass, got {cls!r}")
    cls.check_dependencies()
    return cls


def plugin_status() -> list[PluginStatus]:
    """Every plugin of every group, loaded once to tell whether it works here."""
    out: list[PluginStatus] = []
    for group in _GROUPS:
        for name, info in sorted(_discover()[group].items()):
            try:
                if group == BACKENDS:
                    get_backend(name)
                else:
                    get_endpoint_class(name)
            except Exception as exc:
                out.append(PluginStatus(info, False, str(exc)))
            else:
                out.append(PluginStatus(info, True))
    return out
