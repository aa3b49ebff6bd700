"""Sample models for the format benchmark, built from transformers configs with random weights.

CV: ResNet-50- and ViT-Base-shaped image classifiers (input ``INPUT__0``, output ``OUTPUT__0``);
NLP: BERT-base (``input_ids``, ``attention_mask``[, ``token_type_ids``] -> ``last_hidden_state``).
Each has a tiny variant for tests. Nothing is downloaded; torch and transformers load on first use.
"""

from __future__ import annotations

from mmeperf.sample_models.base import SampleModel
from mmeperf.sample_models.catalog import SAMPLE_MODELS, sample_model
from mmeperf.sample_models.text import bert_base
from mmeperf.sample_models.vision import resnet50, vit_base

__all__ = ["SAMPLE_MODELS", "SampleModel", "bert_base", "resnet50", "sample_model", "vit_base"]
