"""The ``blender-quick`` experiment runs on the shipped default generator."""

from __future__ import annotations

import torch

from embedlab.experiments.registry import ExperimentContext, all_experiments


def test_blender_quick_runs_and_scores_every_operator(tmp_path):
    torch.set_num_threads(1)
    res = all_experiments()["blender-quick"].run(ExperimentContext(out=tmp_path, quick=True, seeds=(0,)))
    rows = res.tables[0].rows
    assert {r[1] for r in rows} >= {"union", "intersection", "mean", "sum", "blend"}
    assert all(0.0 <= v <= 1.0 for r in rows for v in r[2:])
    assert (tmp_path / "blender_operators.png").is_file()
    assert set(res.metrics) == {"union_any_minus_mean", "intersection_precision_minus_mean"}
