"""CV sample models: ResNet-50- and ViT-Base-shaped image classifiers with random weights.

Built from transformers' ``ResNetConfig`` / ``ViTConfig`` (the defaults are ResNet-50 and
ViT-Base/16 at 224x224, 1000 classes); input ``INPUT__0`` NCHW float32, output ``OUTPUT__0`` logits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmeperf._deps import require
from mmeperf.sample_models.base import SampleInput, SampleModel, seeded

if TYPE_CHECKING:
    import torch

__all__ = ["resnet50", "vit_base"]


def _cv_sample(
    name: str,
    module: torch.nn.Module,
    image_size: int,
    num_labels: int,
    seed: int,
    config: dict[str, object],
) -> SampleModel:
    return SampleModel(
        name=name,
        task="cv",
        module=module,
        inputs=(SampleInput("INPUT__0", (3, image_size, image_size), "float32"),),
        output_name="OUTPUT__0",
        output_shape=(num_labels,),
        seed=seed,
        config=config,
    )


def resnet50(*, tiny: bool = False, seed: int = 0) -> SampleModel:
    """ResNet-50 (25.6M parameters, 3x224x224 -> 1000); ``tiny``: 2 small stages, 3x64x64 -> 10."""
    require("transformers", what="The sample models", extra="torch")
    from transformers import ResNetConfig, ResNetForImageClassification

    from mmeperf.sample_models._modules import ImageClassifier

    # ResNetConfig's defaults are ResNet-50: bottleneck stages [3, 4, 6, 3] of [256 .. 2048].
    options: dict[str, Any] = {"num_labels": 1000}
    image_size = 224
    if tiny:
        options = {
            "embedding_size": 8,
            "hidden_sizes": [16, 32],
            "depths": [1, 1],
            "layer_type": "bottleneck",
            "num_labels": 10,
        }
        image_size = 64
    config = ResNetConfig(**options)
    with seeded(seed):
        module = ImageClassifier(ResNetForImageClassification(config)).eval()
    return _cv_sample(
        "resnet50-tiny" if tiny else "resnet50",
        module,
        image_size,
        int(options["num_labels"]),
        seed,
        {"hidden_sizes": list(config.hidden_sizes or []), "depths": list(config.depths or [])},
    )


def vit_base(*, tiny: bool = False, seed: int = 0) -> SampleModel:
    """ViT-Base/16 (86M parameters, 3x224x224 -> 1000); ``tiny``: 2 layers of 32, 3x32x32 -> 10."""
    require("transformers", what="The sample models", extra="torch")
    from transformers import ViTConfig, ViTForImageClassification

    from mmeperf.sample_models._modules import ImageClassifier

    # ViTConfig's defaults are ViT-Base/16 at 224x224. Eager attention exports identically to
    # TorchScript and ONNX (SDPA's kernels differ per backend).
    options: dict[str, Any] = {"num_labels": 1000, "attn_implementation": "eager"}
    image_size = 224
    if tiny:
        image_size = 32
        options |= {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "image_size": image_size,
            "patch_size": 8,
            "num_labels": 10,
        }
    config = ViTConfig(**options)
    with seeded(seed):
        module = ImageClassifier(ViTForImageClassification(config)).eval()
    return _cv_sample(
        "vit-tiny" if tiny else "vit",
        module,
        image_size,
        int(options["num_labels"]),
        seed,
        {"hidden_size": config.hidden_size, "num_hidden_layers": config.num_hidden_layers},
    )
