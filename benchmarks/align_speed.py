"""MTCNN alignment speed: align=mtcnn's nets on OpenVINO and on ONNX Runtime (batched crops both) against
align=mtcnn_reference (facenet-pytorch's MTCNN), side by side in one process.

Each round aligns the same LFW images with both, in alternating order (ABBA), as alignment runs them
(`align_files`: reading, detection, selection and the 160x160 crop, batch by batch, on the aligner's workers).
Prints each aligner's median images/s and the median per-round speed-ups with their exact intervals. Target: >= 3x
facenet-pytorch's speed; compare `--batch` values too, since facenet-pytorch's own speed depends on the batch.

    python benchmarks/align_speed.py --lfw ../shared/data/lfw --images 64 --rounds 8
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from facequant.config.sections import AlignConfig, DatasetConfig
from facequant.data.align import Detector, align_files
from facequant.data.lfw import load_lfw
from facequant.evaluation.stats import median_interval, min_rounds
from facequant.machine import cpu

IMPLEMENTATIONS = ("openvino", "onnxruntime", "reference")


def align_all(detector: Detector, paths: list[Path]) -> float:
    """Seconds to read, detect, select and crop every image."""
    start = time.perf_counter()
    for _ in align_files(detector, paths):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default="../shared/data/lfw", help="folder with pairs.txt")
    parser.add_argument("--images", type=int, default=64, help="images per aligner per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=AlignConfig.batch_size)
    parser.add_argument("--confidence", type=float, default=0.95)
    args = parser.parse_args()
    if args.rounds < min_rounds(args.confidence):
        parser.error(f"--rounds must be >= {min_rounds(args.confidence)} for a {args.confidence} interval")

    lfw = load_lfw(DatasetConfig(root=str(Path(args.lfw).resolve())))
    names = lfw.images[:: len(lfw.images) // args.images][: args.images]
    images = [lfw.images_dir / name for name in names]
    detectors = {impl: Detector(AlignConfig(implementation=impl, batch_size=args.batch)) for impl in IMPLEMENTATIONS}
    for detector in detectors.values():  # warm-up: first-call allocations and ONNX Runtime's session set-up
        align_all(detector, images[: 2 * args.batch])

    seconds: dict[str, list[float]] = {impl: [] for impl in IMPLEMENTATIONS}
    for r in range(args.rounds):
        for impl in IMPLEMENTATIONS if r % 2 == 0 else IMPLEMENTATIONS[::-1]:
            seconds[impl].append(align_all(detectors[impl], images))
        print(f"round {r + 1}: " + ", ".join(f"{k} {len(images) / v[-1]:.1f} img/s" for k, v in seconds.items()))

    model, flags = cpu()
    isa = " ".join(sorted(f for f in flags if f.startswith(("avx", "amx", "fma"))))
    print(f"\nCPU: {model} ({isa}); torch threads: {torch.get_num_threads()}, load average {os.getloadavg()}")
    workers = ", ".join(f"{impl} {d.workers}" for impl, d in detectors.items())
    print(f"{len(images)} LFW images (250x250) per round, batch {args.batch}, workers: {workers}; {args.rounds} rounds")
    for impl in IMPLEMENTATIONS:
        rate = median_interval(len(images) / np.array(seconds[impl]), args.confidence)
        print(f"  {impl:12s} {rate.estimate:6.1f} img/s  [{rate.low:.1f}, {rate.high:.1f}]")
    for fast, slow in (("openvino", "reference"), ("onnxruntime", "reference"), ("openvino", "onnxruntime")):
        ratio = median_interval(np.array(seconds[slow]) / np.array(seconds[fast]), args.confidence)
        interval = f"[{ratio.low:.2f}, {ratio.high:.2f}] ({args.confidence:.0%})"
        aim = "; target >= 3x" if slow == "reference" else ""
        print(f"  {fast} over {slow}: {ratio.estimate:5.2f}x  {interval}{aim}")


if __name__ == "__main__":
    main()
