"""The reachability check's search (benchmarks/sharding_single_cost_balance.py): its descent."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.sharding_single_cost_balance import proxy_descent
from embedlab.sharding.comm import CommModel
from embedlab.sharding.dreamshard.agent import task_tensors
from embedlab.sharding.types import Table, Task


def _task(costs, devices, memory=10**9):
    tables = tuple(Table(f"t{i}", 1000 + i, 16, 2.0, 4) for i in range(len(costs)))
    return Task("bal", devices, memory, 256, tables)


def test_descent_balances_additive_costs_and_never_raises_the_proxy():
    rng = np.random.default_rng(0)
    single = torch.tensor(rng.uniform(1, 10, size=(12, 2)))
    task = _task(single, 3)
    tt = task_tensors(task)
    comm = CommModel(0.0, 0.0)  # compute only: the proxy is kappa * (max fwd sum + max bwd sum)
    start = np.zeros(12, dtype=np.int64)  # everything on one device
    place, proxy = proxy_descent(start, single, tt, comm, 256, kappa=1.0)
    load = torch.zeros(3, 2, dtype=torch.float64).index_add_(0, torch.as_tensor(place), single)
    assert abs(proxy - float(load[:, 0].max() + load[:, 1].max())) < 1e-9
    assert proxy < float(single.sum()) / 2  # far below the start (the sum of all costs)
    assert proxy <= float(single.sum()) / 3 * 1.25  # close to an even split


def test_descent_keeps_memory():
    # one table of cost 10 and five of 2: the unconstrained balance is 10 | 2+2+2+2+2, but a
    # device holds at most 4 tables, so the best plan within memory is 10+2 | 2+2+2+2
    single = torch.tensor([[5.0, 5.0]] + [[1.0, 1.0]] * 5, dtype=torch.float64)
    task = _task(single, 2)
    tt = task_tensors(task)
    tt.memory = 4.5 * float(tt.sizes.max())  # 4 tables fit on a device, 5 do not
    start = np.array([0, 0, 0, 1, 1, 1])
    place, proxy = proxy_descent(start, single, tt, CommModel(0.0, 0.0), 256, kappa=1.0)
    assert np.bincount(place, minlength=2).max() <= 4
    assert abs(proxy - 12.0) < 1e-9
