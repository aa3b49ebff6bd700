"""Kernel receive timestamps: when a response's last byte reached this host, not when the load process read it.

A load process drives many users on one event loop (gevent). When several responses arrive
together, the user whose turn comes last reads its response late by the others' work; a timer
stopped in user space adds that wait to the server's latency. It is the client's delay, not the
server's, and it grows with the request rate until it dominates the tail (a server holding every
request for exactly 20 ms showed p99 +2-3 ms at 800 req/s on 2 cores). Load generators built to
measure tails stamp the arrival in the kernel instead: Lancet (Kogias et al., USENIX ATC 2019)
with NIC and kernel timestamps, for the same reason.

Linux stamps each received packet when ``SO_TIMESTAMPNS`` is set on the socket and hands the
stamp of the last packet a ``recvmsg`` consumed back as ancillary data (``SCM_TIMESTAMPNS``, a
``struct timespec`` on the realtime clock); TCP keeps the latest stamp when it merges packets.
:func:`recv_stamped` reads like ``recv`` and returns that stamp too. Where the option does not
exist (another OS, an architecture whose constant differs) :func:`enable` says so, and a read
that carries no stamp returns None: callers then time in user space as before. Detected, never
assumed.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Iterable

__all__ = ["ANCILLARY_SIZE", "SO_TIMESTAMPNS", "enable", "hold", "recv_stamped", "stamp_of"]

_TIMESPEC = struct.Struct("@ql")
#: ``SO_TIMESTAMPNS`` (= ``SCM_TIMESTAMPNS``) where its value is known: 35 in Linux's generic
#: ``asm-generic/socket.h`` (x86-64, arm64, riscv...) for 64-bit ``time_t``; None elsewhere.
SO_TIMESTAMPNS: int | None = (
    35 if sys.platform.startswith("linux") and _TIMESPEC.size == 16 and getattr(socket, "SO_TIMESTAMPNS", 35) == 35
    else None
)
#: The ancillary buffer one stamp needs.
ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to stamp this socket's received packets; False where it cannot."""
    if SO_TIMESTAMPNS is None or not ANCILLARY_SIZE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def hold() -> socket.socket | None:
    """A socket with stamping on, to keep open for the process's life (None where there is none).

    Linux turns packet stamping on for the whole host when the first socket asks, in a deferred
    step (packets in between carry no stamp), and off again when the last such socket closes;
    one held from start-up keeps every later connection stamped from its first packet.
    """
    sock = socket.socket()
    if enable(sock):
        return sock
    sock.close()
    return None


def stamp_of(ancdata: Iterable[tuple[int, int, bytes]]) -> float | None:
    """The receive stamp (seconds since the epoch, like :func:`time.time`) in a ``recvmsg``'s ancillary data."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return float(seconds + nanoseconds * 1e-9)
    return None


def recv_stamped(sock: socket.socket, bufsize: int, flags: int = 0) -> tuple[bytes, float | None]:
    """``sock.recv(bufsize, flags)`` and the kernel's stamp of the last packet it read (None: not stamped)."""
    data, ancdata, _flags, _address = sock.recvmsg(bufsize, ANCILLARY_SIZE, flags)
    return data, (stamp_of(ancdata) if ancdata else None)
