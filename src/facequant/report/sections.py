"""Markdown sections of one group's report, each from its table rows and the group's run records."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from facequant.evaluation.goal import pt
from facequant.report.accuracy import (
    COLUMNS,
    COLUMNS_ALL,
    DROP_NOTE,
    DROP_NOTE_ALL,
    drop_phrase,
    fmt,
    interval_text,
    markdown_table,
)
from facequant.report.rule import Rule
from facequant.report.table import Row, Table
from facequant.report.targets import host_speed
from facequant.schema import ALL_TAR_AT_FAR, Metric, Param, RunRecord, Tag, at_threads, far_text

HEADLINE = {False: Metric.ACCURACY, True: Metric.TAR_FAR_1E3}  # the one figure of a row, by protocol=all


def distinct(runs: Iterable[RunRecord], get: Callable[[RunRecord], str | None]) -> str:
    """The distinct values of one field over runs, in order of first appearance, or n/a."""
    return ", ".join(dict.fromkeys(value for value in map(get, runs) if value is not None)) or "n/a"


def params(runs: Iterable[RunRecord], name: Param) -> str:
    return distinct(runs, lambda run: run.param(name))


def tags(runs: Iterable[RunRecord], name: Tag) -> str:
    return distinct(runs, lambda run: run.tag(name))


def dataset_label(runs: Sequence[RunRecord]) -> str:
    """LFW, or a folder dataset by its root; runs before dataset.name was logged are LFW's."""
    if all(run.param(Param.DATASET_NAME) in (None, "lfw") for run in runs):
        return "LFW"
    return f"folder {params(runs, Param.DATASET_ROOT)}"


def size_phrase(ratio: float) -> str:
    """A size change in words that cannot overstate it: percent below a 10% cut, 'N.NNx' above."""
    if math.isnan(ratio):
        return "size ratio n/a"
    if ratio >= 1.1:
        return f"{ratio:.2f}x smaller"
    change = 100 * (1 - 1 / ratio)
    return f"{abs(change):.1f}% {'smaller' if change >= 0 else 'larger'} (no meaningful size cut)"


def threads_phrase(threads: Sequence[int]) -> str:
    """The first thread count in words: the one the unsuffixed latency and speed-up metrics refer to."""
    return "n/a threads" if not threads else f"{threads[0]} thread" + ("" if threads[0] == 1 else "s")


def confidence(run: RunRecord) -> str:
    """The confidence level of the run's speed-up interval, as '95%'."""
    value = run.param(Param.BENCHMARK_CONFIDENCE)
    return "n/a" if value is None else f"{100 * float(value):g}%"


def speedup_text(speedup: float, low: float, high: float, reference: bool = False) -> str:
    """'2.64x [2.58, 2.71]': the point with its interval; '1.00x' for the FP32 reference itself."""
    if reference:
        return "1.00x"
    if math.isnan(speedup):
        return "n/a"
    if math.isnan(low) or math.isnan(high):
        return f"{speedup:.2f}x (no interval)"
    return f"{speedup:.2f}x [{low:.2f}, {high:.2f}]"


def row_speedup(row: Row) -> str:
    return speedup_text(row.speedup, row.speedup_low, row.speedup_high, row.is_baseline)


def speed_phrase(row: Row) -> str:
    """The speed-up in words with its interval; an interval that holds 1 is called noise, not a speed change."""
    if math.isnan(row.speedup):
        return "speed-up n/a"
    low, high = row.interval
    verdict = "faster than FP32" if low > 1 else "slower than FP32" if high < 1 else "as fast as FP32 within the noise"
    interval = "no interval logged" if math.isnan(row.speedup_low) else f"{confidence(row.run)} interval"
    whose = host_speed(row)
    interval += f"; {whose}" if whose else ""
    return f"{verdict} at batch 1 on {threads_phrase(row.run.threads)} (speed-up {row_speedup(row)}, {interval})"


