"""mmeperf._files: every YAML/JSON file a user gives fails as a ConfigurationError naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmeperf._files import read_document, read_list, read_mapping
from mmeperf.errors import ConfigurationError


def test_json_and_yaml_read_to_the_same_data(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"users": 4, "models": ["CA", "NY"]}')
    (tmp_path / "a.yaml").write_text("users: 4\nmodels: [CA, NY]\n")
    (tmp_path / "a.yml").write_text("users: 4\nmodels:\n- CA\n- NY\n")
    expected = {"users": 4, "models": ["CA", "NY"]}
    for name in ("a.json", "a.yaml", "a.yml"):
        assert read_mapping(tmp_path / name, "load profile") == expected


def test_a_json_suffix_is_parsed_as_json_not_yaml(tmp_path: Path) -> None:
    # YAML would take this unquoted word as a string; JSON must refuse it
    (tmp_path / "a.json").write_text("{users: four}")
    with pytest.raises(ConfigurationError, match=r"Load profile '.*a\.json' is not valid YAML/JSON"):
        read_document(tmp_path / "a.json", "load profile")


def test_a_missing_file_names_the_file_and_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"Cannot read calibration '.*nope\.yaml'"):
        read_mapping(tmp_path / "nope.yaml", "calibration")


def test_a_folder_is_not_readable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Cannot read calibration"):
        read_mapping(tmp_path, "calibration")


def test_binary_content_is_not_utf8_text(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_bytes(b"\x1f\x8b\x08\x00\xff\xfe\x00")
    with pytest.raises(ConfigurationError, match=r"Calibration '.*model\.yaml' is not UTF-8 text"):
        read_mapping(tmp_path / "model.yaml", "calibration")


def test_broken_yaml(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("users: [4\n")
    with pytest.raises(ConfigurationError, match="is not valid YAML/JSON"):
        read_mapping(tmp_path / "a.yaml", "load profile")


def test_yaml_tags_that_build_python_objects_are_refused(tmp_path: Path) -> None:
    # the safe loader only: a file must never run code or build arbitrary objects
    (tmp_path / "a.yaml").write_text("users: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigurationError, match="is not valid YAML/JSON"):
        read_mapping(tmp_path / "a.yaml", "load profile")


@pytest.mark.parametrize(("text", "received"), [("- 1\n- 2\n", "list"), ("just words\n", "str"), ("", "NoneType")])
def test_the_top_level_must_be_a_mapping(tmp_path: Path, text: str, received: str) -> None:
    (tmp_path / "a.yaml").write_text(text)
    with pytest.raises(ConfigurationError, match=rf"Expected a mapping in load profile '.*', received {received}"):
        read_mapping(tmp_path / "a.yaml", "load profile")


def test_the_top_level_must_be_a_list(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: ml.c5.xlarge\n")
    with pytest.raises(ConfigurationError, match=r"Expected a list in instance catalog '.*', received dict"):
        read_list(tmp_path / "a.yaml", "instance catalog")
    (tmp_path / "b.yaml").write_text("- name: ml.c5.xlarge\n")
    assert read_list(tmp_path / "b.yaml", "instance catalog") == [{"name": "ml.c5.xlarge"}]
