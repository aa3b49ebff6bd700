"""Traffic: routing, payload encoding once, the request table file and the sampler."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmeperf.backends.bodies import CSV, JSON, NPY, encode_request
from mmeperf.errors import ConfigurationError
from mmeperf.load.traffic import RequestSampler, RequestTable, Traffic, zipf_weights


def _churn_like() -> pd.DataFrame:
    return pd.DataFrame(
        {"CustomerID": [1, 2, 3], "Churn?": ["True.", "False.", "True."], "State": ["CA", "NY", "CA"],
         "a": [1.5, 2.0, 3.25], "b": [0, 1, 2]}
    )


def test_model_column_routes_and_is_dropped_with_the_label() -> None:
    t = Traffic.from_frame(_churn_like(), model_column="State", model_template="churn-xgb-{}.tar.gz",
                           label_column="Churn?", drop_columns=["CustomerID"])
    table = t.build()
    assert table.bodies == [b"1.5,0", b"2.0,1", b"3.25,2"]
    assert table.models == ["churn-xgb-CA.tar.gz", "churn-xgb-NY.tar.gz"]
    assert table.model_counts() == {"churn-xgb-CA.tar.gz": 2, "churn-xgb-NY.tar.gz": 1}
    assert table.content_types == ["text/csv"]


def test_csv_file_default_template(tmp_path: Path) -> None:
    _churn_like().to_csv(tmp_path / "test.csv", index=False)
    table = Traffic(data=str(tmp_path / "test.csv"), model_column="State", drop_columns=["CustomerID", "Churn?"]).build()
    assert table.models == ["CA.tar.gz", "NY.tar.gz"]


def test_table_file_round_trip(tmp_path: Path) -> None:
    table = RequestTable([b"\x00\x01", b"", b"abc"], ["application/x-npy"], ["m1", "m2"], weights=[1.0, 3.0], accept="text/csv")
    loaded = RequestTable.load(table.save(tmp_path / "t.bin"))
    assert loaded == table


def test_distributions_uniform_zipf_weights() -> None:
    t = Traffic.from_bytes([b"x"], models=["a", "b", "c"], distribution="weights", weights={"a": 1, "c": 3})
    sampler = RequestSampler(t.build(), seed=1)
    counts = Counter(sampler.next()[0] for _ in range(8000))
    assert counts["b"] == 0 and 2.6 < counts["c"] / counts["a"] < 3.4
    assert zipf_weights(3, 1.0) == [1.0, 0.5, 1 / 3]
    zipf = RequestSampler(Traffic.from_bytes([b"x"], models=["a", "b"], distribution="zipf").build(), seed=2)
    z = Counter(zipf.next()[0] for _ in range(6000))
    assert 1.7 < z["a"] / z["b"] < 2.3


def test_numpy_rows_and_raw_files(tmp_path: Path) -> None:
    arr = np.arange(6, dtype=np.float32).reshape(3, 2)
    csv_table = Traffic.from_array(arr, models=["m"]).build()
    assert csv_table.bodies[1] == b"2.0,3.0"
    npy = Traffic.from_array(arr, models=["m"], array_encoding="npy").build()
    assert npy.content_types == ["application/x-npy"]
    assert np.load(__import__("io").BytesIO(npy.bodies[2])).tolist() == [[4.0, 5.0]]
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.json").write_bytes(b"{}")
    (tmp_path / "p" / "b.bin").write_bytes(b"\x01")
    raw = Traffic(data=str(tmp_path / "p"), models=["m"]).build()
    assert raw.bodies == [b"{}", b"\x01"] and raw.content_types == ["application/json", "application/octet-stream"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Traffic.from_frame(_churn_like(), model_column="Region").build(),
        lambda: Traffic.from_frame(_churn_like(), drop_columns=["nope"], models=["m"]).build(),
        lambda: Traffic.from_array(np.ones((2, 2))).build(),
        lambda: Traffic().build(),
        lambda: Traffic(data="/nonexistent/x.csv").build(),
        lambda: Traffic.from_bytes([b"x"], models=["a"], distribution="weights", weights=[-1.0]).build(),
    ],
)
def test_bad_traffic_is_a_configuration_error(make: object) -> None:
    with pytest.raises(ConfigurationError):
        make()  # type: ignore[operator]


def test_value_with_a_line_break_is_a_configuration_error() -> None:
    # Each CSV body must be one line aligned with its row's model; a quoted line break would
    # shift every later body onto the wrong model.
    frame = pd.DataFrame({"State": ["CA", "NY", "TX"], "note": ["a", "two\nlines", "c"], "x": [1, 2, 3]})
    with pytest.raises(ConfigurationError, match="line break"):
        Traffic.from_frame(frame, model_column="State").build()
    crlf = frame.assign(note=["a", "b", "c\r"])
    with pytest.raises(ConfigurationError, match="line break"):
        Traffic.from_frame(crlf, model_column="State").build()
    # Quoted commas are fine: still one line per row, each with its own model.
    table = Traffic.from_frame(frame.assign(note=["a", "b,c", "d"]), model_column="State").build()
    assert table.bodies == [b"a,1", b'"b,c",2', b"d,3"]
    assert [table.models[i] for i in table.row_models or []] == ["CA.tar.gz", "NY.tar.gz", "TX.tar.gz"]


def test_the_load_side_sends_what_the_encoder_writes() -> None:
    rows = np.array([[0.1, np.nan], [2.0, 3.0]], dtype=np.float32)
    for encoding, content_type in (("csv", CSV), ("json", JSON), ("npy", NPY)):
        table = Traffic.from_array(rows, models=["m"], array_encoding=encoding).build()
        assert table.bodies == [encode_request(r[None, :], content_type) for r in rows], encoding
    assert Traffic.from_array(rows, models=["m"]).build().bodies[0] == b"0.10000000149011612,"
