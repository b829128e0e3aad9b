"""Running a model file: ONNX Runtime and OpenVINO sessions, paired benchmarks, kernel agreement."""
