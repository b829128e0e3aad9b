"""The comparison report: every number and claim computed from the runs, with one stated recommendation rule."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facequant import tracking
from facequant.config import MlflowConfig
from facequant.plots import plot_calibration_grid, plot_histograms, plot_pareto, plot_rocs

GROUP_KEYS = ("params.model_info.weights_sha256", "tags.dataset_fingerprint", "params.dataset.folds")
METRICS = (
    "accuracy",
    "accuracy_std",
    "tar_far_1e-3",
    "tar_far_1e-4",
    "roc_auc",
    "eer",
    "size_mib",
    "latency_p50_ms",
    "latency_p95_ms",
    "throughput_ips",
    "genuine_mean",
    "genuine_std",
    "impostor_mean",
    "impostor_std",
    "threshold",
    "far_resolution",
    "n_pairs",
)


@dataclass(frozen=True)
class Rule:
    """Recommend the fastest variant whose drops against FP32 stay within these bounds (fractions).

    Latencies within `latency_tolerance` of the fastest count as equally fast (run-to-run noise on a shared
    CPU is of that order); among those the smallest accuracy drop wins.
    """

    max_drop: float = 0.005
    max_tar_drop: float = 0.01
    latency_tolerance: float = 0.10

    def text(self) -> str:
        return (
            f"the fastest variant (lowest batch-1 p50 latency) whose 10-fold accuracy drop is <= "
            f"{100 * self.max_drop:.2f} pt and whose TAR@FAR=1e-3 drop is <= {100 * self.max_tar_drop:.2f} pt, "
            "both against the FP32 run of the same model and data; latencies within "
            f"{100 * self.latency_tolerance:.0f}% of the fastest count as equally fast, and among those the "
            "smallest accuracy drop wins"
        )

    def pick(self, passing: pd.DataFrame) -> pd.Series:
        fast = passing[passing.latency_p50_ms <= passing.latency_p50_ms.min() * (1 + self.latency_tolerance)]
        return fast.sort_values(["accuracy_drop", "latency_p50_ms"]).iloc[0]

    def breaks(self, row: pd.Series) -> list[str]:
        reasons = []
        if row["accuracy_drop"] > self.max_drop:
            reasons.append(f"accuracy drop {100 * row['accuracy_drop']:.2f} pt > {100 * self.max_drop:.2f} pt")
        if row["tar_drop"] > self.max_tar_drop:
            reasons.append(f"TAR@FAR=1e-3 drop {100 * row['tar_drop']:.2f} pt > {100 * self.max_tar_drop:.2f} pt")
        return reasons


def variant_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant (the latest run of each name), with drops and ratios against the FP32 row if any."""
    rows = runs.drop_duplicates("tags.mlflow.runName", keep="last")
    table = pd.DataFrame(
        {
            "name": rows["tags.mlflow.runName"],
            "run_id": rows["run_id"],
            "is_baseline": rows.get("tags.is_baseline", pd.Series("false", rows.index)) == "true",
        }
    )
    for metric in METRICS:
        table[metric] = pd.to_numeric(rows.get(f"metrics.{metric}"), errors="coerce")
    table = table.reset_index(drop=True)
    base = table[table.is_baseline]
    if base.empty:
        for col in ("accuracy_drop", "tar_drop", "compression", "speedup"):
            table[col] = np.nan
        return table
    b = base.iloc[-1]
    table["accuracy_drop"] = b["accuracy"] - table["accuracy"]
    table["tar_drop"] = b["tar_far_1e-3"] - table["tar_far_1e-3"]
    table["compression"] = b["size_mib"] / table["size_mib"]
    table["speedup"] = b["latency_p50_ms"] / table["latency_p50_ms"]
    return table


def size_phrase(ratio: float) -> str:
    """A size change in words that cannot overstate it: percent below a 10% cut, 'N.NNx' above."""
    if ratio >= 1.1:
        return f"{ratio:.2f}x smaller"
    change = 100 * (1 - 1 / ratio)
    return f"{abs(change):.1f}% {'smaller' if change >= 0 else 'larger'} (no meaningful size cut)"


def speed_phrase(ratio: float) -> str:
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"


