"""Kernel receive stamps on a real loopback TCP connection."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from mmeperf.load import rxstamp

stamps = pytest.mark.skipif(rxstamp.SO_TIMESTAMPNS is None, reason="no SO_TIMESTAMPNS on this platform")


@pytest.fixture(scope="module", autouse=True)
def stamping_on() -> Iterator[None]:
    """Stamping held on for the module, and seen to work (the kernel turns it on in a deferred step)."""
    holder = rxstamp.hold()
    if holder is not None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            with socket.create_connection(listener.getsockname(), timeout=10) as client:
                server, _ = listener.accept()
                rxstamp.enable(client)
                deadline = time.monotonic() + 10
                with server:
                    while True:
                        server.sendall(b"x")
                        if rxstamp.recv_stamped(client, 10)[1] is not None or time.monotonic() > deadline:
                            break
                        time.sleep(0.01)
    yield
    if holder is not None:
        holder.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname(), timeout=10)
        server, _ = listener.accept()
    with client, server:
        yield client, server


@stamps
def test_the_stamp_is_the_arrival_not_the_read(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    assert rxstamp.enable(client)
    sent = time.time()
    server.sendall(b"hello")
    time.sleep(0.1)  # the data waits in the kernel while the reader is busy elsewhere
    data, stamp = rxstamp.recv_stamped(client, 100)
    read = time.time()
    assert data == b"hello"
    assert stamp is not None
    assert sent - 0.001 <= stamp <= sent + 0.05  # stamped when it arrived...
    assert read - stamp >= 0.09  # ...not when it was read


@stamps
def test_the_stamp_of_a_read_is_its_last_packet(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    rxstamp.enable(client)
    server.sendall(b"head")
    time.sleep(0.05)
    second = time.time()
    server.sendall(b"tail")
    time.sleep(0.05)
    got = b""
    stamp = None
    while len(got) < 8:
        data, stamp = rxstamp.recv_stamped(client, 100)
        got += data
    assert got == b"headtail"
    assert stamp is not None and stamp >= second - 0.001


def test_a_socket_without_the_option_has_no_stamp(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    server.sendall(b"x")
    data, stamp = rxstamp.recv_stamped(client, 10)
    assert (data, stamp) == (b"x", None)


def test_eof_reads_empty(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    rxstamp.enable(client)
    server.shutdown(socket.SHUT_WR)
    assert rxstamp.recv_stamped(client, 10)[0] == b""


def test_stamp_of_ignores_other_ancillary_data() -> None:
    timespec = struct.pack("@ql", 1_700_000_000, 250_000_000)
    assert rxstamp.stamp_of([(socket.SOL_SOCKET, 1, timespec)]) is None
    assert rxstamp.stamp_of([(socket.SOL_SOCKET, rxstamp.SO_TIMESTAMPNS or -1, b"short")]) is None
    if rxstamp.SO_TIMESTAMPNS is not None:
        assert rxstamp.stamp_of([(socket.SOL_SOCKET, rxstamp.SO_TIMESTAMPNS, timespec)]) == pytest.approx(1_700_000_000.25)

