"""The instance catalog: lookups, prices, and the memory arithmetic that emulates an instance."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.instances import DEFAULT_CATALOG, PRICES_AS_OF, InstanceCatalog, InstanceProfile

MiB, GiB = 2**20, 2**30
TINY_MODEL_BYTES = 50 * 1024  # a churn XGBoost booster is a few tens of KiB


def test_reference_instances_are_in_the_catalog() -> None:
    xl, xxl = DEFAULT_CATALOG.get("ml.c5.xlarge"), DEFAULT_CATALOG.get("ml.c5.2xlarge")
    assert (xl.vcpus, xl.memory_gib, xl.gpus) == (4, 8, 0)
    assert (xxl.vcpus, xxl.memory_gib) == (8, 16)
    assert xxl.price_per_hour_usd == pytest.approx(2 * xl.price_per_hour_usd)
    g4 = DEFAULT_CATALOG.get("ml.g4dn.2xlarge")
    assert (g4.gpus, g4.gpu_model, g4.gpu_memory_gib) == (1, "T4", 16)
    assert all(p.price_as_of == PRICES_AS_OF for p in DEFAULT_CATALOG)


def test_unknown_instance_type_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        DEFAULT_CATALOG.get("ml.c5.huge")
    message = str(info.value)
    assert "'ml.c5.huge'" in message
    assert "ml.c5.xlarge" in message and "ml.g5.2xlarge" in message


def test_catalog_container_protocol() -> None:
    assert "ml.c5.xlarge" in DEFAULT_CATALOG and "ml.nope" not in DEFAULT_CATALOG
    assert len(DEFAULT_CATALOG) == len(DEFAULT_CATALOG.names()) == len(list(DEFAULT_CATALOG))


def test_c5_xlarge_fits_about_31_tiny_models_with_200_mib_each() -> None:
    # The reference saw 31-38 of 51 churn models loaded at once on ml.c5.xlarge.
    xl = DEFAULT_CATALOG.get("ml.c5.xlarge")
    assert xl.per_model_overhead_bytes == 200 * MiB
    assert xl.memory_budget_bytes == int(8 * GiB * 0.9) - GiB
    assert xl.models_that_fit(TINY_MODEL_BYTES) == 31


def test_c5_2xlarge_fits_all_51_churn_models() -> None:
    xxl = DEFAULT_CATALOG.get("ml.c5.2xlarge")
    assert xxl.models_that_fit(TINY_MODEL_BYTES) >= 51


def test_fit_arithmetic_charges_model_bytes_plus_overhead() -> None:
    xl = DEFAULT_CATALOG.get("ml.c5.xlarge")
    big = 100 * MiB
    assert xl.models_that_fit(big) == xl.memory_budget_bytes // (big + 200 * MiB)
    assert xl.models_that_fit(xl.memory_budget_bytes) == 0  # one model plus its overhead is too much


def test_gpu_instances_have_no_per_model_worker_overhead() -> None:
    assert DEFAULT_CATALOG.get("ml.g4dn.2xlarge").per_model_overhead_bytes == 0


def test_budget_never_goes_negative() -> None:
    small = InstanceProfile(name="ml.tiny", vcpus=1, memory_gib=0.5, price_per_hour_usd=0.01)
    assert small.memory_budget_bytes == 0
    assert small.models_that_fit(0) == 0


def test_cost_per_million() -> None:
    xl = DEFAULT_CATALOG.get("ml.c5.xlarge")
    # 100 req/s for an hour is 360,000 inferences for one instance-hour.
    assert xl.cost_per_million(100) == pytest.approx(xl.price_per_hour_usd / 0.36)
    assert xl.cost_per_million(100, instance_count=2) == pytest.approx(2 * xl.cost_per_million(100))
    assert xl.cost_per_million(0) == float("inf")


def test_profiles_are_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        DEFAULT_CATALOG.get("ml.c5.xlarge").vcpus = 64  # type: ignore[misc]


def test_catalog_from_json_and_yaml(tmp_path: Path) -> None:
    rows = [{"name": "ml.custom.large", "vcpus": 2, "memory_gib": 4, "price_per_hour_usd": 0.1}]
    (tmp_path / "c.json").write_text(json.dumps(rows))
    (tmp_path / "c.yaml").write_text("- name: ml.custom.large\n  vcpus: 2\n  memory_gib: 4\n  price_per_hour_usd: 0.1\n")
    for name in ("c.json", "c.yaml"):
        catalog = InstanceCatalog.from_file(tmp_path / name)
        assert catalog.names() == ["ml.custom.large"]
        assert catalog.get("ml.custom.large").per_model_overhead_bytes == 200 * MiB


def test_catalog_file_that_is_not_a_list(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"name": "ml.c5.xlarge"}')
    with pytest.raises(ConfigurationError, match="Expected a list in instance catalog"):
        InstanceCatalog.from_file(tmp_path / "c.json")


@pytest.mark.parametrize(("name", "content", "says"), [
    ("missing.yaml", None, "Cannot read instance catalog"),
    ("broken.yaml", "- name: [ml.c5\n", "is not valid YAML/JSON"),
    ("broken.json", "[{name: 1}]", "is not valid YAML/JSON"),
    ("binary.json", b"\xff\xfe\x00[", "is not UTF-8 text"),
])
def test_an_unreadable_catalog_file_is_a_configuration_error(tmp_path: Path, name: str, content: str | bytes | None,
                                                            says: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=says):
        InstanceCatalog.from_file(path)


def test_catalog_row_missing_a_field_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('[{"name": "ml.custom.large", "vcpus": 2}]')
    with pytest.raises(ConfigurationError):
        InstanceCatalog.from_file(tmp_path / "c.json")
