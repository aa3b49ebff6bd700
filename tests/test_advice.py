import pytest

from mmeperf.advice import Hosting, Workload, advise


def test_batch_when_not_live() -> None:
    assert advise(Workload(live_traffic=False)).hosting is Hosting.BATCH_TRANSFORM


@pytest.mark.parametrize(("payload_mb", "seconds"), [(6.5, 1.0), (1.0, 61.0)])
def test_async_over_real_time_limits(payload_mb: float, seconds: float) -> None:
    advice = advise(Workload(payload_mb=payload_mb, processing_seconds=seconds))
    assert advice.hosting is Hosting.ASYNC_INFERENCE
    assert ("6 MB" in advice.why) == (payload_mb > 6) and ("60 s" in advice.why) == (seconds > 60)


def test_limits_are_inclusive() -> None:
    assert advise(Workload(payload_mb=6.0, processing_seconds=60.0)).hosting is Hosting.REAL_TIME_ENDPOINT


def test_many_models_one_framework_is_mme_with_steps() -> None:
    advice = advise(Workload(n_models=51, fluctuating_traffic=True, production=True))
    assert advice.hosting is Hosting.MULTI_MODEL_ENDPOINT
    assert "51" in advice.why
    assert [s.title for s in advice.steps] == [
        "Load test to right-size",
        "Add autoscaling",
        "Run at least two instances",
    ]
    assert all(s.why for s in advice.steps)


def test_several_frameworks_is_multi_container() -> None:
    advice = advise(Workload(n_models=5, frameworks=3, production=False))
    assert advice.hosting is Hosting.MULTI_CONTAINER_ENDPOINT
    assert [s.title for s in advice.steps] == ["Load test to right-size"]


def test_render_mentions_every_step() -> None:
    text = advise(Workload(n_models=3, fluctuating_traffic=True)).render()
    assert "multi-model-endpoint" in text and "autoscaling" in text.lower()


def test_bad_workload_is_rejected() -> None:
    with pytest.raises(ValueError):
        Workload(n_models=0)