def _summary_all(table: Table, base: Row) -> list[str]:
    """protocol=all: TAR at each resolvable FAR, and each TAR drop with its identity-bootstrap interval."""
    tars = ", ".join(f"TAR@FAR={far_text(far)} {fmt(base.metric(name), '.4f')}" for far, name in ALL_TAR_AT_FAR.items())
    genuine, impostor = (fmt(base.metric(m), ",.0f") for m in (Metric.N_GENUINE_PAIRS, Metric.N_IMPOSTOR_PAIRS))
    lines = [
        f"FP32 baseline ({base.label}), every image against every other ({genuine} genuine, {impostor} impostor "
        f"pairs): {tars}; "
        f"{fmt(base.metric(Metric.SIZE_MIB), '.2f')} MiB, {fmt(base.metric(Metric.LATENCY_P50_MS), '.2f')} ms p50."
    ]
    for r in table.quantized:
        drops = "; ".join(f"TAR@FAR={far_text(far)} drop {drop_phrase(drop)}" for far, drop in r.tar_drops.items())
        lines.append(f"- {r.label}: {drops}; {size_phrase(r.compression)}; {speed_phrase(r)}.")
    return lines


def summary_lines(table: Table) -> list[str]:
    base = table.baseline
    if base is not None and base.all_pairs:
        return _summary_all(table, base)
    if base is None:
        return [
            "No FP32 run in this selection: drops and compression are n/a (no baseline to compare against); each "
            "speed-up is its job's own paired measurement against FP32."
        ] + [
            f"- {r.label}: {HEADLINE[r.all_pairs]} {fmt(r.metric(HEADLINE[r.all_pairs]), '.4f')}, {speed_phrase(r)}."
            for r in table.rows
        ]
    lines = [
        f"FP32 baseline ({base.label}): accuracy {fmt(base.metric(Metric.ACCURACY), '.4f')} +- "
        f"{fmt(base.metric(Metric.ACCURACY_STD), '.4f')}, TAR@FAR=1e-3 {fmt(base.metric(Metric.TAR_FAR_1E3), '.4f')}, "
        f"{fmt(base.metric(Metric.SIZE_MIB), '.2f')} MiB, {fmt(base.metric(Metric.LATENCY_P50_MS), '.2f')} ms p50 at "
        f"batch 1 on {threads_phrase(base.run.threads)}."
    ]
    for r in table.quantized:
        lines.append(
            f"- {r.label}: accuracy {fmt(r.metric(Metric.ACCURACY), '.4f')}; accuracy drop "
            f"{drop_phrase(r.drop_accuracy)}; TAR@FAR=1e-3 drop {drop_phrase(r.drop_tar)}; "
            f"{size_phrase(r.compression)}; {speed_phrase(r)}."
        )
    return lines


def at(run: RunRecord, metric: Metric, threads: int | None) -> float:
    """The metric at N threads; runs from before per-thread metrics logged it unsuffixed, at their first count.

    threads=None (a group whose runs logged no thread counts) reads the unsuffixed metric.
    """
    if threads is None:
        return run.metric(metric)
    value = run.metric(at_threads(metric, threads))
    return run.metric(metric) if math.isnan(value) and run.threads[:1] == (threads,) else value


def timing_heads(threads: int | None) -> list[str]:
    tag = "" if threads is None else f" {threads}T"
    return [f"p50{tag} (ms)", f"Speed-up{tag}", f"img/s{tag}"]


def timing_cells(row: Row, threads: int | None) -> list[str]:
    speedup = (at(row.run, m, threads) for m in (Metric.SPEEDUP, Metric.SPEEDUP_CI_LOW, Metric.SPEEDUP_CI_HIGH))
    return [
        fmt(at(row.run, Metric.LATENCY_P50_MS, threads), ".2f"),
        speedup_text(*speedup, reference=row.is_baseline),
        fmt(at(row.run, Metric.THROUGHPUT_IPS, threads), ".1f"),
    ]


