"""The release gate: `compare.py release_gate=true` fails a pipeline step unless the rule recommends a variant, and
`release_gate.variant=NAME` unless each named variant passes the rule; one line per failing variant says why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from facequant.config.sections import ConfigError
from facequant.report.rule import Rule
from facequant.report.table import groups, variant_table
from facequant.schema import RunRecord

GATE_FAILED = 2  # the exit status of a failed gate
COULD_NOT_JUDGE = 1  # an error (no runs, a bad setting), with one message naming it


def gated_variants(gate: object) -> tuple[str, ...] | None:
    """The gate setting read: None (off), () for gate=true (a recommended variant must exist), or the names of
    gate.variant=NAME or [A,B] (each must pass the rule)."""
    if isinstance(gate, bool):
        return () if gate else None
    if isinstance(gate, Mapping) and set(gate) <= {"variant"}:
        names = gate.get("variant")
        if names is None:
            return None
        if isinstance(names, str):
            return (names,)
        if isinstance(names, Sequence) and names and all(isinstance(n, str) for n in names):
            return tuple(names)
    raise ConfigError(
        f"release_gate={gate!r}: use release_gate=true, or release_gate.variant=NAME or release_gate.variant=[A,B]"
    )


def _missing(name: str, runs: Sequence[RunRecord], names: Sequence[str]) -> str:
    """Why a named variant has no row: its runs did not finish, or the selection has none by that name."""
    unfinished = [run for run in runs if run.name == name and not run.finished]
    if unfinished:
        run = unfinished[-1]
        return f"its run {run.run_id} is {run.status} ({run.error or 'no error recorded'})"
    return f"no run of that name in the selection, which has {', '.join(names) or 'no finished run'}"


def gate_failures(runs: Sequence[RunRecord], rule: Rule, variants: Sequence[str] = ()) -> list[str]:
    """One line per variant that fails the gate, saying why; empty when it passes. Without variants the gate asks
    for a recommended variant, so every quantized variant fails it when none passes the rule."""
    split = groups([run for run in runs if run.finished])
    if len(split) != 1:
        return [f"the selection holds {len(split)} model/dataset groups, not one; narrow it with filter=..."]
    table = variant_table(split[0])
    if table.baseline is None:
        return ["the selection has no FP32 run, so no drop can be measured: run quant=fp32 in the same sweep"]
    if not variants:
        if rule.choose(table) is not None:
            return []
        if not table.quantized:
            return ["the selection has no quantized variant to recommend"]
        return [f"{row.label}: {'; '.join(rule.breaks(row))}" for row in table.quantized]
    failures = []
    for name in variants:
        rows = [row for row in table.rows if name in (row.label, row.run.name)]
        if not rows:
            failures.append(f"{name}: {_missing(name, runs, [row.label for row in table.rows])}")
        failures += [f"{row.label}: {'; '.join(rule.breaks(row))}" for row in rows if rule.breaks(row)]
    return failures