def recommendation(table: pd.DataFrame, rule: Rule) -> list[str]:
    """Markdown lines: the rule, the recommended variant with its measured ratios, and why others are not."""
    lines = [f"Rule: recommend {rule.text()}.", ""]
    if not table.is_baseline.any():
        return lines + [
            "No recommendation: this selection has no FP32 run, so no drop can be measured. "
            "Run `quant=fp32` in the same sweep."
        ]
    base = table[table.is_baseline].iloc[-1]
    quantized = table[~table.is_baseline]
    passing = quantized[[not rule.breaks(r) for _, r in quantized.iterrows()]]
    if passing.empty:
        lines.append(f"**Keep FP32** ({base['name']}): no quantized variant meets the rule.")
    else:
        best = rule.pick(passing)
        lines.append(
            f"**Recommended: {best['name']}**: accuracy {best['accuracy']:.4f} (drop {100 * best['accuracy_drop']:.2f}"
            f" pt), TAR@FAR=1e-3 drop {100 * best['tar_drop']:.2f} pt; {size_phrase(best['compression'])} than FP32 "
            f"({base['size_mib']:.2f} -> {best['size_mib']:.2f} MiB); {speed_phrase(best['speedup'])} at batch 1 "
            f"({base['latency_p50_ms']:.2f} -> {best['latency_p50_ms']:.2f} ms p50)."
        )
        if best["speedup"] < 1:
            lines.append("It is slower than FP32 on this machine: keep FP32 if latency matters more than size.")
    lines.append("")
    for _, row in quantized.iterrows():
        reasons = rule.breaks(row)
        if reasons:
            lines.append(f"- {row['name']}: not recommended: {'; '.join(reasons)}.")
        elif passing.empty or row["name"] != best["name"]:
            lines.append(
                f"- {row['name']}: within the bounds but not picked ({row['latency_p50_ms']:.2f} ms p50, drop "
                f"{100 * row['accuracy_drop']:.2f} pt); {size_phrase(row['compression'])}, "
                f"{speed_phrase(row['speedup'])} than FP32."
            )
    return lines


def _fmt(value: float, spec: str, na: str = "n/a") -> str:
    return na if value is None or pd.isna(value) else format(value, spec)


def comparison_lines(table: pd.DataFrame) -> list[str]:
    head = (
        "| Model | Accuracy | Acc. std | TAR@FAR=1e-3 | TAR@FAR=1e-4 | ROC AUC | EER | Size (MiB) | Compression "
        "| Latency p50 (ms) | Latency p95 (ms) | Speed-up | Throughput (img/s) |"
    )
    lines = [head, "|" + "---|" * 13]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['name']} | {r['accuracy']:.4f} | {r['accuracy_std']:.4f} | {r['tar_far_1e-3']:.4f} | "
            f"{r['tar_far_1e-4']:.4f} | {r['roc_auc']:.4f} | {r['eer']:.4f} | {r['size_mib']:.2f} | "
            f"{_fmt(r['compression'], '.2f')}x | {r['latency_p50_ms']:.2f} | {r['latency_p95_ms']:.2f} | "
            f"{_fmt(r['speedup'], '.2f')}x | {r['throughput_ips']:.1f} |"
        )
    return lines


def summary_lines(table: pd.DataFrame) -> list[str]:
    if not table.is_baseline.any():
        return [
            "No FP32 run in this selection: drops, compression and speed-up are n/a (no baseline to compare against)."
        ] + [f"- {r['name']}: accuracy {r['accuracy']:.4f}" for _, r in table.iterrows()]
    base = table[table.is_baseline].iloc[-1]
    lines = [
        f"FP32 baseline ({base['name']}): accuracy {base['accuracy']:.4f} +- {base['accuracy_std']:.4f}, "
        f"TAR@FAR=1e-3 {base['tar_far_1e-3']:.4f}, {base['size_mib']:.2f} MiB, {base['latency_p50_ms']:.2f} ms."
    ]
    for _, r in table[~table.is_baseline].iterrows():
        lines.append(
            f"- {r['name']}: accuracy {r['accuracy']:.4f} (drop {100 * r['accuracy_drop']:.2f} pt), "
            f"{size_phrase(r['compression'])}, {speed_phrase(r['speedup'])} at batch 1."
        )
    return lines


def distribution_lines(table: pd.DataFrame) -> list[str]:
    lines = ["| Model | Genuine mean | Genuine std | Impostor mean | Impostor std | Threshold |", "|" + "---|" * 6]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['name']} | {r['genuine_mean']:.4f} | {r['genuine_std']:.4f} | {r['impostor_mean']:.4f} | "
            f"{r['impostor_std']:.4f} | {r['threshold']:.4f} |"
        )
    return lines


