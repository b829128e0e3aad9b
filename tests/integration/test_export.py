"""ONNX export of the real model: parity with PyTorch on real faces, dynamic batch, metadata."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from facequant.models.export import INPUT, OPSET, OUTPUT, export_onnx, read_metadata
from facequant.onnxmodel import InputSpec
from facequant.runtime.sessions import embed, preprocess


def test_parity_and_metadata(fp32_onnx, msceleb128):
    path, diff = fp32_onnx
    assert diff < 1e-4
    meta = read_metadata(path)
    assert meta["facequant.embedding_size"] == "128"
    assert meta["facequant.preprocess"] == "per_image"
    assert meta["facequant.source"].startswith("Sandberg FaceNet 20170512-110547")
    assert meta["facequant.weights_sha256"] == msceleb128[1].weights_sha256
    assert meta["facequant.architecture"] == "facenet-pytorch InceptionResnetV1"
    assert meta["facequant.input"].startswith("float32 NCHW RGB 160x160")


def test_graph_io_and_opset(fp32_onnx):
    import onnx

    model = onnx.load(str(fp32_onnx[0]), load_external_data=False)
    assert [i.name for i in model.graph.input] == [INPUT] and [o.name for o in model.graph.output] == [OUTPUT]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET


def test_any_batch_size_gives_unit_embeddings(fp32_onnx, aligned_sample):
    emb = embed(fp32_onnx[0], aligned_sample.faces[:5], InputSpec("per_image"), batch_size=3)
    assert emb.shape == (5, 128)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_cached_export_is_not_redone(fp32_onnx, msceleb128, aligned_sample):
    path, diff = fp32_onnx
    before = path.stat().st_mtime_ns
    net, info = msceleb128
    again = export_onnx(net, info, path, preprocess(aligned_sample.faces[:2], InputSpec(info.preprocess)))
    assert again == diff and path.stat().st_mtime_ns == before


def test_a_cached_export_is_found_without_importing_torch(fp32_onnx, msceleb128):
    """What a job whose model is cached does: the weights described from the config's head size, the export's
    record checked; torch's import (4-5 s of a job's start) is left out."""
    path, diff = fp32_onnx
    weights_dir = str(Path(msceleb128[1].weights_path).parent)
    code = f"""
import sys
from pathlib import Path
from facequant.config.sections import ModelConfig
from facequant.models.backbones import describe, fetch_weights
from facequant.models.export import cached_parity
cfg = ModelConfig(name="msceleb128", preprocess="per_image", weights_dir={weights_dir!r}, embedding_size=128)
print(cached_parity(Path({str(path)!r}), describe(cfg, *fetch_weights(cfg), 128)))
print(sorted(m for m in ("torch", "torchvision", "facenet_pytorch") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert float(out[0]) == diff and out[1] == "[]"


def test_truncated_export_is_detected_and_redone(msceleb128, aligned_sample, tmp_path, caplog):
    net, info = msceleb128
    sample = preprocess(aligned_sample.faces[:2], InputSpec(info.preprocess))
    path = tmp_path / "fp32.onnx"
    export_onnx(net, info, path, sample)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 10])
    export_onnx(net, info, path, sample)
    assert path.stat().st_size == size and "differs from the recorded" in caplog.text
