""".ci/run's clean-up stops the process groups the tests recorded, and leaves alone a process it did not start,
even one named like the tests' services."""

import os
import re
import subprocess
import time

from helpers import REPO


def alive(pid: int) -> bool:
    """Whether pid runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_clean_up_stops_recorded_groups_only(tmp_path):
    script = (REPO / ".ci" / "run").read_text()
    cleanup = re.search(r"^cleanup\(\) \{\n.*?^\}\n", script, re.MULTILINE | re.DOTALL)
    assert cleanup is not None
    name = "mlflow server --backend-store-uri postgresql facequant-pg-"  # what the old clean-up killed by name
    sleep = ["bash", "-c", f'exec -a "{name}" sleep 60']
    recorded = subprocess.Popen(sleep, start_new_session=True)
    bystander = subprocess.Popen(sleep, start_new_session=True)  # a user's own server, say
    groups = tmp_path / "groups"
    groups.mkdir()
    (groups / str(recorded.pid)).write_text("TERM")
    try:
        run = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{cleanup[0]}\ntrap cleanup EXIT\n(exit 3)"],
            env=os.environ | {"FACEQUANT_SERVICE_GROUPS": str(groups)},
            capture_output=True,
            text=True,
        )
        assert run.returncode == 3, run.stderr  # CI's own exit status is kept
        deadline = time.monotonic() + 10
        while alive(recorded.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(recorded.pid) and alive(bystander.pid)
        assert not groups.exists()
    finally:
        for proc in (recorded, bystander):
            proc.kill()
            proc.wait()
