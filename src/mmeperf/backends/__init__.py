"""Model frameworks and formats. Each backend lives in its own module, imported on first use."""

from mmeperf import plugins
from mmeperf.backends.base import Backend, Encoded, Runner
from mmeperf.errors import PluginError

__all__ = ["Backend", "Encoded", "Runner", "get_backend"]


def get_backend(name: str) -> Backend:
    """The backend plugin ``name`` (one shared instance), typed as :class:`Backend`.

    :func:`mmeperf.plugins.get_backend` checks a plugin by shape, since the registry sits below
    this package; code that needs the whole Backend surface looks it up here.
    """
    backend = plugins.get_backend(name)
    if not isinstance(backend, Backend):
        raise PluginError(f"Backend plugin {name!r} must be a Backend subclass, got {type(backend)!r}")
    return backend
