"""The public plugin registry of backends and endpoints, lazy like fsspec's registry.

A table maps names to ``module:attr`` paths, filled from the ``mmeperf.backends`` and
``mmeperf.endpoints`` entry-point groups (built-ins register there too) and from
:func:`register` at run time. Nothing is imported until a name is used, so a broken TensorRT
never stops an XGBoost run; each plugin remembers which installed package provided it.

The registry is a leaf: it imports nothing of mmeperf but errors. A loaded class is checked by
shape (:class:`BackendPlugin`, :class:`EndpointPlugin`), not against the base classes, which
live above it; :mod:`mmeperf.backends` offers the same lookup typed as ``Backend``.

Lookups: :func:`get_backend` (the shared instance), :func:`get_backend_class`,
:func:`get_endpoint_class`, :func:`load_plugin` (any group), :func:`load_object`
(any ``module:attr``); what is there: :func:`available`, :func:`status`; changes at
run time: :func:`register`, :func:`unregister`, :func:`isolated_registry` (for tests).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeGuard, runtime_checkable

from mmeperf.errors import (
    MissingDependencyError,
    PluginError,
    PluginNotImplementedError,
    UnknownPluginError,
)

__all__ = [
    "BACKENDS",
    "ENDPOINTS",
    "BackendPlugin",
    "EndpointPlugin",
    "Group",
    "PluginInfo",
    "PluginStatus",
    "available",
    "get_backend",
    "get_backend_class",
    "get_endpoint_class",
    "isolated_registry",
    "load_object",
    "load_plugin",
    "register",
    "status",
    "unregister",
]

Group = Literal["mmeperf.backends", "mmeperf.endpoints"]
BACKENDS: Group = "mmeperf.backends"
ENDPOINTS: Group = "mmeperf.endpoints"
_GROUPS: tuple[Group, ...] = (BACKENDS, ENDPOINTS)


@runtime_checkable
class BackendPlugin(Protocol):
    """What the registry requires of a backend class (``mmeperf.backends.base.Backend`` has it).

    Checked by shape on every lookup, so the registry never imports the classes it registers.
    """

    name: ClassVar[str]
    artifact_patterns: ClassVar[tuple[str, ...]]

    @classmethod
    def check_dependencies(cls) -> None: ...

    def save(self, model: Any, directory: Path) -> Path: ...

    def load(self, directory: Path, *, allow_pickle: bool = False) -> Any: ...

    def decode(self, body: bytes, content_type: str, runner: Any = None) -> Any: ...

    def encode(self, predictions: Any, accept: str | None = None) -> Any: ...


@runtime_checkable
class EndpointPlugin(Protocol):
    """What the registry requires of an endpoint class (``mmeperf.endpoints.base.Endpoint`` has it)."""

    kind: ClassVar[str]

    @classmethod
    def check_dependencies(cls) -> None: ...

    def deploy(self, repository: Any) -> Any: ...

    def invoke(
        self, target_model: str, body: bytes, *, content_type: str = ..., accept: str | None = None
    ) -> Any: ...

    def metrics(self) -> Any: ...

    def delete(self) -> None: ...


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
_backend_instances: dict[str, BackendPlugin] = {}


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


def available(group: Group) -> dict[str, PluginInfo]:
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
    obj = _import(info.value, f"The {name!r} {_kind(group)}", info)
    _loaded[key] = obj
    return obj


def load_object(value: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted; without it, the module itself).

    What a spec naming an object outside the registry (``mypkg.targets:MyEndpoint``) resolves
    through; failures raise the same PluginError family as :func:`load_plugin`.
    """
    return _import(value, repr(value), None)


def _import(value: str, what: str, info: PluginInfo | None) -> Any:
    """Import ``value``; ``info``, for a registered plugin, lets errors name its provider."""
    module_name, _, attr = value.partition(":")
    try:
        module = importlib.import_module(module_name)
    except MissingDependencyError:
        raise
    except ModuleNotFoundError as exc:
        if (
            info is not None
            and exc.name is not None
            and (exc.name == module_name or module_name.startswith(exc.name + "."))
        ):
            raise PluginNotImplementedError(
                f"{what} is registered by {info.provider} but its module {module_name} is not "
                f"in this version ({info.version}) yet"
            ) from exc
        raise PluginError(f"{what} failed to import: {exc}") from exc
    except Exception as exc:  # a broken third-party plugin must not take the process down
        raise PluginError(f"{what} failed to import: {exc!r}") from exc
    obj: Any = module
    for part in attr.split(".") if attr else []:
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            if info is None:
                raise PluginError(f"{what} does not exist: {module_name} has no {attr}") from exc
            raise PluginNotImplementedError(
                f"{what} names {value}, which does not exist in {info.provider} {info.version}"
            ) from exc
    return obj


def _kind(group: str) -> str:
    return "backend" if group == BACKENDS else "endpoint"


def _is_backend_class(obj: object) -> TypeGuard[type[BackendPlugin]]:
    # runtime_checkable protocols check attribute names; on a class, its class attributes.
    return isinstance(obj, type) and isinstance(obj, BackendPlugin)


def _is_endpoint_class(obj: object) -> TypeGuard[type[EndpointPlugin]]:
    return isinstance(obj, type) and isinstance(obj, EndpointPlugin)


def get_backend_class(name: str) -> type[BackendPlugin]:
    """The backend plugin class ``name``, imported but with its dependencies unchecked (light)."""
    cls = load_plugin(BACKENDS, name)
    if not _is_backend_class(cls):
        raise PluginError(f"Backend plugin {name!r} must be a Backend subclass, got {cls!r}")
    return cls


def get_backend(name: str) -> BackendPlugin:
    """The backend plugin ``name`` (one shared instance; backends are stateless)."""
    if name not in _backend_instances:
        cls = get_backend_class(name)
        _check_dependencies(cls, BACKENDS, name)
        _backend_instances[name] = cls()
    return _backend_instances[name]


def get_endpoint_class(name: str) -> type[EndpointPlugin]:
    """The endpoint plugin class ``name``, its dependencies checked."""
    cls = load_plugin(ENDPOINTS, name)
    if not _is_endpoint_class(cls):
        raise PluginError(f"Endpoint plugin {name!r} must be an Endpoint subclass, got {cls!r}")
    _check_dependencies(cls, ENDPOINTS, name)
    return cls


def _check_dependencies(cls: type[BackendPlugin] | type[EndpointPlugin], group: Group, name: str) -> None:
    """``cls.check_dependencies()``, its install hint naming the package that provides the plugin.

    The base classes word the hint for mmeperf's own extras; a plugin from another
    distribution is fixed by that distribution's extra (when it declares one), else by
    installing the missing package itself.
    """
    try:
        cls.check_dependencies()
    except MissingDependencyError as exc:
        info = _discover()[group].get(name)
        provider = info.provider if info is not None else "runtime"
        if provider in ("mmeperf", "runtime", "unknown") or exc.distribution != "mmeperf":
            raise
        try:
            extras = metadata.metadata(provider).get_all("Provides-Extra") or []
        except metadata.PackageNotFoundError:
            extras = []
        extra = exc.extra if exc.extra in extras else None
        raise MissingDependencyError(exc.what, exc.package, extra, distribution=provider) from exc.__cause__


def status() -> list[PluginStatus]:
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