def calibration_grid(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame | None:
    """Accuracy drop (pt) by calibration method x num_samples, when the static runs vary them."""
    if table.accuracy_drop.isna().all() or "params.quant.mode" not in runs:
        return None
    static = runs[runs["params.quant.mode"] == "static"].drop_duplicates("tags.mlflow.runName", keep="last")
    if static.empty:
        return None
    drops = table.set_index("name").accuracy_drop * 100
    frame = pd.DataFrame(
        {
            "method": static["params.calibration.method"],
            "samples": pd.to_numeric(static["params.calibration.num_samples"]),
            "drop": static["tags.mlflow.runName"].map(drops),
        }
    )
    if frame.method.nunique() < 2 and frame.samples.nunique() < 2:
        return None
    return frame.pivot_table(index="method", columns="samples", values="drop")


def _param(runs: pd.DataFrame, name: str) -> str:
    values = runs.get(f"params.{name}", pd.Series(dtype=str)).dropna().unique()
    return ", ".join(map(str, values)) if len(values) else "n/a"


def technical_lines(runs: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    lines = [
        f"- Architecture: facenet-pytorch InceptionResnetV1 (Inception-ResNet-v1), input 160x160 RGB, "
        f"{_param(runs, 'model_info.embedding_size')}-d L2-normalised embedding; weights: "
        f"{_param(runs, 'model_info.source')} (sha256 {_param(runs, 'model_info.weights_sha256')[:16]}...).",
        f"- Input preprocessing: `{_param(runs, 'model_info.preprocess')}` (fixed = (x-127.5)/128; per_image = "
        "per-image mean/std, std floored at 1/sqrt(n)); alignment: MTCNN, margin "
        f"{_param(runs, 'align.margin')}, selection `{_param(runs, 'align.selection_method')}`.",
        "- Quantization (ONNX Runtime, after `quant_pre_process`):",
    ]
    for _, r in runs.drop_duplicates("tags.mlflow.runName", keep="last").iterrows():
        mode = r.get("params.quant.mode")
        if mode == "dynamic":
            detail = (
                f"quantize_dynamic, weights {r.get('params.quant.weight_type')}, op types "
                f"{r.get('params.quant.op_types')}, per_channel {r.get('params.quant.per_channel')}"
            )
        elif mode == "static":
            detail = (
                f"quantize_static {r.get('params.quant.format')}, {r.get('params.quant.scheme')} (activations "
                f"{r.get('params.quant.activation_type')}, weights {r.get('params.quant.weight_type')}), "
                f"per_channel {r.get('params.quant.per_channel')}, reduce_range {r.get('params.quant.reduce_range')}; "
                f"calibration {r.get('params.calibration.method')} on {r.get('params.calibration.num_samples')} "
                f"faces (seed {r.get('params.calibration.seed')}, {r.get('params.calibration.num_bins')} bins) "
                "drawn from the LFW images no evaluation pair uses"
            )
        else:
            detail = "FP32 ONNX export (opset " + str(r.get("params.onnx.opset")) + ")"
        lines.append(f"  - {r['tags.mlflow.runName']}: {detail}.")
    pairs = table.n_pairs.dropna()
    far = table.far_resolution.dropna()
    lines += [
        f"- Dataset: LFW, fingerprint {', '.join(runs['tags.dataset_fingerprint'].dropna().unique())}, "
        f"{int(pairs.iloc[0]) if len(pairs) else 'n/a'} pairs from {_param(runs, 'dataset.folds')} fold(s) of "
        "pairs.txt; accuracy is 10-fold (threshold chosen on the other folds).",
        f"- FAR resolution: {_fmt(far.iloc[0] if len(far) else None, '.1e')} (1 / impostor pairs): TAR@FAR=1e-4 "
        "is read at zero false accepts, and TAR@FAR=1e-3 allows floor(1e-3 x impostors) of them.",
        f"- Latency: ONNX Runtime CPU EP, {_param(runs, 'benchmark.graph_optimization')}, "
        f"{_param(runs, 'benchmark.threads')} intra-op thread(s), batch {_param(runs, 'benchmark.latency_batch')}, "
        f"{_param(runs, 'benchmark.warmup')} warm-up + {_param(runs, 'benchmark.iterations')} timed runs; throughput "
        f"at batch {_param(runs, 'benchmark.throughput_batch')}.",
        f"- Software: onnxruntime {_param(runs, 'version.onnxruntime')}, torch {_param(runs, 'version.torch')}, "
        f"onnx {_param(runs, 'version.onnx')}, mlflow {_param(runs, 'version.mlflow')}.",
    ]
    return lines


def group_section(runs: pd.DataFrame, curves: dict[str, pd.DataFrame], rule: Rule, out: Path, prefix: str) -> list[str]:
    """Summary, table, distributions, recommendation and details of runs of one model on one dataset."""
    table = variant_table(runs)
    plots = [plot_pareto(table, out / f"{prefix}pareto.png")]
    named = {r["name"]: curves[r["run_id"]] for _, r in table.iterrows() if r["run_id"] in curves}
    if named:
        plots.insert(0, plot_rocs(named, out / f"{prefix}roc.png"))
        plots.insert(
            1,
            plot_histograms(
                named, dict(zip(table.name, table.threshold, strict=True)), out / f"{prefix}histograms.png"
            ),
        )
    grid = calibration_grid(runs, table)
    if grid is not None:
        plots.append(plot_calibration_grid(grid, out / f"{prefix}calibration_grid.png"))
    dupes = len(runs) - len(table)
    lines = [
        "### Executive summary",
        "",
        *summary_lines(table),
        "",
        "### Detailed comparison",
        "",
        *comparison_lines(table),
        "",
    ]
    if dupes:
        lines += [f"({dupes} repeated run(s) of the same variant: the latest of each is shown.)", ""]
    lines += [
        "### Similarity distributions",
        "",
        *distribution_lines(table),
        "",
        "### Recommendations",
        "",
        *recommendation(table, rule),
        "",
        "### Plots",
        "",
    ]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    lines += ["", "### Technical details", "", *technical_lines(runs, table), ""]
    return lines


def build_report(runs: pd.DataFrame, curves: dict[str, pd.DataFrame], rule: Rule, out: Path, title: str) -> Path:
    """Write out/report.md and its PNGs from the selected runs; curves maps run id -> scores.csv rows."""
    out.mkdir(parents=True, exist_ok=True)
    finished = runs[runs.status == "FINISHED"]
    failed = runs[runs.status != "FINISHED"]
    cpu = runs.get("params.cpu.model", pd.Series(dtype=str)).dropna().unique()
    lines = [
        f"# {title}",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(runs)} MLflow run(s); git commit(s) "
        f"{', '.join(runs.get('tags.git_commit', pd.Series(dtype=str)).dropna().unique()) or 'n/a'}.",
        f"Machine: {', '.join(cpu) or 'n/a'}; ISA {_param(runs, 'cpu.isa')}.",
        "",
    ]
    if not failed.empty:
        lines += [
            "Runs that did not finish (left out): "
            + ", ".join(
                f"{r['tags.mlflow.runName']} ({r['status']}: {r.get('tags.error', 'no error recorded')})"
                for _, r in failed.iterrows()
            ),
            "",
        ]
    if finished.empty:
        lines += ["No finished runs to compare."]
    keys = [k for k in GROUP_KEYS if k in finished]
    groups = list(finished.groupby(keys, dropna=False, sort=False)) if keys else [((), finished)]
    if len(groups) > 1:
        lines += [
            f"**These runs mix {len(groups)} model/dataset combinations; each is compared only with runs of "
            "the same model weights, dataset fingerprint and folds.**",
            "",
        ]
    for i, (_, group) in enumerate(groups):
        lines += [
            f"## {_param(group, 'model.name')} on LFW ({_param(group, 'dataset.folds')} folds, dataset "
            f"{', '.join(group['tags.dataset_fingerprint'].dropna().unique())})",
            "",
        ]
        lines += group_section(group, curves, rule, out, f"g{i}_" if len(groups) > 1 else "")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def compare(cfg: MlflowConfig, sweep: str | None, filter_string: str | None, out: Path | None, rule: Rule) -> Path:
    """Select runs with mlflow.search_runs, build the report from them and log it; returns report.md."""
    runs, sweep = tracking.select_runs(cfg, sweep, filter_string)
    label = sweep or "comparison-" + time.strftime("%Y%m%d-%H%M%S")
    out = out or Path("reports") / label
    curves = {}
    with tempfile.TemporaryDirectory(prefix="facequant-scores-") as tmp:
        for run_id in runs.run_id[runs.status == "FINISHED"]:
            path = tracking.download_artifact(run_id, "scores.csv", Path(tmp) / run_id)
            if path is not None:
                curves[run_id] = pd.read_csv(path)
    title = f"FaceNet INT8 quantization report: sweep {sweep}" if sweep else "FaceNet INT8 quantization report"
    report = build_report(runs, curves, rule, out, title)
    tracking.log_report(sorted(out.glob("*.png")) + [report], sweep, runs.experiment_id.iloc[0])
    return report
