"""Plain-tensor wrappers around transformers models (imports torch: load only on first use).

Their forward takes tensors in a fixed order and returns one tensor, which is what TorchScript
tracing, ONNX export and Triton's positional INPUT__0 / OUTPUT__0 naming want.
"""

from __future__ import annotations

import torch

__all__ = ["BertEncoder", "BertEncoderWithTokenTypes", "ImageClassifier"]


class ImageClassifier(torch.nn.Module):
    """Pixel values (N, 3, H, W) in, logits (N, classes) out."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.inner(pixel_values=pixel_values, return_dict=False)[0]  # type: ignore[no-any-return]


class BertEncoder(torch.nn.Module):
    """Token ids and attention mask (N, L) in, last hidden state (N, L, hidden) out."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.inner(  # type: ignore[no-any-return]
            input_ids=input_ids, attention_mask=attention_mask, return_dict=False
        )[0]


class BertEncoderWithTokenTypes(torch.nn.Module):
    """As :class:`BertEncoder` with segment ids (the three inputs the reference gave trtexec).

    A separate class, not an optional argument: tracing and ONNX export need a fixed arity.
    """

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return self.inner(  # type: ignore[no-any-return]
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=False,
        )[0]
