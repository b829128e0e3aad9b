"""Helpers shared by every test tier, importable as `from helpers import ...` (pyproject puts tests/ on sys.path).

- paths: where the repository, the real LFW copy and the real weights are;
- entrypoints: src/main.py and src/compare.py in subprocesses, and the runs they leave;
- records: run records built by hand, for the report, the release gate and the exclusion search;
- stores: MLflow stores, runs logged as jobs log them, and a job's data sets;
- config: settings composed from conf/ as src/main.py composes them;
- onnx_models: tiny ONNX models built by hand;
- images: photos drawn with Pillow, folders of identities and tiny LFW copies;
- torch_models: full-size InceptionResnetV1 checkpoints (`from helpers.torch_models import ...`: imports torch);
- services: PostgreSQL, an MLflow server and a Ray head on 127.0.0.1 (cluster tier).
"""

from .config import settings
from .entrypoints import (
    QUICK_BENCHMARK,
    all_runs,
    job_runs,
    logged_model,
    logged_model_uri,
    logged_scores,
    main,
    main_overrides,
    parents,
    run_compare,
    share_aligned,
)
from .images import EXIF_ORIENTATION, box_iou, make_lfw, people_tree, photo, truncated_jpeg, write_pairs
from .onnx_models import (
    SENSITIVE,
    SPEC,
    colour_model,
    nhwc_bgr,
    onnx_config,
    synthetic,
    tiny_model,
    unrunnable_model,
)
from .paths import LFW_ROOT, REPO, WEIGHTS_DIR, absent, has_lfw, need_lfw, need_weights
from .records import (
    ARCHITECTURE,
    DOCUMENTED_METRICS,
    FP32_ACCURACY,
    FP32_LATENCY,
    FP32_SIZE,
    FP32_TAR,
    INPUT,
    cells,
    fp32,
    paired,
    record,
    static,
    timing,
)
from .stores import CALIBRATION_DIGEST, EVALUATION_DIGEST, create_store, fake_run, log_data_sets

__all__ = [
    "ARCHITECTURE",
    "CALIBRATION_DIGEST",
    "DOCUMENTED_METRICS",
    "EXIF_ORIENTATION",
    "box_iou",
    "EVALUATION_DIGEST",
    "FP32_ACCURACY",
    "FP32_LATENCY",
    "FP32_SIZE",
    "FP32_TAR",
    "INPUT",
    "LFW_ROOT",
    "QUICK_BENCHMARK",
    "REPO",
    "SENSITIVE",
    "SPEC",
    "WEIGHTS_DIR",
    "absent",
    "all_runs",
    "cells",
    "colour_model",
    "create_store",
    "fake_run",
    "fp32",
    "has_lfw",
    "job_runs",
    "log_data_sets",
    "logged_model",
    "logged_model_uri",
    "logged_scores",
    "main",
    "main_overrides",
    "make_lfw",
    "need_lfw",
    "need_weights",
    "nhwc_bgr",
    "onnx_config",
    "paired",
    "parents",
    "people_tree",
    "photo",
    "record",
    "run_compare",
    "settings",
    "share_aligned",
    "static",
    "synthetic",
    "tiny_model",
    "truncated_jpeg",
    "timing",
    "unrunnable_model",
    "write_pairs",
]
