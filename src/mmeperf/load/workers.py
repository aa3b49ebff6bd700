"""The master's roster of Locust workers: who joined, from where, who was lost and when.

The master feeds it what Locust tells it (a worker connected; the states of the workers it
knows, once a second) and what each worker says of itself (host, pid, address); run.json's
``workers`` section is :meth:`WorkerRoster.to_json`. It imports no Locust.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["WorkerRecord", "WorkerRoster"]

#: Locust worker states that mean the worker is gone for now (heartbeats stopped).
_GONE_STATES = frozenset({"missing"})


@dataclass
class WorkerRecord:
    """One worker as the master saw it."""

    node: str
    joined_at: float
    index: int | None = None
    """The load index the master gave it (its share of an open-loop schedule)."""
    host: str | None = None
    pid: int | None = None
    address: str | None = None
    """The address it connected from, as it says (``mmeperf worker --bind``), when it says."""
    remote: bool | None = None
    """Whether it fetched the run spec from the master (a worker started by ``mmeperf worker``)."""
    lost_at: float | None = None
    """When the master stopped hearing from it (heartbeats missing, or it quit before the end)."""
    returned_at: float | None = None
    gone: bool = False
    """Lost now (not back)."""
    finished: bool = False
    """It sent its final report (so every request it counted is in)."""
    events: list[tuple[float, str]] = field(default_factory=list)


class WorkerRoster:
    """Workers that joined the master's run, and what became of them."""

    def __init__(self) -> None:
        self.workers: dict[str, WorkerRecord] = {}
        self._next_index = 0

    def joined(self, node: str, now: float) -> WorkerRecord:
        record = self.workers.get(node)
        if record is None:
            record = self.workers[node] = WorkerRecord(node=node, joined_at=now)
            record.events.append((now, "joined"))
        elif record.gone:
            self._back(record, now)
        return record

    @staticmethod
    def _back(record: WorkerRecord, now: float) -> None:
        record.gone = False
        record.returned_at = now
        record.events.append((now, "returned"))

    def assign_index(self, node: str) -> int:
        """The next load index (0, 1, ...) for a worker, once."""
        record = self.workers[node]
        if record.index is None:
            record.index = self._next_index
            self._next_index += 1
        return record.index

    def hello(self, node: str, now: float, info: dict[str, Any]) -> None:
        """What a worker says of itself (host, pid, address, remote)."""
        record = self.joined(node, now)
        record.host = info.get("host")
        record.pid = info.get("pid")
        record.address = info.get("address")
        record.remote = info.get("remote")

    def finished(self, node: str) -> None:
        if node in self.workers:
            self.workers[node].finished = True

    def observe(self, states: dict[str, str], now: float) -> list[str]:
        """Locust's current view (node -> state); returns the workers newly lost.

        A worker is lost when Locust marks it missing, or forgets it (it quit, or was dropped
        after missing too long) before it sent its final report.
        """
        lost: list[str] = []
        for node, record in self.workers.items():
            if record.finished:
                continue
            state = states.get(node)
            gone = state is None or state in _GONE_STATES
            if gone and not record.gone:
                record.gone = True
                record.lost_at = now
                record.events.append((now, f"lost ({state or 'disconnected'})"))
                lost.append(node)
            elif not gone and record.gone:
                self._back(record, now)
        for node, state in states.items():
            if node not in self.workers and state not in _GONE_STATES:
                self.joined(node, now)
        return lost

    def active(self) -> list[str]:
        """Workers not lost (or back since): the ones whose final report the master waits for."""
        return [node for node, r in self.workers.items() if not r.gone]

    def lost(self) -> list[str]:
        """Workers lost at some point of the run (back since or not)."""
        return [node for node, r in self.workers.items() if r.lost_at is not None]

    def to_json(self, t0: float | None = None) -> dict[str, Any]:
        """run.json's ``workers``: joined, lost (with times; ``*_s`` from the run's t0), and each worker."""
        def rel(t: float | None) -> float | None:
            return None if t is None or t0 is None else round(t - t0, 3)

        rows = []
        for r in sorted(self.workers.values(), key=lambda r: (r.joined_at, r.node)):
            row = asdict(r)
            row["joined_s"] = rel(r.joined_at)
            row["lost_s"] = rel(r.lost_at)
            row["events"] = [{"at": t, "at_s": rel(t), "event": e} for t, e in r.events]
            rows.append(row)
        return {"joined": len(self.workers), "lost": len(self.lost()), "nodes": rows}
