"""quant.exclude=auto: the node ranking and search on a synthetic model with one tensor made sensitive (real
quantization, real SQNR), its settings, and the report of its steps."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnxruntime.quantization import TensorData, save_tensors_data

from facequant.config.running import ExclusionConfig
from facequant.config.sections import CalibrationConfig, ConfigError, QuantConfig
from facequant.evaluation.stats import Interval
from facequant.quant.exclusion import Step, exclusion_artifacts, node_ranking, schedule, search, steps_frame, unmet
from facequant.quant.quantize import build_variant, calibration_ranges
from facequant.quant.sensitivity import measure
from facequant.report import Rule
from facequant.report.document import build_report
from facequant.report.exclusion import read_search
from facequant.runtime import sessions as runtime
from facequant.schema import EXCLUDED_TXT, EXCLUSION_CSV, Metric, Param
from helpers import SENSITIVE, SPEC, settings, static, synthetic
from helpers import fp32 as fp32_run

NO_DROP = Interval(0.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def sensitive(tmp_path_factory):
    """(fp32 model, ranges file with SENSITIVE's range 100x too wide, calibration settings, held-out faces)."""
    rng = np.random.default_rng(0)
    tmp = tmp_path_factory.mktemp("exclusion")
    fp32 = synthetic(tmp / "fp32.onnx", rng)
    calibration = CalibrationConfig(num_samples=16, batch_size=4)
    ranges = calibration_ranges(fp32, rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8), SPEC, calibration)
    assert float(np.max(ranges[SENSITIVE].range_value[1])) < 3  # the values it reaches
    ranges[SENSITIVE] = TensorData(lowest=np.array(0, np.float32), highest=np.array(200, np.float32))
    save_tensors_data(ranges, tmp / "ranges.json")
    return fp32, tmp / "ranges.json", calibration, rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)


def test_the_search_keeps_the_sensitive_tensor_in_float_first_and_stops_when_the_gate_holds(sensitive, tmp_path):
    fp32, ranges, calibration, faces = sensitive
    reference = runtime.run(runtime.session(fp32), runtime.preprocess(faces, SPEC))

    def build(nodes: tuple[str, ...]):
        target = tmp_path / f"excl-{len(nodes)}.onnx"
        quant = QuantConfig("static", per_channel=True, nodes_to_exclude=nodes)
        build_variant(fp32, target, {"nodes": nodes}, quant, calibration, lambda: ranges, (1, 3, 8, 8))
        return target

    table = measure(fp32, build(()), faces, SPEC).table
    ranked = node_ranking(onnx.load(str(fp32)).graph, table)
    # b.out's producer (Conv b, through the Relu folded into its range) and its consumer c share its SQNR
    assert ranked[:3] == ["b", "b.relu", "c"] and set(ranked) == {"a", "a.relu", "b", "b.relu", "c", "c.relu", "pool"}

    def validate(nodes: tuple[str, ...]) -> Step:
        """The largest output error against FP32 stands in for the accuracy drop."""
        error = float(
            np.abs(runtime.run(runtime.session(build(nodes)), runtime.preprocess(faces, SPEC)) - reference).max()
        )
        return Step(nodes, Interval(error, error, error), NO_DROP, 1.0, Interval(1.0, 1.0, 1.0), 0.1)

    gate = ExclusionConfig(max_drop=0.04, max_excluded=8, max_steps=5)
    found = search(ranked, validate, gate)
    errors = [step.accuracy_drop.high for step in found.steps]
    # doubling holds at 4 nodes; bisection then finds that the 3 nodes around b.out suffice
    assert [len(step.excluded) for step in found.steps] == [0, 1, 2, 4, 3]
    assert errors[0] == errors[1] == errors[2] > 0.08 > 0.04 > errors[3] == pytest.approx(errors[4], abs=0.01)
    assert found.met and found.chosen.excluded == ("b", "b.relu", "c")
    kept = onnx.load(str(tmp_path / "excl-3.onnx")).graph
    assert SENSITIVE not in {node.input[0] for node in kept.node if node.op_type == "QuantizeLinear"}

    frame = steps_frame(found)
    assert frame.excluded.tolist() == [0, 1, 2, 4, 3] and frame.gate_holds.tolist() == [False, False, False, True, True]
    paths = exclusion_artifacts(found, tmp_path)
    assert [p.name for p in paths] == [EXCLUSION_CSV, EXCLUDED_TXT]
    lines = paths[1].read_text().splitlines()
    assert lines[:3] == ["b", "b.relu", "c"] and lines[3].endswith("quant.nodes_to_exclude=[b,b.relu,c]")


