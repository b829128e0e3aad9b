"""Time the full 6000-pair LFW sweep quant=fp32,dynamic,static, cold then warm, and INT8's speed-up.

Cold starts from an empty cache (only the converted weights are reused); warm reuses the aligned faces alone.

Prints each job's stage times (from its MLflow run), the wall time and peak RSS of each sweep, and the
batch-1 latency of static INT8 against FP32 on 1 and 2 threads. Targets on a 2-core machine: cold <= 7 min,
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
        f"benchmark.threads={args.threads}",
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
    print(f"  {'variant':30s}" + "".join(f"{s:>14s}" for s in STAGE_TIME) + f"{'accuracy':>10s}")
    for _, run in runs.iterrows():
        times = "".join(f"{run.get(f'metrics.{m}', float('nan')):13.1f}s" for m in STAGE_TIME.values())
        print(f"  {run[f'tags.{Tag.RUN_NAME}']:30s}{times}{run[f'metrics.{Metric.ACCURACY}']:10.4f}")


def speedups(cache: Path, lfw_root: str) -> None:
    """Batch-1 latency of FP32 and static INT8 from the sweep's cache, on real faces, 1 and 2 threads."""
    from facequant.align import align_images
    from facequant.benchmark import measure
    from facequant.config import AlignConfig, BenchmarkConfig, DatasetConfig
    from facequant.data import load_lfw, pair_images
    from facequant.layout import CacheLayout
    from facequant.runtime import preprocess

    lfw = load_lfw(DatasetConfig(root=lfw_root))
    names = pair_images(lfw.pairs)[:32]
    inputs = preprocess(align_images(lfw.images_dir, names, AlignConfig(), CacheLayout(cache)).faces, "per_image")
    (model_dir,) = (cache / "onnx").iterdir()
    static = next(p for p in model_dir.glob("int8_static_qdq-*.onnx"))
    for threads in (1, 2):
        cfg = BenchmarkConfig(threads=threads, warmup=20, iterations=200, throughput_iterations=5)
        fp32 = measure(model_dir / "fp32.onnx", inputs, cfg)
        int8 = measure(static, inputs, cfg)
        p50, ips = Metric.LATENCY_P50_MS, Metric.THROUGHPUT_IPS
        print(
            f"  threads={threads}: fp32 p50 {fp32[p50]:.2f} ms, static int8 p50 {int8[p50]:.2f} ms, speed-up "
            f"{fp32[p50] / int8[p50]:.2f}x; batch-32 throughput {fp32[ips]:.0f} -> {int8[ips]:.0f} img/s"
        )


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
    print("static INT8 vs FP32, batch 1:")
    speedups(warm, args.lfw)
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
