"""CV sample models: the full-size shapes match the reference models; tiny ones are seeded."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from mmeperf.sample_models import resnet50, sample_model, vit_base
from tests.exporters._shared import tiny


def test_resnet50_has_resnet50s_parameter_count() -> None:
    model = resnet50()
    assert model.parameter_count == 25_557_032  # torchvision's resnet50 has the same
    assert model.inputs[0].name == "INPUT__0" and model.inputs[0].shape == (3, 224, 224)
    assert model.output_name == "OUTPUT__0" and model.output_shape == (1000,)


def test_vit_base_is_vit_base_16() -> None:
    model = vit_base()
    assert 86_000_000 < model.parameter_count < 87_000_000
    assert model.config["hidden_size"] == 768 and model.config["num_hidden_layers"] == 12


@pytest.mark.parametrize("name", ["resnet50", "vit"])
def test_tiny_models_are_deterministic_and_batch_independent(name: str) -> None:
    model = tiny(name)
    again = sample_model(name, tiny=True, seed=0)
    other = sample_model(name, tiny=True, seed=1)
    x = model.example_inputs(3, seed=4)
    out = model.predict(x)
    assert out.shape == (3, 10) and out.dtype == np.float32
    np.testing.assert_array_equal(out, again.predict(x))
    assert not np.allclose(out, other.predict(x))
    # Row i's answer does not depend on the other rows (eval mode: no batch statistics).
    np.testing.assert_allclose(model.predict({"INPUT__0": x["INPUT__0"][1:2]}), out[1:2], atol=1e-5)


def test_unknown_sample_model_lists_the_known_ones() -> None:
    from mmeperf.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="resnet50, vit, bert"):
        sample_model("alexnet")
