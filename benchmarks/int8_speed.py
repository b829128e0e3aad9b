"""How fast can INT8 go on this CPU? Every candidate path, timed in one process, interleaved with ONNX Runtime FP32.

Builds (or takes from the cache) the model's FP32 export and static INT8 variants, then runs the paired
protocol of the benchmark stage over all of them at once: each round, every model in turn. Prints per thread
count each candidate's p50 latency and its speed-up over ONNX Runtime FP32 with the 95% interval, and the CPU.
Accuracy is not measured here: run the candidates that win through `src/main.py` on the 6000 pairs.
When `nncf` is installed (it is not a dependency), OpenVINO's own INT8 (NNCF post-training quantization with
its defaults, on the same calibration faces as facequant's static variant) is timed as a yardstick.

    python benchmarks/int8_speed.py --lfw ../shared/data/lfw --threads 1 2 --rounds 15
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
from hydra import compose, initialize_config_dir

from facequant.cache.layout import CacheLayout
from facequant.config.running import RuntimeConfig
from facequant.config.settings import Settings, load_settings
from facequant.job.stages import export_model, prepare_data
from facequant.job.stages_quant import quantize_model
from facequant.machine import has_bf16, machine_info
from facequant.runtime import sessions as runtime
from facequant.runtime.benchmark import interleaved, speedup
from facequant.schema import Param

REPO = Path(__file__).resolve().parents[1]
OPENVINO = RuntimeConfig("openvino", "f32")

# name -> (quant overrides, runtime, ONNX Runtime session config entries)
CANDIDATES: dict[str, tuple[list[str], RuntimeConfig, dict[str, str]]] = {
    "ORT static U8S8 per-channel (default: the host's preset)": (["quant=static"], runtime.ORT, {}),
    "ORT static U8S8 per-channel, full range": (["quant=static", "quant.half_range=none"], runtime.ORT, {}),
    "ORT static U8S8 per-tensor": (["quant=static", "quant.per_channel=false"], runtime.ORT, {}),
    "ORT static U8S8 per-channel, reduce_range": (["quant=static", "quant.reduce_range=true"], runtime.ORT, {}),
    "ORT static U8U8 per-channel": (["quant=static", "quant.weight_type=QUInt8"], runtime.ORT, {}),
    "ORT static S8S8 per-channel": (["quant=static", "quant.activation_type=QInt8"], runtime.ORT, {}),
    "ORT static per-channel, no spinning": (["quant=static"], runtime.ORT, {"session.intra_op.allow_spinning": "0"}),
    "OpenVINO static per-channel (same QDQ file)": (["quant=static"], OPENVINO, {}),
    "OpenVINO static per-tensor (same QDQ file)": (["quant=static", "quant.per_channel=false"], OPENVINO, {}),
    "OpenVINO FP32": (["quant=fp32"], OPENVINO, {}),
}
if has_bf16():
    CANDIDATES["OpenVINO FP32 in bf16"] = (["quant=fp32"], RuntimeConfig("openvino", "bf16"), {})


def settings(args: argparse.Namespace, overrides: list[str]) -> Settings:
    base = [f"model={args.model}", f"dataset.root={args.lfw}", "dataset.folds=1", f"model.weights_dir={args.weights}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return load_settings(compose(config_name="config", overrides=base + overrides))


def model_file(args: argparse.Namespace, overrides: list[str]) -> tuple[Path, Path, np.ndarray]:
    """(variant file, FP32 file, preprocessed faces), built through the pipeline's own stages and cache."""
    s = settings(args, overrides)
    layout = CacheLayout(s.cache_dir)
    data = prepare_data(s, layout)
    exported = export_model(s, layout, data)
    variant = quantize_model(s, layout, data, exported).path
    faces = runtime.preprocess(data.faces(32).faces, exported.spec)
    return variant, exported.fp32, faces


def nncf_file(args: argparse.Namespace, fp32: Path, out: Path) -> Path:
    """OpenVINO's own INT8 of the FP32 file: nncf.quantize with defaults on facequant's calibration faces."""
    import nncf
    import openvino as ov

    s = settings(args, ["quant=static"])
    data = prepare_data(s, CacheLayout(s.cache_dir))
    faces = runtime.preprocess(data.calibration_faces(), s.model.input_spec())
    dataset = nncf.Dataset([faces[i : i + 1] for i in range(len(faces))])
    quantized = nncf.quantize(ov.Core().read_model(str(fp32)), dataset, subset_size=len(faces))
    ov.save_model(quantized, str(out))
    return out


def opener(path: Path, engine: RuntimeConfig, entries: dict[str, str]) -> Callable[[int], Callable]:
    def open_at(threads: int) -> Callable:
        if not entries:
            return runtime.open_session(path, engine, threads).run
        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, runtime.GRAPH_OPTIMIZATION)
        opts.intra_op_num_threads = threads
        for key, value in entries.items():
            opts.add_session_config_entry(key, value)
        return runtime.OrtSession(ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])).run

    return open_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw"))
    parser.add_argument("--weights", default=str(Path.home() / ".cache" / "facequant" / "weights"))
    parser.add_argument("--model", default="msceleb128", help="model= of the pipeline")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    args.lfw = str(Path(args.lfw).resolve())
    built = {
        name: (*model_file(args, quant)[:1], engine, entries) for name, (quant, engine, entries) in CANDIDATES.items()
    }
    _, fp32, faces = model_file(args, ["quant=fp32"])
    if importlib.util.find_spec("nncf"):
        xml = nncf_file(args, fp32, Path(tempfile.mkdtemp(prefix="facequant-nncf-")) / "nncf_int8.xml")
        built["OpenVINO NNCF INT8 (defaults)"] = (xml, OPENVINO, {})
    cfg = replace(settings(args, []).benchmark, rounds=args.rounds)
    info = machine_info()
    print(f"CPU: {info[Param.CPU_MODEL]} ({info[Param.CPU_ISA]}); {runtime.name()}, {runtime.name(OPENVINO)}")
    print(f"{cfg.rounds} rounds x ({cfg.warmup} warm-up + {cfg.iterations} timed batch-1 calls) per model, interleaved")
    for threads in args.threads:
        models = [opener(fp32, runtime.ORT, {})(threads)]
        models += [opener(path, engine, entries)(threads) for path, engine, entries in built.values()]
        timed = interleaved(models, faces[:1], faces, cfg)
        print(f"\n{threads} thread(s): ORT FP32 p50 {1000 * np.median(timed[0].round_latency):.2f} ms")
        for name, rounds in zip(built, timed[1:], strict=True):
            ratio = speedup(timed[0], rounds, cfg.confidence)
            p50 = 1000 * np.median(rounds.round_latency)
            print(f"  {name:46s} p50 {p50:7.2f} ms  speed-up {ratio.estimate:.2f}x [{ratio.low:.2f}, {ratio.high:.2f}]")


if __name__ == "__main__":
    main()
