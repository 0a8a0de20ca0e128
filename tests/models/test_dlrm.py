from __future__ import annotations

import numpy as np
import pytest
import torch

from embedlab.data.registry import load_data
from embedlab.data.schema import make_batch
from embedlab.errors import UserError
from embedlab.models.dlrm import DLRM, DLRMConfig, dot_interaction, model_config


def test_dot_interaction_matches_brute_force():
    torch.manual_seed(0)
    dense, emb = torch.randn(3, 4), torch.randn(3, 5, 4)
    out = dot_interaction(dense, emb)
    assert out.shape == (3, 4 + 6 * 5 // 2)
    t = torch.cat([dense[:, None], emb], 1)
    brute = torch.stack(
        [torch.einsum("bd,bd->b", t[:, i], t[:, j]) for i in range(6) for j in range(i)], 1
    )
    assert brute.shape[1] == 15
    torch.testing.assert_close(out[:, 4:], brute)
    torch.testing.assert_close(out[:, :4], dense)


def test_kaggle_shapes_and_param_counts():
    cfg = model_config("kaggle")
    m = DLRM(13, [10] * 26, [f"C{i}" for i in range(26)], cfg)
    assert m.top[0].in_features == 367  # 16 + 27*26/2, as the reference
    assert [l.out_features for l in m.bottom if isinstance(l, torch.nn.Linear)] == [
        512,
        256,
        64,
        16,
    ]
    counts = m.parameter_counts()
    assert counts["embedding"] == 26 * 10 * 16
    assert counts["total"] == counts["embedding"] + counts["dense"]


@pytest.mark.parametrize("kernel", ["fused", "sparse", "dense"])
def test_forward_shapes_and_kernels_agree(synth_dir, kernel):
    data = load_data("synth", data_dir=synth_dir)
    s = data.schema
    batch = make_batch(data.train, np.arange(64), s)
    torch.manual_seed(0)
    ref = DLRM(
        s.num_dense, s.table_sizes, s.sparse_names, model_config("tiny"), embedding_kernel="fused"
    )
    m = DLRM(
        s.num_dense, s.table_sizes, s.sparse_names, model_config("tiny"), embedding_kernel=kernel
    )
    m.load_state_dict(ref.state_dict())
    out = m(batch.dense, batch.sparse)
    assert out.shape == (64,)
    torch.testing.assert_close(out, ref(batch.dense, batch.sparse), rtol=1e-5, atol=1e-5)


def test_sparse_kernel_gives_sparse_gradients(synth_dir):
    data = load_data("synth", data_dir=synth_dir)
    s = data.schema
    m = DLRM(
        s.num_dense, s.table_sizes, s.sparse_names, model_config("tiny"), embedding_kernel="sparse"
    )
    b = make_batch(data.train, np.arange(32), s)
    m(b.dense, b.sparse).sum().backward()
    assert all(p.grad.is_sparse for p in m.embedding_parameters())


def test_bad_sizes():
    with pytest.raises(UserError):
        DLRMConfig(embedding_dim=-1)
    with pytest.raises(UserError, match="valid"):
        model_config("huge")
    assert model_config("8:16-8:32").bottom_mlp == (16, 8)
    with pytest.raises(UserError, match="bad model size"):
        model_config("8:x:1")


def _fused_model_and_batch(synth_dir):
    data = load_data("synth", data_dir=synth_dir)
    s = data.schema
    torch.manual_seed(0)
    m = DLRM(
        s.num_dense, s.table_sizes, s.sparse_names, model_config("tiny"), embedding_kernel="fused"
    )
    return m, make_batch(data.train, np.arange(64), s)


def test_fused_fast_path_equals_torchrec_path(synth_dir):
    m, b = _fused_model_and_batch(synth_dir)
    assert m._tbe, "the fast path should be active for a KJT in table order"
    fast = m.pooled_embeddings(b.sparse)
    slow = m.sparse(b.sparse).values()
    assert torch.equal(fast, slow)
    perm = b.sparse.permute(list(range(len(m.feature_names)))[::-1])  # other key order: slow path
    torch.testing.assert_close(m.pooled_embeddings(perm), slow)  # still in table order


def test_custom_interaction_forward_and_gradcheck():
    from embedlab.models.dlrm import _DotInteraction, _tril_flat_indices

    torch.manual_seed(1)
    dense = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    emb = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    flat, inv = _tril_flat_indices(6)
    out = _DotInteraction.apply(dense, emb, flat, inv)
    torch.testing.assert_close(out, dot_interaction(dense, emb))
    assert torch.autograd.gradcheck(
        lambda d, e: _DotInteraction.apply(d, e, flat, inv), (dense, emb)
    )


def test_state_dict_keys_are_torchrec_names(synth_dir):
    m, _ = _fused_model_and_batch(synth_dir)
    keys = set(m.state_dict())
    assert "sparse.embedding_bags.t_C1.weight" in keys
    assert not any("_tbe" in k or "_tril" in k for k in keys)


def test_compile_falls_back_to_eager_with_warning(synth_dir, monkeypatch):
    data = load_data("synth", data_dir=synth_dir)
    s = data.schema
    torch.manual_seed(0)
    ref = DLRM(s.num_dense, s.table_sizes, s.sparse_names, model_config("tiny"))
    m = DLRM(s.num_dense, s.table_sizes, s.sparse_names, model_config("tiny"), compile_dense=True)
    m.load_state_dict(ref.state_dict())

    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    b = make_batch(data.train, np.arange(16), s)
    with pytest.warns(UserWarning, match="compile"):
        out = m(b.dense, b.sparse)
    torch.testing.assert_close(out, ref(b.dense, b.sparse))
