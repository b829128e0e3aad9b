"""Backbones and their weights, converted or exported to an ONNX file."""
