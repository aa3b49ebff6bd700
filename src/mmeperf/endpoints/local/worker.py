"""A model worker process of the local MME (``worker_mode="process"``), as Multi Model Server runs one
per loaded model: import the backend, load the artifact, say ready, then predict batches.

``python -m mmeperf.endpoints.local.worker --fd N --backend NAME --folder PATH --target NAME``
talks over the inherited Unix socket ``N`` in length-prefixed frames (:data:`HEADER`): the front
end sends already-decoded batches as raw numpy bytes and gets raw outputs back, so the hand-off
costs two small writes and no parsing. The framing functions here are shared with
:mod:`mmeperf.endpoints.local.workers` (the front-end side). The process exits when the socket
closes (the front end stopped it or died).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import sys
import time
from typing import Any

import numpy as np

__all__ = [
    "ERROR",
    "FAILED",
    "HEADER",
    "PREDICT",
    "READY",
    "RESULT",
    "decode_batch",
    "encode_batch",
    "main",
    "own_memory",
]

#: Frame header: body length (u32), request id (u32), kind (u8).
HEADER = struct.Struct("<IIB")
#: Worker -> front end: loaded; JSON body with pid, memory, n_features.
READY = 1
#: Worker -> front end: the load failed; JSON body with type and message. The worker then exits.
FAILED = 2
#: Front end -> worker: predict this batch (an encoded batch).
PREDICT = 3
#: Worker -> front end: f64 model microseconds, then the encoded output.
RESULT = 4
#: Worker -> front end: the predict failed; JSON body with type and message.
ERROR = 5

_F64 = struct.Struct("<d")
_DIM = struct.Struct("<Q")
_NAME = struct.Struct("<H")


# --- batches as raw bytes ------------------------------------------------------------------------


def _encode_array(a: np.ndarray[Any, Any], parts: list[bytes | memoryview]) -> None:
    if a.dtype.hasobject:
        raise TypeError(f"process workers carry numeric arrays, not {a.dtype}")
    a = np.ascontiguousarray(a)
    dtype = a.dtype.str.encode()
    parts.append(bytes((len(dtype),)) + dtype + bytes((a.ndim,)) + b"".join(_DIM.pack(n) for n in a.shape))
    parts.append(memoryview(a).cast("B"))  # type: ignore[arg-type]  # ndarray is a Buffer


def encode_batch(batch: Any) -> list[bytes | memoryview]:
    """A batch (one array, or named arrays) as byte parts to write one after the other."""
    parts: list[bytes | memoryview] = []
    if isinstance(batch, dict):
        parts.append(b"D" + bytes((len(batch),)))
        for name, value in batch.items():
            key = str(name).encode()
            parts.append(_NAME.pack(len(key)) + key)
            _encode_array(np.asarray(value), parts)
    else:
        parts.append(b"A")
        _encode_array(np.asarray(batch), parts)
    return parts


def _decode_array(buf: memoryview, pos: int) -> tuple[np.ndarray[Any, Any], int]:
    n = buf[pos]
    dtype = np.dtype(bytes(buf[pos + 1: pos + 1 + n]).decode())
    pos += 1 + n
    ndim = buf[pos]
    pos += 1
    shape = tuple(_DIM.unpack_from(buf, pos + 8 * i)[0] for i in range(ndim))
    pos += 8 * ndim
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    array = np.frombuffer(buf, dtype=dtype, count=count, offset=pos).reshape(shape)
    return array, pos + count * dtype.itemsize


def decode_batch(buf: memoryview, pos: int = 0) -> Any:
    """The inverse of :func:`encode_batch` (arrays are read-only views of ``buf``)."""
    if buf[pos] == ord("A"):
        return _decode_array(buf, pos + 1)[0]
    count = buf[pos + 1]
    pos += 2
    out: dict[str, Any] = {}
    for _ in range(count):
        (n,) = _NAME.unpack_from(buf, pos)
        name = bytes(buf[pos + 2: pos + 2 + n]).decode()
        out[name], pos = _decode_array(buf, pos + 2 + n)
    return out


# --- memory ----------------------------------------------------------------------------------------


def own_memory() -> dict[str, int]:
    """This process's resident memory in bytes: rss, pss and uss (private pages).

    Read from ``/proc/self/smaps_rollup`` (one summary, well under a millisecond) where the
    kernel has it, else psutil's ``memory_full_info`` (which walks every mapping).
    """
    try:
        fields: dict[str, int] = {}
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    fields[key] = int(parts[0]) * 1024
        return {
            "rss": fields["Rss"],
            "pss": fields["Pss"],
            "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0) + fields.get("Private_Hugetlb", 0),
        }
    except (OSError, KeyError, ValueError):
        import psutil

        info = psutil.Process().memory_full_info()
        return {"rss": int(info.rss), "pss": int(getattr(info, "pss", info.uss)), "uss": int(info.uss)}


# --- the process -------------------------------------------------------------------------------------


def _send(sock: socket.socket, kind: int, rid: int, parts: list[bytes | memoryview]) -> None:
    size = sum(len(p) if isinstance(p, bytes) else p.nbytes for p in parts)
    sock.sendmsg([HEADER.pack(size, rid, kind), *parts])


def _send_json(sock: socket.socket, kind: int, rid: int, payload: dict[str, Any]) -> None:
    _send(sock, kind, rid, [json.dumps(payload).encode()])


def _read_exact(sock: socket.socket, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return buf


def _error(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": str(exc) or repr(exc)}


def serve(sock: socket.socket, *, backend_name: str, folder: str, target: str, allow_pickle: bool,
          fast_path_after: int) -> int:
    """Load, say ready, predict until the socket closes; the exit status."""
    t0 = time.perf_counter()
    try:
        from pathlib import Path

        from mmeperf.backends import get_backend

        backend = get_backend(backend_name)
        runner = backend.load(Path(folder), allow_pickle=allow_pickle)
    except Exception as exc:  # the load's error goes to the front end, which raises ModelLoadError
        _send_json(sock, FAILED, 0, _error(exc))
        return 1
    memory = own_memory()
    _send_json(sock, READY, 0, {
        "pid": os.getpid(), "target": target, "load_s": time.perf_counter() - t0,
        "n_features": runner.n_features, "estimate_bytes": int(runner.memory_bytes),
        "runner": type(runner).__name__, **memory,
    })
    uses = 0
    compiled = fast_path_after <= 0  # 0: never compile
    header_size = HEADER.size
    while True:
        header = _read_exact(sock, header_size)
        if header is None:
            return 0
        size, rid, kind = HEADER.unpack(header)
        body = _read_exact(sock, size) if size else bytearray()
        if body is None:
            return 0
        if kind != PREDICT:
            continue
        try:
            batch = decode_batch(memoryview(body))
            t_predict = time.perf_counter()
            out = np.asarray(runner.predict(batch))
            model_us = (time.perf_counter() - t_predict) * 1e6
            parts = encode_batch(out)
        except Exception as exc:  # the request's error, the worker lives on
            _send_json(sock, ERROR, rid, _error(exc))
            continue
        _send(sock, RESULT, rid, [_F64.pack(model_us), *parts])
        uses += 1
        if not compiled and uses >= fast_path_after:
            # The compiled fast path pays here as in thread mode (tens of microseconds instead
            # of XGBoost's per-call overhead); compiled after the answer, between requests.
            compiled = True
            try:
                from mmeperf.endpoints.local.fastpath import compile_runner

                # This process serves one model: compile here, no compiler child per worker.
                runner = compile_runner(runner, in_process=True)
            except Exception:  # the plain runner keeps serving
                continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmeperf.endpoints.local.worker")
    parser.add_argument("--fd", type=int, required=True, help="inherited Unix socket to the front end")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--allow-pickle", action="store_true")
    parser.add_argument("--fast-path-after", type=int, default=0)
    args = parser.parse_args(argv)
    # Ctrl-C in a terminal reaches the whole process group: the front end stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    try:
        return serve(sock, backend_name=args.backend, folder=args.folder, target=args.target,
                     allow_pickle=args.allow_pickle, fast_path_after=args.fast_path_after)
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the front end went away
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
