"""What protocol=all costs per variant beyond embedding the images, and its peak memory.

Builds the job's data, FP32 export and variant from the cache (run the sweep first so the embeddings are cached),
then times each all-pairs step: FP32's scan, the variant's scan with flips, the identity bootstrap and drift,
and the artifacts. Target on a 2-core machine: <= 60 s per variant in total, peak RSS <= 4 GiB.

    python benchmarks/all_pairs.py --lfw ../shared/data/lfw [--model msceleb128] [--quant static]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra import compose, initialize_config_dir

from facequant.cache.layout import CacheLayout
from facequant.config.settings import load_settings
from facequant.job.artifacts import all_artifacts
from facequant.job.stages import export_model, prepare_data
from facequant.job.stages_all import compare_all, evaluate_all
from facequant.job.stages_quant import quantize_model
from facequant.machine import machine_info
from facequant.runtime import sessions as runtime

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def timed(label: str, step: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = step()
    print(f"{label:<44} {time.perf_counter() - start:7.1f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", required=True)
    parser.add_argument("--model", default="msceleb128")
    parser.add_argument("--quant", default="static")
    args = parser.parse_args()
    overrides = [f"model={args.model}", f"dataset.root={Path(args.lfw).resolve()}", "dataset.protocol=all"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        settings = load_settings(compose(config_name="config", overrides=[*overrides, f"quant={args.quant}"]))
    layout = CacheLayout(settings.cache_dir)
    data = prepare_data(settings, layout)
    exported = export_model(settings, layout, data)
    variant = quantize_model(settings, layout, data, exported).path
    pre = exported.spec
    info = machine_info()
    print(f"CPU: {info['cpu.model']} ({info['cpu.isa']}); {len(data.names)} images, {data.n_pairs:,} pairs")
    start = time.perf_counter()
    fp32 = timed("FP32 scan (embeddings cached)", lambda: evaluate_all(data, exported.fp32, pre, runtime.ORT))
    result = timed(
        "variant scan with flips at FP32's thresholds",
        lambda: evaluate_all(data, variant, pre, settings.runtime, reference=fp32),
    )
    if not (fp32.cached and result.cached):
        print("note: embeddings were not all cached, so the scans above include embedding the images")
    timed("identity bootstrap + drift", lambda: compare_all(data, result, fp32))
    timed("metrics (ROC AUC, EER)", result.metrics)
    with tempfile.TemporaryDirectory() as tmp:
        timed("artifacts (CSVs, ROC, histogram)", lambda: all_artifacts(Path(tmp), data, result, "variant"))
    print(f"{'total beyond embedding':<44} {time.perf_counter() - start:7.1f} s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
