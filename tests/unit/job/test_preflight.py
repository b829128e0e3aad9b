"""The pre-flight's checks, each failing with the problem and its fix, and expected errors reported as one message
with exit status 2 (HYDRA_FULL_ERROR=1 keeps the traceback)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from facequant.config.running import MlflowConfig
from facequant.config.sections import ConfigError
from facequant.data.lfw import DatasetError
from facequant.job.expected import reported
from facequant.job.preflight import check_cache_dir, preflight
from facequant.job.sweep import check_ray
from facequant.report import Rule, compare
from helpers import make_lfw, settings


def test_a_cache_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"cache_dir=.*cache is not a folder; give a writable folder"):
        check_cache_dir(tmp_path / "cache")
    with pytest.raises(ConfigError, match=r"cache_dir=.*cache/sub is not writable"):
        check_cache_dir(tmp_path / "cache" / "sub")  # below a file


def test_a_cache_dir_that_cannot_be_written_is_refused():
    # sysfs refuses new files even to root, as a read-only file system does
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no /sys/kernel: no folder that refuses writes to every user")
    with pytest.raises(ConfigError, match=r"cache_dir=/sys/kernel is not writable \(.*\); .*FACEQUANT_CACHE"):
        check_cache_dir(Path("/sys/kernel"))


def test_a_writable_cache_dir_is_made_and_left_empty(tmp_path):
    check_cache_dir(tmp_path / "new" / "cache")
    assert list((tmp_path / "new" / "cache").iterdir()) == []


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_ray_address_nothing_answers_at_names_the_fix(scheme):
    port = closed_port()
    hint = rf"no Ray cluster answers at 127.0.0.1:{port}.*ray start --head.*RAY_ADDRESS"
    with pytest.raises(ConfigError, match=hint):
        check_ray(f"{scheme}127.0.0.1:{port}")


def test_a_stale_cluster_file_is_found_and_refused(tmp_path, monkeypatch):
    # what a killed head leaves behind: address=auto reads it, and ray.init would retry it for minutes
    port = closed_port()
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=rf"at 127.0.0.1:{port} \(address=auto resolves to it\).*ray start --head"):
        check_ray("auto")


def test_a_ray_address_that_answers_passes():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_ray(f"127.0.0.1:{server.getsockname()[1]}")
    check_ray(None)  # ray.init starts a local Ray


def test_a_calibration_pool_too_small_fails_before_the_store_is_opened(tmp_path):
    job = settings(
        "model=msceleb128",
        f"dataset.root={make_lfw(tmp_path / 'lfw')}",
        "dataset.folds=1",
        "quant=static",
        "calibration.num_samples=100",
        f"cache_dir={tmp_path / 'cache'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    )
    with pytest.raises(DatasetError, match=r"calibration.num_samples=100 but only 2 held-out images"):
        preflight([job])
    assert not (tmp_path / "mlflow.db").exists()


def test_an_expected_error_is_one_message_and_status_2(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as stop, reported():
        raise DatasetError("LFW not found: give dataset.root")
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: LFW not found: give dataset.root\n"
    with pytest.raises(ZeroDivisionError), reported():  # a defect keeps its traceback
        raise ZeroDivisionError
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(DatasetError), reported():
        raise DatasetError("kept whole for the trace")


def test_compare_refuses_an_out_that_is_a_file_before_reading_runs(tmp_path):
    (tmp_path / "report.md").write_text("")
    uri = MlflowConfig(tracking_uri="http://127.0.0.1:9")  # never asked: the check comes first
    for out in (tmp_path / "report.md", tmp_path / "report.md" / "sub"):
        with pytest.raises(ConfigError, match=r"report.md is a file; give a folder for the report \(out=<folder>\)"):
            compare(uri, None, None, out, Rule(0.005, 0.01))
