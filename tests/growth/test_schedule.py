"""Phase schedules of the growth/pruning schemes."""

from __future__ import annotations

import pytest

from embedlab.errors import UserError
from embedlab.growth.schedule import GrowthSchedule, Phase


def test_growth_pruning_alternates_and_ends_dense():
    s = GrowthSchedule(sparsity=0.5, warmup=0.1, cycles=2, sparse_fraction=0.7, state="zero")
    ph = s.phases(100)
    # warm-up 10 steps, two cycles of 45 steps, each 31 sparse (0.7 * 45 rounded) then 14 dense
    assert ph == [Phase(0, 10, False), Phase(10, 41, True), Phase(41, 55, False), Phase(55, 86, True),
                  Phase(86, 100, False)]  # fmt: skip
    assert ph[0].start == 0 and ph[-1].end == 100 and not ph[-1].sparse
    assert all(a.end == b.start for a, b in zip(ph[:-1], ph[1:]))
    assert s.sparse_steps(100) == 62
    assert not s.sparse_at(9, 100) and s.sparse_at(10, 100) and not s.sparse_at(99, 100)


@pytest.mark.parametrize("total", [1, 2, 3, 7, 50, 1001])
def test_every_step_belongs_to_one_phase_and_growth_ends_dense(total):
    for scheme in ("dense", "growth-pruning", "prune-only"):
        ph = GrowthSchedule(scheme=scheme).phases(total)
        assert ph[0].start == 0 and ph[-1].end == total
        assert all(
            a.end == b.start and p.end > p.start for a, b in zip(ph[:-1], ph[1:]) for p in (a, b)
        )
        if scheme != "prune-only":
            assert not ph[-1].sparse


def test_prune_only_spends_the_same_sparse_steps_and_ends_sparse():
    g, p = GrowthSchedule(), GrowthSchedule(scheme="prune-only")
    assert p.sparse_steps(1000) == g.sparse_steps(1000)
    assert p.phases(1000)[-1].sparse and p.phases(1000)[-1].end == 1000
    assert GrowthSchedule(scheme="dense").sparse_steps(1000) == 0


def test_options_are_parsed_and_checked():
    s = GrowthSchedule.from_options(
        "growth-pruning", {"sparsity": 0.75, "cycles": 3.0, "init": "restore"}
    )
    assert s.sparsity == 0.75 and s.cycles == 3 and s.init == "restore"
    for bad in ({"sparsity": 1.0}, {"cycles": 0}, {"init": "zero"}, {"score": "taylor"}, {"depth": 2},
                {"layers": "middle"}, {"sparsity": "half"}):  # fmt: skip
        with pytest.raises(UserError):
            GrowthSchedule.from_options("growth-pruning", bad)
    with pytest.raises(UserError, match="unknown scheme"):
        GrowthSchedule.from_options("lottery", {})
