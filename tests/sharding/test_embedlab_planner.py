"""EmbedlabPlanner: devices, memory, optimizer and pooling factors from TorchRec's own
objects (topology, sharders' fused_params, ParameterConstraints), and one warning for
each thing it has to assume."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("torchrec")

from fbgemm_gpu.split_embedding_configs import EmbOptimType  # noqa: E402
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder  # noqa: E402
from torchrec.distributed.planner import ParameterConstraints  # noqa: E402
from torchrec.distributed.planner.types import Topology  # noqa: E402

from embedlab.errors import UserError  # noqa: E402
from embedlab.sharding.planners import Infeasible  # noqa: E402
from embedlab.sharding.torchrec_adapter import (  # noqa: E402
    UNLIMITED_MEMORY,
    EmbedlabPlanner,
    embedding_bag_collection_for_task,
    optimizer_name,
)
from embedlab.sharding.types import Table, Task  # noqa: E402


def _ebc(rows=(1000, 2000, 3000, 4000), dim=16, bpe=4):  # noqa: ANN001, ANN202
    task = Task("e", 1, 1, 1, tuple(Table(f"t{i}", r, dim, 1.0, bpe) for i, r in enumerate(rows)))
    return embedding_bag_collection_for_task(task, "meta")


def _sharder(opt=None):  # noqa: ANN001, ANN202
    fp = {"learning_rate": 0.1}
    if opt is not None:
        fp["optimizer"] = opt
    return EmbeddingBagCollectionSharder(fused_params=fp)


PF = {f"t{i}": 2.0 for i in range(4)}


def _planner_warnings(record) -> list[str]:  # noqa: ANN001
    return [str(w.message) for w in record if str(w.message).startswith("EmbedlabPlanner")]


def test_topology_gives_devices_and_memory():
    cpu = Topology(world_size=3, compute_device="cpu", ddr_cap=5_000_000, local_world_size=3)
    p = EmbedlabPlanner("size_greedy", topology=cpu, pooling_factors=PF)
    assert (p.world_size, p.device_memory_bytes, p.device_type, p.local_size) == (
        3,
        5_000_000,
        "cpu",
        3,
    )
    sp = p.plan(_ebc(), [_sharder(EmbOptimType.EXACT_SGD)])
    assert p.last_task.num_devices == 3 and p.last_task.device_memory_bytes == 5_000_000
    assert sorted({r for ps in sp.plan[""].values() for r in ps.ranks}) == [0, 1, 2]
    # CUDA: HBM is the memory (not the host DDR); placements name the GPUs
    gpu = Topology(world_size=2, compute_device="cuda", hbm_cap=7_000_000, ddr_cap=10**12)
    p = EmbedlabPlanner("size_greedy", topology=gpu, pooling_factors=PF)
    assert (p.world_size, p.device_memory_bytes, p.device_type) == (2, 7_000_000, "cuda")
    sp = p.plan(_ebc(), [_sharder(EmbOptimType.EXACT_SGD)])
    assert {str(ps.sharding_spec.shards[0].placement) for ps in sp.plan[""].values()} == {
        "rank:0/cuda:0",
        "rank:1/cuda:1",
    }
    # explicit arguments win over the topology; a contradicting world size is an error
    assert (
        EmbedlabPlanner("random", topology=cpu, device_memory_bytes=123).device_memory_bytes == 123
    )
    with pytest.raises(UserError, match="differs from the topology"):
        EmbedlabPlanner("random", 2, topology=cpu)
    with pytest.raises(UserError, match="world_size or a TorchRec topology"):
        EmbedlabPlanner("random")


def test_constraints_give_pooling_factors():
    cons = {
        "t0": ParameterConstraints(pooling_factors=[2.0, 3.5]),
        "t1": ParameterConstraints(pooling_factors=[7.0]),
    }
    p = EmbedlabPlanner("lookup_greedy", 2, device_memory_bytes=10**8, constraints=cons,
                        pooling_factors={"t2": 4.0, "t3": 1.0})  # fmt: skip
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        p.plan(_ebc(), [_sharder(EmbOptimType.EXACT_SGD)])
    assert _planner_warnings(rec) == []  # nothing assumed
    pf = {t.name: t.pooling_factor for t in p.last_task.tables}
    assert pf == {"t0": 5.5, "t1": 7.0, "t2": 4.0, "t3": 1.0}
    # pooling_factors wins over constraints for the same table
    p = EmbedlabPlanner(
        "lookup_greedy", 2, device_memory_bytes=10**8, constraints=cons, pooling_factors={"t0": 9.0}
    )
    p.plan(_ebc(), [_sharder(EmbOptimType.EXACT_SGD)])
    assert p.last_task.table("t0").pooling_factor == 9.0


@pytest.mark.parametrize(
    "opt, name",
    [
        (EmbOptimType.EXACT_SGD, "sgd"),
        (EmbOptimType.EXACT_ROWWISE_ADAGRAD, "rowwise_adagrad"),
        (EmbOptimType.EXACT_ADAGRAD, "adagrad"),
        (EmbOptimType.ADAM, "adam"),
    ],
)
def test_optimizer_from_the_sharders_fused_params(opt, name):
    assert optimizer_name(opt) == name
    p = EmbedlabPlanner("size_greedy", 2, device_memory_bytes=10**8, pooling_factors=PF)
    p.plan(_ebc(), [_sharder(opt)])
    assert p.last_task.optimizer == name
    per_device = p.last_plan.device_memory(p.last_task)
    weights = sum(t.size_bytes for t in p.last_task.tables)
    state = {
        "sgd": 0,
        "rowwise_adagrad": 4 * 10_000,
        "adagrad": 4 * 16 * 10_000,
        "adam": 8 * 16 * 10_000,
    }
    assert sum(per_device) == weights + state[name]


def test_optimizer_argument_and_fbgemm_default():
    # the argument wins over the sharder
    p = EmbedlabPlanner(
        "size_greedy", 2, device_memory_bytes=10**8, pooling_factors=PF, optimizer="adagrad"
    )
    p.plan(_ebc(), [_sharder(EmbOptimType.EXACT_SGD)])
    assert p.last_task.optimizer == "adagrad"
    p = EmbedlabPlanner("size_greedy", 2, device_memory_bytes=10**8, pooling_factors=PF,
                        optimizer=EmbOptimType.EXACT_ROWWISE_ADAGRAD)  # fmt: skip
    p.plan(_ebc(), [])
    assert p.last_task.optimizer == "rowwise_adagrad"
    # an EBC sharder naming no optimizer: FBGEMM's default, exact SGD (nothing assumed)
    p = EmbedlabPlanner("size_greedy", 2, device_memory_bytes=10**8, pooling_factors=PF)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        p.plan(_ebc(), [_sharder()])
    assert p.last_task.optimizer == "sgd" and _planner_warnings(rec) == []
    with pytest.raises(UserError, match="accounts the state of"):
        EmbedlabPlanner("random", 2, optimizer=EmbOptimType.LAMB)
    with pytest.raises(UserError, match="accounts the state of"):
        EmbedlabPlanner("random", 2, pooling_factors=PF).plan(
            _ebc(), [_sharder(EmbOptimType.PARTIAL_ROWWISE_ADAM)]
        )


def test_optimizer_state_decides_feasibility():
    """Weights fit on two devices, weights + Adam state (3x the fp32 weights) do not."""
    ebc = _ebc()
    weights = 16 * 4 * 10_000
    mem = weights // 2 + 4 * 16 * 4000  # room for half the weights and a bit
    p = EmbedlabPlanner("size_greedy", 2, device_memory_bytes=mem, pooling_factors=PF)
    p.plan(ebc, [_sharder(EmbOptimType.EXACT_SGD)])
    with pytest.raises(Infeasible, match="table 't3' .* with its adam state"):
        p.plan(ebc, [_sharder(EmbOptimType.ADAM)])


def test_fallbacks_warn_once_naming_what_was_assumed():
    p = EmbedlabPlanner("size_greedy", 2, pooling_factors={"t0": 3.0})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        p.plan(_ebc(), [])
    msgs = _planner_warnings(rec)
    assert len(msgs) == 3, msgs
    memory = next(m for m in msgs if "device_memory_bytes" in m)
    assert (
        "neither device_memory_bytes nor a topology" in memory and str(UNLIMITED_MEMORY) in memory
    )
    pooling = next(m for m in msgs if "pooling factor" in m)
    assert "'t1', 't2', 't3'" in pooling and "'t0'" not in pooling and "1.0" in pooling
    optimizer = next(m for m in msgs if "optimizer" in m and m not in (memory, pooling))
    assert "no optimizer state" in optimizer
    assert p.last_task.device_memory_bytes == UNLIMITED_MEMORY and p.last_task.optimizer is None
    assert p.last_task.table("t1").pooling_factor == 1.0
    # with everything given, nothing is assumed and nothing is said
    p = EmbedlabPlanner("size_greedy", 2, device_memory_bytes=10**8, pooling_factors=PF)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        p.plan(_ebc(), [_sharder(EmbOptimType.EXACT_ADAGRAD)])
    assert _planner_warnings(rec) == []


def test_optimizer_attached_in_backward_is_read():
    import torch
    from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward

    ebc = _ebc()
    apply_optimizer_in_backward(torch.optim.Adagrad, ebc.parameters(), {"lr": 0.1})
    p = EmbedlabPlanner("size_greedy", 2, device_memory_bytes=10**8, pooling_factors=PF)
    p.plan(ebc, [_sharder(EmbOptimType.EXACT_SGD)])  # TorchRec lets the attached one win
    assert p.last_task.optimizer == "adagrad"
