"""Time the full 6000-pair LFW sweep quant=fp32,dynamic,static, cold then warm, and INT8's speed-up.

Cold starts from an empty cache (only the converted weights are reused); warm reuses the aligned faces alone.

Prints each job's stage times and its paired batch-1 speed-up over FP32 with the interval (from its MLflow run),
and the wall time and peak RSS of each sweep. Targets on a 2-core machine: cold <= 7 min,
warm <= 4 min, peak RSS <= 4 GiB.

    python benchmarks/sweep_time.py --lfw ../shared/data/lfw
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from facequant.schema import STAGE_TIME, Metric, Tag

REPO = Path(__file__).resolve().parents[1]


class SweepFailed(RuntimeError):
    """A child sweep exited non-zero; its work folder is kept for the log."""


def absolute(args: argparse.Namespace) -> argparse.Namespace:
    """Resolve user paths against the caller's folder before any child runs in a temporary one."""
    return argparse.Namespace(
        **vars(args) | {"lfw": str(Path(args.lfw).resolve()), "weights": str(Path(args.weights).expanduser().resolve())}
    )


def sweep(workdir: Path, cache: Path, args: argparse.Namespace) -> tuple[float, float]:
    """Run the sweep in a child process; return (wall seconds, peak RSS GiB) of that child alone."""
    cmd = [
        sys.executable,
        str(REPO / "src" / "main.py"),
        "-m",
        "model=msceleb128",
        f"dataset.root={args.lfw}",
        "quant=fp32,dynamic,static",
        f"cache_dir={cache}",
        f"model.weights_dir={args.weights}",
        f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}",
        f"hydra.sweep.dir={workdir / 'multirun'}",
        f"benchmark.threads=[{args.threads}]",
    ]
    start = time.perf_counter()
    with open(workdir / "sweep.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SweepFailed(f"sweep failed; its log is kept at {workdir / 'sweep.log'}")
    return wall, usage.ru_maxrss / 2**20


def stage_table(workdir: Path, since_ms: int) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = mlflow.search_runs(
        experiment_names=["facequant"],
        filter_string=f"attributes.start_time >= {since_ms}",
        order_by=["attributes.start_time ASC"],
    )
    if f"tags.{Tag.SWEEP}" in runs:  # the sweep's parent run has no stages
        runs = runs[runs[f"tags.{Tag.SWEEP}"].isna()]
    print(f"  {'variant':30s}" + "".join(f"{s:>14s}" for s in STAGE_TIME) + f"{'accuracy':>10s}  speed-up [95% CI]")
    for _, run in runs.iterrows():
        times = "".join(f"{run.get(f'metrics.{m}', float('nan')):13.1f}s" for m in STAGE_TIME.values())
        low, high = (run.get(f"metrics.{m}", float("nan")) for m in (Metric.SPEEDUP_CI_LOW, Metric.SPEEDUP_CI_HIGH))
        speed = f"{run[f'metrics.{Metric.SPEEDUP}']:.2f}x [{low:.2f}, {high:.2f}]"
        print(f"  {run[f'tags.{Tag.RUN_NAME}']:30s}{times}{run[f'metrics.{Metric.ACCURACY}']:10.4f}  {speed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw"))
    parser.add_argument("--weights", default=str(Path.home() / ".cache" / "facequant" / "weights"))
    parser.add_argument("--threads", type=int, default=2, help="benchmark.threads of the sweep")
    args = absolute(parser.parse_args())
    workdir = Path(tempfile.mkdtemp(prefix="facequant-bench-"))
    cold, warm = workdir / "cold-cache", workdir / "warm-cache"
    warm.mkdir()
    try:
        for phase, cache in (("cold", cold), ("warm", warm)):
            if phase == "warm":  # only the aligned faces are reused: models, scores and baselines are rebuilt
                (warm / "aligned").symlink_to(cold / "aligned")
            since = int(time.time() * 1000)
            wall, rss = sweep(workdir, cache, args)
            print(f"{phase}: wall {wall / 60:.2f} min, peak RSS {rss:.2f} GiB")
            stage_table(workdir, since)
    except SweepFailed as exc:
        sys.exit(str(exc))
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
