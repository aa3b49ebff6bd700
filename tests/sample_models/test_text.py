"""NLP sample model: BERT-base from a config, padded sequences, seeded."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from mmeperf.errors import ConfigurationError
from mmeperf.sample_models import bert_base
from tests.exporters._shared import tiny


def test_bert_base_shape() -> None:
    model = bert_base()
    assert model.parameter_count == 108_891_648  # bert-base-uncased without its pooler
    assert model.input_names == ["input_ids", "attention_mask"]
    assert model.inputs[0].shape == (128,) and model.output_shape == (128, 768)


def test_examples_are_padded_token_batches() -> None:
    model = tiny("bert")
    x = model.example_inputs(4, seed=2)
    assert x["input_ids"].dtype == np.int64 and x["input_ids"].shape == (4, 16)
    assert x["input_ids"].max() < 1000
    mask = x["attention_mask"]
    assert mask[:, 0].all()  # at least one real token per row
    assert (np.diff(mask, axis=1) <= 0).all()  # ones then zeros: padding at the end
    out = model.predict(x)
    assert out.shape == (4, 16, 32) and np.isfinite(out).all()


def test_token_type_ids_variant_takes_three_inputs() -> None:
    model = bert_base(tiny=True, token_type_ids=True, seq_len=8)
    assert model.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    assert model.predict(model.example_inputs(2)).shape == (2, 8, 32)


def test_sequence_length_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="seq_len"):
        bert_base(tiny=True, seq_len=1000)
