"""The first command works or says why at once: a missing dataset, missing weights, a bad cache_dir or a Ray
address nothing answers at fail the whole command in the pre-flight, with one message naming the fix, exit status 2,
no traceback and no run in the store; no face is aligned. "No internet" is a proxy on a closed port, so these hold
on a machine that has it too."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, all_runs, need_lfw, run_compare

CLOSED = "http://127.0.0.1:9"  # nothing listens there: every download fails at once, as offline


def first_command(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """src/main.py as a new user runs it, from workdir, with nothing but the defaults, the internet cut off, and
    the caches (facequant's, torch's) inside workdir."""
    environ = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "ray_address")}
    environ |= {name: CLOSED for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    environ |= {"FACEQUANT_CACHE": str(workdir / "cache"), "TORCH_HOME": str(workdir / "torch"), **env}
    cmd = [sys.executable, str(REPO / "src" / "main.py"), *args]
    return subprocess.run(cmd, cwd=workdir, env=environ, capture_output=True, text=True, timeout=600)


def assert_refused(proc: subprocess.CompletedProcess, workdir: Path, *fixes: str) -> str:
    """Exit status 2, one error line naming each fix, no traceback, no run, no aligned face; the message."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for fix in fixes:
        assert fix in errors[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (workdir / "mlflow.db").exists() or all_runs(workdir).empty
    assert not (workdir / "cache" / "aligned").exists()
    return errors[0]


def test_no_lfw_and_no_internet_names_both_fixes(tmp_path):
    proc = first_command(tmp_path, "-m", "quant=dynamic,static")
    message = assert_refused(
        proc, tmp_path, "dataset.root=<the folder that holds pairs.txt", "run once on a machine with internet"
    )
    assert f"LFW is not under {tmp_path / 'data' / 'lfw'}" in message
    assert not (tmp_path / "data" / "lfw" / "pairs.txt").exists()


@pytest.mark.parametrize("multirun", [True, False])
def test_lfw_present_and_weights_unreachable_fails_before_alignment(tmp_path, multirun):
    lfw = need_lfw()
    flags = ["-m"] if multirun else []
    proc = first_command(tmp_path, *flags, "quant=static", f"dataset.root={lfw}")
    assert_refused(proc, tmp_path, "cannot download the vggface2 weights", "model=msceleb128")


def test_a_cache_dir_that_is_a_file_is_refused_before_any_run(tmp_path):
    (tmp_path / "cache-file").write_text("")
    proc = first_command(tmp_path, "-m", "quant=fp32,dynamic", f"cache_dir={tmp_path / 'cache-file'}")
    assert_refused(proc, tmp_path, f"cache_dir={tmp_path / 'cache-file'} is not a folder", "cache_dir=<folder>")


def test_a_cache_dir_that_cannot_be_written_is_refused_before_any_run(tmp_path):
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no /sys/kernel: no folder that refuses writes to every user")
    proc = first_command(tmp_path, "-m", "quant=fp32", "cache_dir=/sys/kernel")
    assert_refused(proc, tmp_path, "cache_dir=/sys/kernel is not writable")


def test_full_error_keeps_the_traceback(tmp_path):
    (tmp_path / "cache-file").write_text("")
    proc = first_command(tmp_path, "quant=fp32", f"cache_dir={tmp_path / 'cache-file'}", HYDRA_FULL_ERROR="1")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError: cache_dir=" in proc.stderr


def test_ray_launcher_with_a_dead_head_is_refused_at_once(tmp_path):
    """What the cluster test left behind once: Ray's ray_current_cluster naming a head that is gone. ray.init
    would retry it for about 14 minutes; the pre-flight names the fix."""
    with socket.socket() as s:  # a port nothing listens on once released
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    proc = first_command(
        tmp_path,
        "-m",
        "quant=fp32",
        "hydra/launcher=ray",
        "mlflow.tracking_uri=http://127.0.0.1:9",  # a server is required, and never reached: Ray is checked first
        RAY_TMPDIR=str(tmp_path),
    )
    assert_refused(proc, tmp_path, f"no Ray cluster answers at 127.0.0.1:{port}", "ray start --head", "RAY_ADDRESS")


def test_compare_out_a_file_is_one_message(tmp_path):
    (tmp_path / "report.md").write_text("")
    proc = run_compare(tmp_path, f"out={tmp_path / 'report.md'}")
    assert proc.returncode == 1, proc.stderr[-3000:]  # 2 is the release gate's "failed the rule"
    out = tmp_path / "report.md"
    message = f"error: out={out}: {out} is a file; give a folder for the report (out=<folder>) or leave out"
    assert proc.stderr.strip() == message
