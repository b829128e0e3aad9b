"""scripts/ui_screenshot.py end to end: a real `mlflow ui` and a real headless Chromium on a small sweep store.

Skips with the reason where Playwright or a system Chromium is missing; Playwright cannot download its own offline.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from PIL import Image

from facequant.config.running import MlflowConfig
from facequant.schema import Metric
from facequant.tracking import job_run, log_metrics, sweep_run
from helpers import REPO, log_data_sets

SCRIPT = REPO / "scripts" / "ui_screenshot.py"
COMPARED = (Metric.ACCURACY, Metric.ACCURACY_DROP, Metric.SPEEDUP, Metric.SIZE_MIB)


def load_script():
    pytest.importorskip("playwright", reason="the screenshot drives Chromium with Playwright: pip install playwright")
    spec = importlib.util.spec_from_file_location("ui_screenshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sweep_store(uri: str) -> None:
    """One sweep logged as facequant logs it: a parent with two child variants, their compared metrics, and their
    evaluation and calibration sets as dataset inputs."""
    cfg = MlflowConfig(tracking_uri=uri, experiment="facequant")
    variants = {"fp32": (0.9927, 0.0, 1.0, 86.98), "int8_static_qdq_minmax_500": (0.9923, 0.0004, 1.77, 22.57)}
    with sweep_run(cfg, "quant=fp32,static", "multirun/x", jobs=len(variants), dropped=0) as parent:
        for name, values in variants.items():
            with job_run(cfg, name, {}, parent):
                log_metrics(dict(zip(COMPARED, values, strict=True)))
                log_data_sets(static=name != "fp32")


def test_screenshot_shows_the_expanded_sweep_and_its_data_sets(tmp_path, monkeypatch):
    script = load_script()
    if script.find_chromium() is None:
        pytest.skip(f"no system Chromium ({', '.join(script.CHROMIUM_NAMES)}): apt-get install chromium")
    monkeypatch.chdir(tmp_path)  # any artifacts go to ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_store(uri)
    out = tmp_path / "runs.png"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tracking-uri", uri, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the parent and both children are on the page, each row's Dataset cell filled as its dataset inputs say
    assert "1 parent runs expanded, 3 rows, Dataset filled in 3," in done.stdout
    assert "metrics accuracy, accuracy_drop, speedup, size_mib" in done.stdout
    assert "tar_far_1e-3" in done.stderr  # asked for by default, not logged here: named as not shown
    with Image.open(out) as image:
        assert image.size == (1600, 900)
        assert len(image.getcolors(1 << 16) or ()) > 50  # a rendered table, not a blank page
    assert out.stat().st_size > 20_000
