"""A server process started for someone ends with them: ``--owner-pid`` and a watch on the parent.

:class:`~mmeperf.endpoints.local.LocalEndpoint` starts the server as its child and stops it on
exit; a library process killed outright (SIGKILL, or SIGTERM with no handler) runs no exit code,
and the server would go on holding its port, memory and worker processes. A parent-death signal
(Linux ``PR_SET_PDEATHSIG``) fires when the *thread* that started the child ends, which in a
library may be any short-lived thread; so, as the load processes do, the server polls whether it
was re-parented and then stops itself gracefully (SIGTERM to itself: the same orderly shutdown,
exit status 0).
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["POLL_S", "watch_owner"]

#: How often the parent is checked.
POLL_S = 0.25


def watch_owner(owner_pid: int | None) -> threading.Thread | None:
    """Stop this process (SIGTERM to itself) once its parent is no longer ``owner_pid``.

    None (a server a person started): no watch. An owner already gone stops it at once.
    """
    if owner_pid is None:
        return None

    def watch() -> None:
        stop = threading.Event()
        while os.getppid() == owner_pid:
            stop.wait(POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="mmeperf-owner-watch", daemon=True)
    thread.start()
    return thread
