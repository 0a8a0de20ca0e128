"""FA-SGD / CF-SGD: hand-computed steps, sparse == dense, FBGEMM's counter mode, state round trips."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from embedlab.optim.frequency import CFSGD, FASGD, count_ids, id_counts, row_learning_rate


def _bag(rows: int = 5, dim: int = 2, sparse: bool = True) -> torch.nn.EmbeddingBag:
    emb = torch.nn.EmbeddingBag(rows, dim, mode="sum", sparse=sparse)
    with torch.no_grad():
        emb.weight.copy_(torch.arange(rows * dim, dtype=torch.float32).reshape(rows, dim))
    return emb


def test_row_learning_rate_formula():
    c = torch.tensor([0, 1, 4, 100])
    assert torch.allclose(row_learning_rate(1.0, c), torch.tensor([1.0, 1.0, 0.5, 0.1]))
    assert torch.allclose(row_learning_rate(1.0, c, floor=4.0), torch.tensor([0.5, 0.5, 0.5, 0.1]))
    assert torch.allclose(
        row_learning_rate(1.0, c, exponent=1.0, max_lr=0.2), torch.tensor([0.2, 0.2, 0.2, 0.01])
    )


def test_cfsgd_hand_computed_steps_with_repeated_ids():
    emb = _bag()
    w0 = emb.weight.detach().clone()
    opt = CFSGD([emb.weight], lr=0.5)
    # batch 1: bags [1, 1, 3] and [3]; gradient of the sum of outputs: 1 per occurrence
    emb(torch.tensor([1, 1, 3, 3]), torch.tensor([0, 3])).sum().backward()
    opt.step()
    # row 1 occurs twice (grad 2), row 3 twice (grad 2); both counted once (unit batch)
    expect = w0.clone()
    expect[1] -= 0.5 * 2 / math.sqrt(1)
    expect[3] -= 0.5 * 2 / math.sqrt(1)
    assert torch.allclose(emb.weight, expect)
    opt.zero_grad()
    emb(torch.tensor([1]), torch.tensor([0])).sum().backward()
    opt.step()
    expect[1] -= 0.5 * 1 / math.sqrt(2)
    assert torch.allclose(emb.weight, expect)
    assert opt.state[emb.weight]["count"].tolist() == [0, 2, 0, 1, 0]
    assert opt.state[emb.weight]["count"].dtype == torch.int32


@pytest.mark.parametrize(
    "unit, counts", [("occurrence", [0, 2, 0, 2, 0]), ("sample", [0, 1, 0, 2, 0])]
)
def test_cfsgd_other_units_need_observe(unit, counts):
    emb = _bag()
    opt = CFSGD([emb.weight], lr=1.0, unit=unit)
    idx, off = torch.tensor([1, 1, 3, 3]), torch.tensor([0, 3])
    emb(idx, off).sum().backward()
    with pytest.raises(RuntimeError, match="observe"):
        opt.step()
    w0 = emb.weight.detach().clone()
    opt.observe(emb.weight, idx, torch.tensor([0, 3, 4]))
    opt.step()
    assert opt.state[emb.weight]["count"].tolist() == counts
    expect = w0.clone()
    expect[1] -= 2 / math.sqrt(counts[1])
    expect[3] -= 2 / math.sqrt(counts[3])
    assert torch.allclose(emb.weight, expect)


def test_id_counts_units():
    idx, off = torch.tensor([2, 2, 0, 2]), torch.tensor([0, 3, 4])
    assert id_counts(idx, 4, "occurrence").tolist() == [1, 0, 3, 0]
    assert id_counts(idx, 4, "sample", off).tolist() == [1, 0, 2, 0]


@pytest.mark.parametrize("cls", ["cf", "fa"])
def test_sparse_path_equals_dense_reference(cls):
    torch.manual_seed(0)
    freqs = [torch.tensor([3.0, 1.0, 7.0, 0.0, 2.0, 5.0, 1.0, 9.0])]
    a, b = _bag(8, 3, sparse=True), _bag(8, 3, sparse=False)
    make = (lambda p: CFSGD(p, lr=0.3)) if cls == "cf" else (lambda p: FASGD(p, freqs, lr=0.3))
    oa, ob = make([a.weight]), make([b.weight])
    for _ in range(5):
        idx = torch.randint(0, 8, (10,))
        off = torch.tensor([0, 4, 7])
        g = torch.randn(3, 3)
        for emb, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            emb(idx, off).backward(g)
            opt.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6)


def test_fasgd_uses_given_frequencies_and_validates():
    emb = _bag(3, 1)
    opt = FASGD([emb.weight], [np.array([4.0, 0.0, 100.0])], lr=1.0)
    w0 = emb.weight.detach().clone()
    emb(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2])).sum().backward()
    opt.step()
    assert torch.allclose(emb.weight - w0, torch.tensor([[-0.5], [-1.0], [-0.1]]))
    with pytest.raises(ValueError, match="rows"):
        FASGD([emb.weight], [np.ones(4)])
    with pytest.raises(ValueError, match="one frequency vector per parameter"):
        FASGD([emb.weight], [])
    with pytest.raises(ValueError, match="lr"):
        CFSGD([emb.weight], lr=0.0)
    with pytest.raises(ValueError, match="unit"):
        CFSGD([emb.weight], unit="epoch")


def test_counters_survive_checkpoint_and_resume():
    torch.manual_seed(1)
    a = _bag(6, 2)
    oa = CFSGD([a.weight], lr=0.2)
    batches = [
        (torch.randint(0, 6, (6,)), torch.tensor([0, 2, 4]), torch.randn(3, 2)) for _ in range(6)
    ]
    for idx, off, g in batches[:3]:
        oa.zero_grad()
        a(idx, off).backward(g)
        oa.step()
    buf = io.BytesIO()
    torch.save({"w": a.state_dict(), "o": oa.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b = _bag(6, 2)
    b.load_state_dict(saved["w"])
    ob = CFSGD([b.weight], lr=0.2)
    ob.load_state_dict(saved["o"])
    assert ob.state[b.weight]["count"].dtype == torch.int32
    assert torch.equal(ob.state[b.weight]["count"], oa.state[a.weight]["count"])
    for idx, off, g in batches[3:]:
        for emb, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            emb(idx, off).backward(g)
            opt.step()
    assert torch.equal(a.weight, b.weight)
    assert oa.state_bytes() == 6 * 4


def test_fbgemm_counter_sgd_matches_cfsgd_step_by_step():
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
        ComputeDevice,
        SplitTableBatchedEmbeddingBagsCodegen,
    )

    from embedlab.optim.frequency import fbgemm_counter_sgd_params

    params = fbgemm_counter_sgd_params(0.1)
    opt_type, lr = params.pop("optimizer"), params.pop("learning_rate")
    tbe = SplitTableBatchedEmbeddingBagsCodegen([(10, 4, EmbeddingLocation.HOST, ComputeDevice.CPU)], optimizer=opt_type,
                                                learning_rate=lr, pooling_mode=PoolingMode.SUM, **params)  # fmt: skip
    emb = torch.nn.EmbeddingBag(10, 4, mode="sum", sparse=True)
    with torch.no_grad():
        emb.weight.copy_(tbe.split_embedding_weights()[0])
    cf = CFSGD([emb.weight], lr=0.1)
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        idx = torch.randint(0, 10, (12,), generator=g)
        off = torch.arange(0, 13, 3)
        grad = torch.randn(4, 4, generator=g)
        tbe(idx, off).backward(grad)
        cf.zero_grad()
        emb(idx, off[:-1]).backward(grad)
        cf.step()
        assert torch.allclose(tbe.split_embedding_weights()[0], emb.weight, atol=1e-6)
    row_counter = tbe.split_optimizer_states()[0][2]
    assert row_counter.tolist() == cf.state[emb.weight]["count"].float().tolist()
    with pytest.raises(ValueError, match="0.5"):
        fbgemm_counter_sgd_params(0.1, exponent=1.0)


def test_count_ids_over_a_dataset():
    cols = [np.array([0, 2, 2, 1]), np.array([[1, 1, -1], [0, -1, -1], [1, 2, 1], [-1, -1, -1]])]
    occ = count_ids(cols, [3, 4])
    assert occ[0].tolist() == [1, 1, 2] and occ[1].tolist() == [1, 4, 1, 0]
    smp = count_ids(cols, [3, 4], unit="sample")
    assert smp[1].tolist() == [1, 2, 1, 0]
    with pytest.raises(ValueError, match="batch"):
        count_ids(cols, [3, 4], unit="batch")


def test_registry_names_options_and_kernels():
    from embedlab.errors import UserError
    from embedlab.optim.registry import get_optimizer
    from embedlab.options import parse_options

    raw = parse_options("exponent=0.5, unit=batch,max_lr=1", "optimizer")
    assert raw == {"exponent": "0.5", "unit": "batch", "max_lr": "1"}
    assert get_optimizer("cf-sgd").coerce_options(raw) == {
        "exponent": 0.5,
        "unit": "batch",
        "max_lr": 1.0,
    }
    with pytest.raises(UserError, match="optimizer 'cf-sgd' option exponent: bad value 'x'"):
        get_optimizer("cf-sgd").coerce_options({"exponent": "x"})
    cf = get_optimizer("cf-sgd")
    assert cf.kernel("auto", {}) == "fused"
    assert cf.kernel("auto", {"unit": "occurrence"}) == "sparse"
    assert cf.kernel("auto", {"exponent": 1.0}) == "sparse"
    assert get_optimizer("fa-sgd").kernel("auto", {}) == "sparse"
    with pytest.raises(UserError, match="unknown optimizer 'cfsgd'"):
        get_optimizer("cfsgd")