def test_a_search_that_spends_its_budget_says_so_and_keeps_the_most_nodes_in_float():
    def never(nodes: tuple[str, ...]) -> Step:
        return Step(nodes, Interval(0.002, 0.001, 0.003), Interval(0.05, 0.02, 0.08), 1.0, NO_DROP, 0.1)

    found = search([f"n{i}" for i in range(10)], never, ExclusionConfig(max_excluded=3, max_steps=9))
    assert [len(step.excluded) for step in found.steps] == [0, 1, 2, 3] and not found.met
    message = unmet(found)
    assert "with 3 node(s) in float" in message and "TAR@FAR=1e-3 drop 5.00 pt" in message
    assert "accuracy" not in message and "exclusion.max_excluded=3" in message


def test_the_schedule_doubles_within_the_budget():
    assert schedule(100, ExclusionConfig()) == [0, 1, 2, 4, 8, 16, 32, 64]
    assert schedule(5, ExclusionConfig()) == [0, 1, 2, 4, 5]
    assert schedule(100, ExclusionConfig(max_steps=2)) == [0, 1, 2]
    assert schedule(0, ExclusionConfig()) == [0]


def test_exclude_auto_is_a_static_qdq_setting_of_its_own():
    auto = settings("quant=static", "quant.exclude=auto")
    plain = settings("quant=static")
    assert auto.variant_name == "int8_static_qdq_minmax_500_exclauto"
    assert auto.name_excluding(7) == "int8_static_qdq_minmax_500_excl7" and auto.name_excluding(0) == plain.variant_name
    assert auto.variant_key != plain.variant_key and "exclusion" in auto.as_dict()
    assert "exclusion" not in plain.as_dict()
    stricter = settings("quant=static", "quant.exclude=auto", "exclusion.max_drop=0.01")
    assert stricter.variant_key != auto.variant_key and stricter.exclusion.max_drop == 0.01
    assert settings("quant=static", "exclusion.max_drop=0.01").variant_key == plain.variant_key
    for overrides, message in (
        (("quant=dynamic", "+quant.exclude=auto"), "static QDQ"),
        (("quant=static", "quant.exclude=auto", "quant.nodes_to_exclude=[a]"), "drop quant.nodes_to_exclude"),
        (("quant=static", "quant.exclude=auto", "sensitivity=false"), "drop sensitivity=false"),
        (("quant=static", "quant.exclude=auto", "exclusion.impostor=100"), "exclusion.impostor=100"),
        (
            ("quant=static", "quant.exclude=auto", "exclusion.max_drop=1.5"),
            r"exclusion.max_drop=1.5 must be a fraction",
        ),
    ):
        with pytest.raises(ConfigError, match=message):
            settings(*overrides)


def test_the_old_gate_overrides_still_reach_the_exclusion_goal_with_a_warning(caplog):
    """The block was named gate; gate.KEY=VALUE keeps working for one release and says what to write instead."""
    with caplog.at_level(logging.WARNING):
        old = settings("quant=static", "quant.exclude=auto", "gate.max_drop=0.01", "gate.genuine=300")
    assert old.exclusion.max_drop == 0.01 and old.exclusion.genuine == 300
    assert (
        old.variant_key
        == settings(
            "quant=static", "quant.exclude=auto", "exclusion.max_drop=0.01", "exclusion.genuine=300"
        ).variant_key
    )
    assert "gate.max_drop/genuine is deprecated" in caplog.text and "use exclusion.max_drop/genuine" in caplog.text


