"""LoadProfile: shapes, stages, files and typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.load import LoadProfile


def test_reference_constant_defaults_and_durations() -> None:
    p = LoadProfile.constant(duration="15m")
    (stage,) = p.stages()
    assert (stage.users, stage.spawn_rate, stage.duration_s) == (300, 5.0, 900.0)
    assert (p.wait.min, p.wait.max) == (0.0, 2.0)
    assert LoadProfile.constant(duration="1h30m").duration_s == 5400.0


def test_gpu_reference_steps() -> None:
    users = [10, 20, *range(40, 201, 20)]
    p = LoadProfile.steps(users=users, step_duration="30s", last_step_duration="40s", wait={"min": 0.05, "max": 0.5})
    stages = p.stages()
    assert [s.users for s in stages] == users
    assert stages[3].start_s == 90.0 and stages[-1].duration_s == 40.0
    assert p.duration_s == 30.0 * (len(users) - 1) + 40.0


def test_inference_recommender_phases_take_its_keys() -> None:
    p = LoadProfile.phases([{"InitialNumberOfUsers": 2, "SpawnRate": 30, "DurationInSeconds": 120}, {"initial_users": 1, "spawn_rate": 0, "duration": "1m"}])
    first, second = p.stages()
    assert first.users_at(0) == 2 and first.users_at(60) == 32  # SpawnRate is per minute
    assert second.start_s == 120.0 and second.users_at(59) == 1


def test_open_loop_and_stop_conditions() -> None:
    p = LoadProfile.open_loop(rate=200, duration="10s", arrivals="poisson", stop={"latency": {"threshold_ms": 50}})
    (stage,) = p.stages()
    assert stage.rate == 200 and stage.users == 256
    assert p.stop.latency is not None and p.stop.latency.percentile == 99.0


def test_from_file_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("State,a\nCA,1\n")
    (tmp_path / "p.yaml").write_text(
        "profile:\n  shape: {kind: steps, users: [1, 2], step_duration: 5s}\n"
        "  traffic: {data: rows.csv, model_column: State, model_template: 'churn-xgb-{}.tar.gz'}\n"
    )
    p = LoadProfile.from_file(tmp_path / "p.yaml")
    assert p.traffic.data == str(tmp_path / "rows.csv")
    assert p.traffic.build().models == ["churn-xgb-CA.tar.gz"]
    (tmp_path / "p.json").write_text(p.model_dump_json())
    assert LoadProfile.from_file(tmp_path / "p.json").stages() == p.stages()


@pytest.mark.parametrize(
    "data",
    [
        {"shape": {"kind": "constant", "users": 0}},
        {"shape": {"kind": "constant", "duration": "soon"}},
        {"shape": {"kind": "open", "rate": 10}},
        {"shape": {"kind": "wobble"}},
        {"wait": {"min": 2, "max": 1}},
        {"nonsense": 1},
    ],
)
def test_bad_profiles_are_configuration_errors(data: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        LoadProfile.from_dict(data)


def test_unreadable_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        LoadProfile.from_file(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigurationError):
        LoadProfile.from_file(tmp_path / "list.yaml")
