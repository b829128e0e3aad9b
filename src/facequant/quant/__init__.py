"""INT8 variants: ONNX Runtime quantization, per-tensor sensitivity, and the exclusion search."""
