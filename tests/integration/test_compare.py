"""A real sweep is a finished parent run with one finished child per variant."""

from __future__ import annotations

from helpers import parents


def test_sweep_is_a_finished_parent_with_three_children(sweep):
    workdir, children = sweep
    (parent,) = [r for _, r in parents(workdir).iterrows()][:1]
    assert parent.status == "FINISHED"
    assert "quant=fp32,dynamic,static" in parent["tags.sweep.overrides"]
    assert parent["tags.git_commit"]
    first = children[children["tags.mlflow.parentRunId"] == parent.run_id]
    assert first["tags.mlflow.runName"].tolist()[:3] == ["fp32", "int8_dynamic", "int8_static_qdq_minmax_100"]
