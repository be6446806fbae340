"""Sampler constants that torch-free code needs too (template plans, the ONNX runner)."""

# A finite "minus infinity" for masked logits: softmax gives exactly 0, and 0 * it stays 0.
MASKED_LOGIT = -1e30

__all__ = ["MASKED_LOGIT"]
