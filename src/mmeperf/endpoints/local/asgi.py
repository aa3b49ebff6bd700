"""What the local MME's two ASGI apps share: the ASGI type aliases and the lifespan protocol.

:class:`~mmeperf.endpoints.local.app.MMEApp` (one instance) and
:class:`~mmeperf.endpoints.local.front.FrontApp` (the multi-instance front) start and stop what
they serve the same way; each says only what starting and stopping are.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mmeperf.endpoints.local.loopstall import LoopStallMonitor

__all__ = ["LifespanApp", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class LifespanApp:
    """An ASGI app whose lifespan starts and stops one service; ``/ping`` reads ``_ready``.

    While it serves, ``loop_monitor`` measures how long the event loop stalls (``/metrics``
    ``event_loop_*``, ``/mmeperf/status`` ``loop``)."""

    log = logging.getLogger("mmeperf.serve")
    #: Once started, collect and then freeze the heap (gc.freeze): set by ``run`` in a server's
    #: own process only; an in-process endpoint (MemoryEndpoint) must not freeze its user's heap.
    #: A full collection walks every tracked object holding the GIL, in whichever thread
    #: triggers it, so the event loop stops for all of it: 70 ms for the ~145,000 objects of
    #: a started server with XGBoost (scipy, sklearn) imported, on a quiet 2-core machine.
    #: After the freeze a collection walks only what serving created.
    freeze_startup_heap = False

    def __init__(self) -> None:
        self._ready = False
        #: Why the lifespan startup failed (an in-process driver re-raises it as it was).
        self.startup_error: Exception | None = None
        self.loop_monitor = LoopStallMonitor()

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start()
                except Exception as exc:  # the parent reads this from the log
                    self.startup_error = exc
                    self.log.error("Startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self.freeze_startup_heap:
                    gc.collect()
                    gc.freeze()
                self._ready = True
                self.loop_monitor.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._ready = False
                await self.loop_monitor.stop()
                await self._stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
