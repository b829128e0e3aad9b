"""Time the full 6000-pair LFW sweep quant=fp32,dynamic,static, cold then warm, against its inference floor.

Cold starts from an empty cache (only the converted weights are reused); warm reuses the aligned faces alone.

Prints each sweep's wall time and peak RSS, each job's stage times and its paired batch-1 speed-up over FP32 with
the interval (from its MLflow run), and the floor: one pass of each variant over the evaluated faces at the best
throughput its benchmark measured (images / max over thread counts of throughput_ips_tN), summed over the jobs. The
gap is wall / floor; the aims on 2 idle cores: cold <= 1.5x, warm <= 1.2x. --folds 1 is a quick check
(600 pairs) of the script itself, whose fixed costs weigh far more against its small floor.

    python benchmarks/sweep_time.py --lfw ../shared/data/lfw
    python benchmarks/sweep_time.py --folds 1      # a few minutes: the same table on the first fold
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
    ] + ([f"dataset.folds={args.folds}"] if args.folds else [])
    start = time.perf_counter()
    with open(workdir / "sweep.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SweepFailed(f"sweep failed; its log is kept at {workdir / 'sweep.log'}")
    return wall, usage.ru_maxrss / 2**20


def job_runs(workdir: Path, since_ms: int):
    """The job runs (not the sweep's parent) started since since_ms, oldest first."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = mlflow.search_runs(
        experiment_names=["facequant"],
        filter_string=f"attributes.start_time >= {since_ms}",
        order_by=["attributes.start_time ASC"],
    )
    if f"tags.{Tag.SWEEP}" in runs:  # the sweep's parent run has no stages
        runs = runs[runs[f"tags.{Tag.SWEEP}"].isna()]
    return runs


def floor_seconds(run) -> float:
    """One pass over the job's evaluated faces at the best throughput its benchmark measured at any thread count."""
    prefix = f"metrics.{Metric.THROUGHPUT_IPS}_t"  # at_threads(THROUGHPUT_IPS, N): throughput_ips_tN
    best = max((value for column, value in run.items() if column.startswith(prefix) and value == value), default=None)
    return run[f"metrics.{Metric.N_IMAGES}"] / best if best else float("nan")  # nan: the job never benchmarked


def stage_table(runs) -> float:
    """Print each job's stage times, floor and speed-up; return the sweep's floor in seconds."""
    head = "".join(f"{s:>14s}" for s in STAGE_TIME)
    print(f"  {'variant':30s}{head}{'floor':>10s}{'accuracy':>10s}  speed-up [95% CI]")
    total = 0.0
    for _, run in runs.iterrows():
        seconds = (run.get(f"metrics.{m}", float("nan")) for m in STAGE_TIME.values())
        times = "".join(f"{t:13.1f}s" if t == t else f"{'-':>14s}" for t in seconds)  # '-': the job has no such stage
        low, high = (run.get(f"metrics.{m}", float("nan")) for m in (Metric.SPEEDUP_CI_LOW, Metric.SPEEDUP_CI_HIGH))
        speed = f"{run[f'metrics.{Metric.SPEEDUP}']:.2f}x [{low:.2f}, {high:.2f}]"
        floor = floor_seconds(run)
        total += floor if floor == floor else 0.0
        accuracy = run[f"metrics.{Metric.ACCURACY}"]
        print(f"  {run[f'tags.{Tag.RUN_NAME}']:30s}{times}{floor:9.1f}s{accuracy:10.4f}  {speed}")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw"))
    parser.add_argument("--weights", default=str(Path.home() / ".cache" / "facequant" / "weights"))
    parser.add_argument("--threads", type=int, default=2, help="benchmark.threads of the sweep")
    parser.add_argument("--folds", type=int, default=None, help="dataset.folds: 1 for a quick check (default all)")
    args = absolute(parser.parse_args())
    workdir = Path(tempfile.mkdtemp(prefix="facequant-bench-"))
    cold, warm = workdir / "cold-cache", workdir / "warm-cache"
    warm.mkdir()
    try:
        for phase, cache in (("cold", cold), ("warm", warm)):
            if phase == "warm":  # only the aligned faces are reused: models, scores and baselines are rebuilt
                # hard links, not a symlink: the cache refuses a path that resolves outside cache_dir
                shutil.copytree(cold / "aligned", warm / "aligned", copy_function=os.link)
            since = int(time.time() * 1000)
            wall, rss = sweep(workdir, cache, args)
            print(f"{phase}: wall {wall:.0f} s ({wall / 60:.2f} min), peak RSS {rss:.2f} GiB")
            floor = stage_table(job_runs(workdir, since))
            print(
                f"{phase}: floor {floor:.0f} s (one pass per variant at its best throughput), "
                f"wall / floor {wall / floor:.2f}x"
            )
    except SweepFailed as exc:
        sys.exit(str(exc))
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
