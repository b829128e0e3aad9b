"""Peak memory of a folder of phone-size photos: 16 JPEGs of 8160x6120 (50 MP), built from real LFW faces, through
`python src/main.py dataset=folder` (model=msceleb128, quant=fp32) under GNU `/usr/bin/time -v`.

Each photo is one LFW image of one of 4 identities, upscaled 8x (a 2000-pixel face, as a phone shot at arm's
length gives) and placed at a random spot of a grey-gradient canvas. Prints the job's wall time, its alignment
time and faces found, and the peak RSS. Target: < 3 GiB (before align.detect_max_side the job needed 6.25 GB for
two such photos).

    python benchmarks/align_memory.py --lfw ../shared/data/lfw
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from facequant.config.sections import DatasetConfig
from facequant.data.images import read_rgb
from facequant.data.lfw import load_lfw

REPO = Path(__file__).resolve().parents[1]
PHONE = (8160, 6120)
UPSCALE = 8


def phone_folder(lfw_root: Path, out: Path, identities: int, per_identity: int, seed: int = 0) -> int:
    """identities x per_identity phone-size JPEGs under out/<identity>/; returns the total bytes written."""
    lfw = load_lfw(DatasetConfig(root=str(lfw_root)))
    people: dict[str, list[str]] = {}
    for name in lfw.images:
        people.setdefault(name.split("/")[0], []).append(name)
    chosen = [p for p, names in sorted(people.items()) if len(names) >= per_identity][:identities]
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 200, PHONE[0], dtype=np.float32)
    canvas = np.broadcast_to(ramp[None, :, None], (PHONE[1], PHONE[0], 3)).astype(np.uint8)
    size = 0
    for person in chosen:
        (out / person).mkdir(parents=True)
        for name in people[person][:per_identity]:
            photo = Image.fromarray(canvas)
            face = read_rgb(lfw.images_dir / name)
            face = face.resize((face.width * UPSCALE, face.height * UPSCALE), Image.Resampling.BICUBIC)
            photo.paste(
                face, (int(rng.integers(0, PHONE[0] - face.width)), int(rng.integers(0, PHONE[1] - face.height)))
            )
            path = out / name
            photo.save(path, quality=90)
            size += path.stat().st_size
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default="../shared/data/lfw", help="folder with pairs.txt")
    parser.add_argument("--weights", default="~/.cache/facequant/weights", help="model.weights_dir (msceleb128)")
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--per-identity", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="facequant-phone-") as tmp:
        work = Path(tmp)
        size = phone_folder(Path(args.lfw).resolve(), work / "photos", args.identities, args.per_identity)
        count = args.identities * args.per_identity
        print(f"{count} photos of {PHONE[0]}x{PHONE[1]} in {work / 'photos'} ({size / 2**20:.0f} MiB of JPEG)")
        cmd = [
            "/usr/bin/time",
            "-v",
            sys.executable,
            str(REPO / "src" / "main.py"),
            "model=msceleb128",
            f"model.weights_dir={Path(args.weights).expanduser()}",
            "dataset=folder",
            f"dataset.root={work / 'photos'}",
            f"dataset.calibration_pool={args.per_identity}",  # one whole identity held out
            "quant=fp32",
            "benchmark.threads=[1]",
            "benchmark.rounds=6",
            "benchmark.iterations=3",
            f"cache_dir={work / 'cache'}",
            f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
            f"hydra.run.dir={work / 'outputs'}",
        ]
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"main.py failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
        wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", proc.stderr).group(1)
        aligned = re.findall(r"aligning \d+ of \d+ images[^\n]*", proc.stdout + proc.stderr)
        print(f"main.py dataset=folder quant=fp32: wall {wall}; {'; '.join(aligned) or 'no alignment logged'}")
        print(f"peak RSS: {peak_kib / 2**20:.2f} GiB (target < 3 GiB)")


if __name__ == "__main__":
    main()
