"""quant.exclude=auto: keep the nodes whose tensors quantize worst in float, a growing number at a time, each time
re-quantized with the same calibration ranges, until the validation pairs hold the goal or the budget is spent."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import pandas as pd

from facequant.config.running import ExclusionConfig
from facequant.evaluation.goal import Goal
from facequant.evaluation.stats import Interval
from facequant.schema import EXCLUDED_TXT, EXCLUSION_CSV, Metric

log = logging.getLogger(__name__)

# The quantizer folds these into the range of the tensor before them, so that tensor is the one they quantize.
FOLDED = frozenset({"Relu", "Clip"})


def node_ranking(graph: onnx.GraphProto, table: pd.DataFrame) -> list[str]:
    """The nodes worst first, each by the lowest own-quantization SQNR (sensitivity.csv's local_sqnr_db) of a tensor
    it quantizes: a weight it reads, an activation it reads or produces (a folded Relu's with the node before it).

    The SQNR against FP32 would rank by depth, since every tensor inherits the error of those before it. An
    activation stays quantized while its producer or any consumer is, so they share its score and rank together.
    """
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    by_name = {node.name: node for node in graph.node}
    order = {node.name: i for i, node in enumerate(graph.node)}
    score: dict[str, float] = {}
    for row in table.itertuples():
        if row.kind == "activation":
            nodes = list(consumers.get(row.tensor, []))
            node = producer.get(row.tensor)
            while node is not None:
                nodes.append(node)
                node = producer.get(node.input[0]) if node.op_type in FOLDED else None
        else:
            nodes = [by_name[row.node]]
        for node in nodes:
            score[node.name] = min(score.get(node.name, math.inf), float(row.local_sqnr_db))
    return sorted(score, key=lambda name: (score[name], order[name]))


def schedule(candidates: int, exclusion: ExclusionConfig) -> list[int]:
    """How many nodes each step keeps in float: 0 (the plain variant), then 1, 2, 4, ... up to the budget."""
    most = min(candidates, exclusion.max_excluded)
    counts = [0]
    while len(counts) <= exclusion.max_steps and counts[-1] < most:
        counts.append(min(max(1, 2 * counts[-1]), most))
    return counts


@dataclass(frozen=True)
class Step:
    """One validated candidate: its nodes in float, its drops against FP32 on the validation pairs, its speed."""

    excluded: tuple[str, ...]
    accuracy_drop: Interval
    tar_drop: Interval  # at FAR=1e-3
    latency_ms: float
    speedup: Interval
    seconds: float

    def breaks(self, goal: Goal) -> list[str]:
        """Why the step fails the goal, each drop read at the upper end of its interval; empty when it holds."""
        bounds = (
            ("accuracy drop", self.accuracy_drop, goal.max_drop),
            ("TAR@FAR=1e-3 drop", self.tar_drop, goal.max_tar_drop),
        )
        return [reason for name, d, bound in bounds if (reason := goal.breach(name, d.estimate, d.high, bound))]


@dataclass(frozen=True)
class Search:
    """The steps validated, in order: doubling until one holds the goal, then halving the gap to the last that
    did not while the step budget lasts."""

    steps: tuple[Step, ...]
    exclusion: ExclusionConfig

    @property
    def met(self) -> bool:
        return not self.chosen.breaks(self.exclusion.goal)

    @property
    def chosen(self) -> Step:
        """The step with the fewest nodes in float that holds the goal, else the last one (the most in float)."""
        holding = [step for step in self.steps if not step.breaks(self.exclusion.goal)]
        return min(holding, key=lambda step: len(step.excluded)) if holding else self.steps[-1]


def search(ranked: Sequence[str], validate: Callable[[tuple[str, ...]], Step], exclusion: ExclusionConfig) -> Search:
    """Validate 0, 1, 2, 4, ... of the ranked nodes in float until a step holds the goal, then bisect between the
    last count that failed and the first that held, within exclusion.max_steps re-quantizations in all."""
    steps: list[Step] = []

    def holds(count: int) -> bool:
        step = validate(tuple(ranked[:count]))
        steps.append(step)
        reasons = step.breaks(exclusion.goal)
        log.info(
            "exclusion step %d: %d node(s) in float: %s", len(steps) - 1, count, "; ".join(reasons) or "goal holds"
        )
        return not reasons

    failed, held = -1, None
    for count in schedule(len(ranked), exclusion):
        if holds(count):
            held = count
            break
        failed = count
    while held is not None and held - failed > 1 and len(steps) <= exclusion.max_steps:
        middle = (failed + held) // 2
        if holds(middle):
            held = middle
        else:
            failed = middle
    return Search(tuple(steps), exclusion)


def steps_frame(found: Search) -> pd.DataFrame:
    """exclusion_steps.csv: one row per step, with the validation drops, their intervals and the speed."""
    rows = [
        {
            "step": i,
            "excluded": len(step.excluded),
            "accuracy_drop": step.accuracy_drop.estimate,
            "accuracy_drop_low": step.accuracy_drop.low,
            "accuracy_drop_high": step.accuracy_drop.high,
            "tar_far_1e3_drop": step.tar_drop.estimate,
            "tar_far_1e3_drop_low": step.tar_drop.low,
            "tar_far_1e3_drop_high": step.tar_drop.high,
            "latency_p50_ms": step.latency_ms,
            "speedup": step.speedup.estimate,
            "speedup_low": step.speedup.low,
            "speedup_high": step.speedup.high,
            "gate_holds": not step.breaks(found.exclusion.goal),
            "seconds": step.seconds,
            "last_node": step.excluded[-1] if step.excluded else "",
        }
        for i, step in enumerate(found.steps)
    ]
    return pd.DataFrame(rows)


def step_metrics(step: Step) -> dict[Metric, float]:
    """A step's figures, logged at its step number so the MLflow UI charts them along the search."""
    return {
        Metric.VALIDATION_EXCLUDED: len(step.excluded),
        Metric.VALIDATION_ACCURACY_DROP: step.accuracy_drop.estimate,
        Metric.VALIDATION_ACCURACY_DROP_CI_HIGH: step.accuracy_drop.high,
        Metric.VALIDATION_TAR_FAR_1E3_DROP: step.tar_drop.estimate,
        Metric.VALIDATION_TAR_FAR_1E3_DROP_CI_HIGH: step.tar_drop.high,
        Metric.VALIDATION_LATENCY_P50_MS: step.latency_ms,
        Metric.VALIDATION_SPEEDUP: step.speedup.estimate,
    }


def unmet(found: Search) -> str:
    """Why the search ended without holding the goal, and what to change."""
    chosen = found.chosen
    return (
        f"the goal does not hold on the validation pairs with {len(chosen.excluded)} node(s) in float "
        f"({'; '.join(chosen.breaks(found.exclusion.goal))}); the budget is spent (exclusion.max_excluded="
        f"{found.exclusion.max_excluded}, exclusion.max_steps={found.exclusion.max_steps}): raise it, or check "
        "int8_kernel_cosine_min, since a fault of the "
        "integer kernels is not in the SQNR that ranks the nodes"
    )


def exclusion_artifacts(found: Search, out: Path) -> list[Path]:
    """exclusion_steps.csv, and excluded_nodes.txt with the override that rebuilds the chosen variant by hand."""
    csv = out / EXCLUSION_CSV
    steps_frame(found).to_csv(csv, index=False, float_format="%.6f")
    nodes = found.chosen.excluded
    txt = out / EXCLUDED_TXT
    override = "quant.nodes_to_exclude=[" + ",".join(nodes) + "]"
    txt.write_text("".join(f"{node}\n" for node in nodes) + f"# the same variant by hand: {override}\n")
    return [csv, txt]
