"""Does the avx2 emulation compute what real AVX2 kernels compute? On an AVX2-only host, one static variant is scored
on LFW three ways: ONNX Runtime's real U8S8 kernels, the emulation of their saturating pair sums (what a VNNI host
scores for target=avx2), and its QDQ graph in float (the exact arithmetic of VNNI/AMX). Prints the agreement the
emulation rests on (docs/targets.md): embedding cosines, accuracy and TAR@FAR=1e-3 with FP32 drops and intervals,
and the nodes that saturate on held-out faces. Scores are cached as the pipeline caches them.

    python benchmarks/avx2_agreement.py --lfw ../shared/data/lfw --model casia_webface --variant full
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from facequant.cache.layout import CacheLayout
from facequant.config.settings import load_settings
from facequant.evaluation.paired import embedding_cosines
from facequant.job.held_out import held_out
from facequant.job.stages import compare_with_fp32, evaluate_model, export_model, prepare_data
from facequant.job.stages_quant import quantize_model
from facequant.machine import host_isa, machine_info
from facequant.quant.saturation import saturation
from facequant.schema import Metric, Param

REPO = Path(__file__).resolve().parents[1]
# --variant: full-range weights everywhere (which saturate), or the avx2 preset (7 bits where they saturate)
HALF_RANGE = {"full": "none", "preset": "saturating"}
ARITHMETIC = {"real AVX2 kernels": "host", "emulated avx2": "avx2", "exact (QDQ in float)": "exact"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw"))
    parser.add_argument("--model", default="casia_webface", help="model= of the pipeline (a FaceNet with weights)")
    parser.add_argument("--variant", choices=sorted(HALF_RANGE), default="full")
    parser.add_argument("--folds", type=int, default=10, help="LFW View 2 folds scored (600 pairs each)")
    parser.add_argument("--held-out", type=int, default=64, help="held-out faces per-node saturation is measured on")
    args = parser.parse_args()
    if host_isa() != "avx2":
        sys.exit(
            f"error: needs an AVX2-only CPU, whose U8S8 kernels saturate; this one is {host_isa()}. "
            "Run it on such a machine, or use target=avx2 to score by emulation alone."
        )
    overrides = [
        f"model={args.model}",
        f"dataset.root={Path(args.lfw).resolve()}",
        f"dataset.folds={args.folds}",
        "quant=static",
        "target=auto",  # this AVX2 host: the same files as a sweep's on it, so their scores come from the cache
        f"quant.half_range={HALF_RANGE[args.variant]}",
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        settings = load_settings(compose(config_name="config", overrides=overrides))
    layout = CacheLayout(settings.cache_dir)
    data = prepare_data(settings, layout)
    exported = export_model(settings, layout, data)
    variant = quantize_model(settings, layout, data, exported)
    info = machine_info()
    print(f"CPU: {info[Param.CPU_MODEL]} ({info[Param.CPU_ISA]}); host ISA {host_isa()}")
    print(
        f"{args.model}, static U8S8 {args.variant} ({len(variant.half_range)} half-range weights), "
        f"{len(data.pairs)} pairs, {len(data.names)} faces: {variant.path.name}"
    )

    spec = exported.spec
    fp32 = evaluate_model(data, exported.fp32, spec)
    scored = {label: evaluate_model(data, variant.path, spec, arithmetic=a) for label, a in ARITHMETIC.items()}
    print(f"\n{'arithmetic':22s} {'accuracy':>8s} {'drop (pt) [95%]':>24s} {'TAR@1e-3':>8s} {'drop (pt) [95%]':>24s}")
    v = fp32.verification
    print(f"{'FP32':22s} {v.accuracy:8.4f} {'':>24s} {v.tar_far[1e-3]:8.4f}")
    for label, evaluation in scored.items():
        m = compare_with_fp32(data, evaluation, fp32).metrics | evaluation.drops_from(fp32)
        acc = (
            f"{100 * m[Metric.ACCURACY_DROP]:.2f} [{100 * m[Metric.ACCURACY_DROP_CI_LOW]:.2f}, "
            f"{100 * m[Metric.ACCURACY_DROP_CI_HIGH]:.2f}]"
        )
        tar = (
            f"{100 * m[Metric.TAR_FAR_1E3_DROP]:.2f} [{100 * m[Metric.TAR_FAR_1E3_DROP_CI_LOW]:.2f}, "
            f"{100 * m[Metric.TAR_FAR_1E3_DROP_CI_HIGH]:.2f}]"
        )
        ver = evaluation.verification
        print(f"{label:22s} {ver.accuracy:8.4f} {acc:>24s} {ver.tar_far[1e-3]:8.4f} {tar:>24s}")

    real, emulated, exact = (scored[label] for label in ARITHMETIC)
    print(f"\nembedding cosine over {len(data.names)} faces: mean / min")
    for name, (a, b) in {
        "real vs emulated": (real, emulated),
        "real vs exact": (real, exact),
        "emulated vs exact": (emulated, exact),
    }.items():
        c = embedding_cosines(a.embeddings, b.embeddings)
        print(f"  {name:18s} {c.mean():.5f} / {c.min():.4f}")
    gap_acc = 100 * abs(real.verification.accuracy - emulated.verification.accuracy)
    gap_tar = 100 * abs(real.verification.tar_far[1e-3] - emulated.verification.tar_far[1e-3])
    print(
        f"real vs emulated: accuracy {gap_acc:.3f} pt apart, TAR@FAR=1e-3 {gap_tar:.3f} pt apart "
        f"(one pair is {100 / len(data.pairs):.3f} pt of accuracy, one genuine pair "
        f"{100 / real.verification.n_genuine:.3f} pt of TAR)"
    )

    faces = held_out(data, args.held_out).faces
    table = saturation(variant.path, faces, spec).table
    print(
        f"\nnodes whose int16 pair sums saturate on {len(faces)} held-out faces "
        f"(share of outputs; bound {settings.target.max_saturation}):"
    )
    print(table[table.outputs_fraction > 0].head(8).to_string(index=False))


if __name__ == "__main__":
    main()
