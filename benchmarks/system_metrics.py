"""Does `mlflow.system_metrics=true` cost under 1% of a job's wall time? Measured in CPU time, which load on a
shared machine barely moves, instead of in wall time, which it does.

Opens facequant's own job run (`tracking.job_run`) on a scratch SQLite store, with system metrics on and off in
turn (the order flips every repeat), and holds each run open for a job-long window while the main thread sleeps.
Per pair of runs, the extra process CPU time of the run with metrics (monitor start, its sampling thread, the
final flush) over the one without is the cost; divided by the window, the share of a job's wall time it can take.
Also prints the sampling thread's own CPU time, read from its thread clock. Prints medians with their 95%
distribution-free intervals, and the CPU.

    python benchmarks/system_metrics.py --window 30 --repeats 7
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from facequant import tracking
from facequant.config.running import MlflowConfig
from facequant.evaluation.stats import Interval, median_interval, min_rounds
from facequant.machine import machine_info
from facequant.schema import Param

MONITOR_THREAD = "SystemMetricsMonitor"  # the name MLflow gives its sampling thread
SAMPLING_INTERVAL_ENV = "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"
MLFLOW_DEFAULT_INTERVAL_S = 10.0
CONFIDENCE = 0.95
BUDGET = 0.01  # what system metrics may cost: under 1% of a job's wall time


def thread_cpu(thread: threading.Thread) -> float:
    """CPU seconds one live thread has used, from its own POSIX clock."""
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def held_run(cfg: MlflowConfig, window: float) -> tuple[float, float]:
    """Open a job run, hold it `window` seconds, close it; return (process CPU s of it all, monitor thread CPU s)."""
    start = time.process_time()
    with tracking.job_run(cfg, f"system_metrics={cfg.system_metrics}", {}):
        time.sleep(window)
        monitors = [t for t in threading.enumerate() if t.name == MONITOR_THREAD]
        if cfg.system_metrics and not monitors:
            raise RuntimeError(f"no {MONITOR_THREAD!r} thread: has MLflow renamed its system-metrics thread?")
        monitor = sum(map(thread_cpu, monitors))
    return time.process_time() - start, monitor


def ms(interval: Interval) -> str:
    return f"{interval.estimate * 1e3:.1f} ms [{interval.low * 1e3:.1f}, {interval.high * 1e3:.1f}]"


def percent(interval: Interval, window: float) -> str:
    return f"{interval.estimate / window:.4%} [{interval.low / window:.4%}, {interval.high / window:.4%}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=30.0, help="seconds each run stays open: a short job")
    parser.add_argument("--repeats", type=int, default=7, help=f"pairs of runs, at least {min_rounds(CONFIDENCE)}")
    args = parser.parse_args()
    if args.repeats < min_rounds(CONFIDENCE):
        parser.error(f"--repeats must be at least {min_rounds(CONFIDENCE)} for a {CONFIDENCE:.0%} interval")
    interval = float(os.environ.get(SAMPLING_INTERVAL_ENV) or MLFLOW_DEFAULT_INTERVAL_S)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not a line per monitor start and stop
    info = machine_info()
    print(f"CPU: {info[Param.CPU_MODEL]}, {info['cpu.count']} cores, {info[Param.CPU_ISA]}")
    print(f"MLflow {info['version.mlflow']}, sampling every {interval:g} s, windows of {args.window:g} s")
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        configs = {
            on: MlflowConfig(tracking_uri=store, experiment="system-metrics", system_metrics=on) for on in (False, True)
        }
        held_run(configs[True], 0.0)  # a first run pays the store's creation and MLflow's imports: not timed
        held_run(configs[False], 0.0)
        gc.collect()  # a full collection the imports made due costs ~0.4 s, charged to whichever thread it lands in
        costs, monitors = [], []
        for repeat in range(args.repeats):
            order = (True, False) if repeat % 2 == 0 else (False, True)
            measured = {on: held_run(configs[on], args.window) for on in order}
            costs.append(measured[True][0] - measured[False][0])
            monitors.append(measured[True][1])
            print(
                f"  repeat {repeat + 1}: process CPU {measured[True][0] * 1e3:.1f} ms with, "
                f"{measured[False][0] * 1e3:.1f} ms without; sampling thread {monitors[-1] * 1e3:.1f} ms"
            )
    cost = median_interval(np.array(costs), CONFIDENCE)
    monitor = median_interval(np.array(monitors), CONFIDENCE)
    print(f"extra process CPU per {args.window:g} s run: {ms(cost)} = {percent(cost, args.window)} of its wall time")
    print(f"sampling thread CPU per run: {ms(monitor)} = {percent(monitor, args.window)}")
    verdict = "under" if cost.high / args.window < BUDGET else "NOT under"
    print(f"{verdict} {BUDGET:.0%} of the wall time at the upper end of the {CONFIDENCE:.0%} interval")


if __name__ == "__main__":
    main()
