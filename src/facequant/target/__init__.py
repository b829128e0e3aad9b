"""Evaluate quantized models under a target CPU's integer arithmetic (see emulate.py)."""
