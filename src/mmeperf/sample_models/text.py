"""NLP sample model: BERT-base from ``BertConfig`` with random weights, sequence length 128.

Inputs ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` when asked), int64, padded to
the sequence length; output ``last_hidden_state`` [seq_len, hidden] float32.
"""

from __future__ import annotations

from typing import Any

from mmeperf._deps import require
from mmeperf.sample_models.base import SampleInput, SampleModel, seeded

__all__ = ["bert_base"]


def bert_base(
    *, tiny: bool = False, seed: int = 0, seq_len: int | None = None, token_type_ids: bool = False
) -> SampleModel:
    """BERT-base (12 layers, hidden 768, 109M parameters with the pooler; 108M without it).

    ``tiny``: 2 layers of hidden 32, vocabulary 1000, sequence length 16 unless ``seq_len``.
    """
    require("transformers", what="The sample models", extra="torch")
    from transformers import BertConfig, BertModel

    from mmeperf.sample_models._modules import BertEncoder, BertEncoderWithTokenTypes

    # BertConfig's defaults are bert-base-uncased's shape (12 x 768, vocabulary 30522).
    options: dict[str, Any] = {"attn_implementation": "eager"}
    length = seq_len or 128
    if tiny:
        options |= {
            "vocab_size": 1000,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 128,
        }
        length = seq_len or 16
    config = BertConfig(**options)
    if not 1 <= length <= config.max_position_embeddings:
        from mmeperf.errors import ConfigurationError

        raise ConfigurationError(
            f"seq_len must be in 1..{config.max_position_embeddings}, got {length}"
        )
    with seeded(seed):
        encoder = BertModel(config, add_pooling_layer=False)
        wrapper = BertEncoderWithTokenTypes if token_type_ids else BertEncoder
        module = wrapper(encoder).eval()
    inputs = [
        SampleInput("input_ids", (length,), "int64", high=config.vocab_size),
        SampleInput("attention_mask", (length,), "int64", high=2),
    ]
    if token_type_ids:
        inputs.append(
            SampleInput("token_type_ids", (length,), "int64", high=config.type_vocab_size)
        )
    return SampleModel(
        name="bert-tiny" if tiny else "bert",
        task="nlp",
        module=module,
        inputs=tuple(inputs),
        output_name="last_hidden_state",
        output_shape=(length, config.hidden_size),
        seed=seed,
        config={
            "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers,
            "vocab_size": config.vocab_size,
            "seq_len": length,
        },
    )