def comparison_lines(table: Table) -> list[str]:
    """Accuracy and size, then p50, paired speed-up and throughput at each of the group's thread counts."""
    counts: tuple[int | None, ...] = table.threads or (None,)
    all_pairs = any(r.all_pairs for r in table.rows)
    columns = COLUMNS_ALL if all_pairs else COLUMNS
    heads = [head for head, _ in columns] + [head for n in counts for head in timing_heads(n)]
    lines = markdown_table(
        heads, table.rows, lambda r: [cell(r) for _, cell in columns] + [c for n in counts for c in timing_cells(r, n)]
    )
    return lines + ([] if table.baseline is None else ["", DROP_NOTE_ALL if all_pairs else DROP_NOTE])


def recommendation_lines(table: Table, rule: Rule) -> list[str]:
    """The rule, the recommended variant with its measured ratios, and why each other variant is not it."""
    all_pairs = any(r.all_pairs for r in table.rows)
    lines = [f"Rule: recommend {rule.text(all_pairs)}.", ""]
    base = table.baseline
    if base is None:
        return lines + [
            "No recommendation: this selection has no FP32 run, so no drop can be measured. "
            "Run `quant=fp32` in the same sweep."
        ]
    passing = rule.passing(table)
    best = rule.pick(passing) if passing else None
    tied = [r for r in rule.equally_fast(passing) if r is not best] if passing else []
    if best is None:
        lines.append(f"**Keep FP32** ({base.label}): no quantized variant meets the rule.")
    else:
        name, drop = rule.primary(best)
        headline = "TAR@FAR=1e-3" if all_pairs else "accuracy"
        lines.append(
            f"**Recommended: {best.label}**: {headline} {best.metric(HEADLINE[all_pairs]):.4f}, {name} "
            f"{interval_text(drop)}; TAR@FAR=1e-3 drop {interval_text(best.drop_tar)}; "
            f"{size_phrase(best.compression)} than FP32 ({fmt(base.metric(Metric.SIZE_MIB), '.2f')} -> "
            f"{fmt(best.metric(Metric.SIZE_MIB), '.2f')} MiB); {speed_phrase(best)}."
        )
        if rule.fallbacks(best):
            lines.append(
                f"Point drops compared for the {' and '.join(rule.fallbacks(best))}: the run logged no interval (it "
                "predates the paired statistics)."
            )
        low, high = best.interval
        if high < 1:
            lines.append("It is slower than FP32 on this machine: keep FP32 if latency matters more than size.")
        elif low <= 1:
            lines.append("Its speed-up interval holds 1: on this machine it is not measurably faster than FP32.")
        if tied:
            lines.append(
                f"{best.label} and {', '.join(r.label for r in tied)} are equally fast: their speed-up intervals "
                "overlap the fastest's, so the speed difference among them is within the measurement noise and the "
                f"smallest {rule.primary(best)[0]} decides."
            )
    lines.append("")
    for r in table.quantized:
        reasons = rule.breaks(r)
        if reasons:
            lines.append(f"- {r.label}: not recommended: {'; '.join(reasons)}.")
        elif r in tied:
            lines.append(
                f"- {r.label}: within the bounds and as fast as the fastest within the measurement noise (speed-up "
                f"{row_speedup(r)}), but {rule.primary(r)[0]} {pt(rule.primary(r)[1].point)} against the pick's "
                f"{pt(rule.primary(best)[1].point)}; {size_phrase(r.compression)}{fallback_note(rule, r)}."
            )
        elif r is not best:
            lines.append(
                f"- {r.label}: within the bounds but measurably slower than the fastest (its speed-up interval "
                f"does not overlap the fastest's): speed-up {row_speedup(r)}, {rule.primary(r)[0]} "
                f"{pt(rule.primary(r)[1].point)}; "
                f"{size_phrase(r.compression)}{fallback_note(rule, r)}."
            )
    return lines


def fallback_note(rule: Rule, row: Row) -> str:
    """'; point drops compared for the accuracy drop (...)' for a passing row the rule judged without an interval."""
    names = rule.fallbacks(row)
    return f"; point drops compared for the {' and '.join(names)} (no interval logged)" if names else ""
