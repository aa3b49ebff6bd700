"""The master's worker roster: joins, losses (missing or gone before the final report), returns."""

from __future__ import annotations

from mmeperf.load.workers import WorkerRoster


def test_joined_lost_and_returned_with_times() -> None:
    roster = WorkerRoster()
    roster.joined("a", 10.0)
    roster.hello("b", 11.0, {"host": "h2", "pid": 42, "address": "127.0.0.2", "remote": True})
    assert [roster.assign_index(n) for n in ("b", "a", "b")] == [0, 1, 0]
    assert roster.observe({"a": "running", "b": "running"}, 12.0) == []
    assert roster.observe({"a": "running", "b": "missing"}, 13.0) == ["b"]
    assert roster.observe({"a": "running", "b": "missing"}, 14.0) == []  # reported once
    assert roster.active() == ["a"] and roster.lost() == ["b"]
    roster.observe({"a": "running", "b": "running"}, 15.0)  # heartbeats again: back
    assert roster.active() == ["a", "b"]
    doc = roster.to_json(t0=10.0)
    assert doc["joined"] == 2 and doc["lost"] == 1
    b = next(n for n in doc["nodes"] if n["node"] == "b")
    assert b["lost_s"] == 3.0 and b["address"] == "127.0.0.2" and b["pid"] == 42 and b["remote"] is True
    assert [e["event"] for e in b["events"]] == ["joined", "lost (missing)", "returned"]


def test_a_worker_that_finished_may_leave_but_one_that_vanishes_is_lost() -> None:
    roster = WorkerRoster()
    roster.joined("done", 1.0)
    roster.joined("gone", 1.0)
    roster.finished("done")
    assert roster.observe({}, 5.0) == ["gone"]
    assert roster.lost() == ["gone"]
    roster.observe({"late": "ready"}, 6.0)  # one Locust knows of that never said hello
    assert "late" in roster.active()