def test_the_report_shows_each_search_step_and_the_nodes_kept_in_float(tmp_path):
    def step(count: int, drop: float) -> Step:
        return Step(
            tuple(f"n{i}" for i in range(count)),
            Interval(drop, drop - 0.002, drop + 0.002),
            NO_DROP,
            4.0,
            Interval(1.8, 1.7, 1.9),
            12.0,
        )

    found = search(
        [f"n{i}" for i in range(20)], lambda nodes: step(len(nodes), 0.02 / (1 + len(nodes))), ExclusionConfig()
    )
    # 0.02 / (1 + n) + 0.002 <= 0.005 from n = 6 on: doubling holds at 8, bisection finds 6
    assert [len(s.excluded) for s in found.steps] == [0, 1, 2, 4, 8, 6, 5] and found.met
    csv, txt = exclusion_artifacts(found, tmp_path)
    logged = {
        Metric.N_EXCLUDED: 6.0,
        Metric.EXCLUSION_GATE_MET: 1.0,
        Metric.N_VALIDATION_PAIRS: 11000.0,
        Metric.TIME_EXCLUDE: 95.0,
    }
    params = {Param.GATE_MAX_DROP: "0.005", Param.GATE_MAX_TAR_DROP: "0.01"}  # as runs before the rename
    searched = static("percentile", 500, 0.99, 1.8, logged=logged, extra=params, start=1)
    build_report(
        [fp32_run(), searched], {}, Rule(), tmp_path, "title", searches={searched.run_id: read_search(csv, txt)}
    )
    text = (tmp_path / "report.md").read_text()
    heads = [line for line in text.splitlines() if line.startswith("### ")]
    assert heads.index("### Accuracy-aware exclusion") == heads.index("### Per-tensor sensitivity") + 1
    assert "11000 validation pairs; goal accuracy drop <= 0.50 pt, TAR@FAR=1e-3 drop <= 1.00 pt" in text
    assert "the goal holds with 6 node(s) in float; search 95 s." in text
    assert "| 0 | 0 | 2.00 (<= 2.20) | 0.00 (<= 0.00) | 4.00 | 1.80x [1.70, 1.90] | fails | 12 |" in text
    assert (
        "| 4 | 8 | 0.22 (<= 0.42) |" in text and text.count("| holds |") == 2 and "| 6 | 5 | 0.33 (<= 0.53) |" in text
    )
    assert "Kept in float, worst first: `n0`, `n1`, `n2`, `n3`, `n4`, `n5` (all in" in text
    # runs since the block's rename log exclusion.*; a stricter goal shows as such (old runs above logged gate.*)
    renamed = {Param.EXCLUSION_MAX_DROP: "0.003", Param.EXCLUSION_MAX_TAR_DROP: "0.01"}
    newer = static("percentile", 500, 0.99, 1.8, logged=logged, extra=renamed, start=1)
    build_report([fp32_run(), newer], {}, Rule(), tmp_path, "title", searches={newer.run_id: read_search(csv, txt)})
    assert "goal accuracy drop <= 0.30 pt, TAR@FAR=1e-3 drop <= 1.00 pt" in (tmp_path / "report.md").read_text()
    plain = static("minmax", 500, 0.99, 1.8, start=2)
    build_report([fp32_run(), plain], {}, Rule(), tmp_path, "title")
    assert "### Accuracy-aware exclusion" not in (tmp_path / "report.md").read_text()


def test_exclude_auto_under_protocol_all_needs_a_pool_beyond_calibration():
    with pytest.raises(ConfigError, match=r"calibration_pool=500 leaves 0 beside calibration.num_samples=500"):
        settings("quant=static", "quant.exclude=auto", "dataset.protocol=all")
    assert settings(
        "quant=static", "quant.exclude=auto", "dataset.protocol=all", "dataset.calibration_pool=3000"
    ).sensitivity
