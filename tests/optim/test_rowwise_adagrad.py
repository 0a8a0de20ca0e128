import torch

from embedlab.optim.registry import get_optimizer
from embedlab.optim.rowwise_adagrad import RowWiseAdagrad


def test_matches_brute_force_and_touches_only_batch_rows():
    torch.manual_seed(0)
    emb = torch.nn.EmbeddingBag(10, 4, mode="sum", sparse=True)
    w0 = emb.weight.detach().clone()
    opt = RowWiseAdagrad(emb.parameters(), lr=0.5, eps=1e-8)
    acc = torch.zeros(10)
    w = w0.clone()
    for idx in ([1, 3, 3], [3, 7]):
        opt.zero_grad()
        x = torch.tensor(idx)
        (emb(x, torch.tensor([0])) ** 2).sum().backward()
        g = emb.weight.grad.to_dense()
        rows = sorted(set(idx))
        for r in rows:
            acc[r] += (g[r] ** 2).mean()
            w[r] -= 0.5 * g[r] / (acc[r].sqrt() + 1e-8)
        opt.step()
        torch.testing.assert_close(emb.weight.detach(), w)
    untouched = [r for r in range(10) if r not in (1, 3, 7)]
    torch.testing.assert_close(emb.weight.detach()[untouched], w0[untouched])


def test_registry_kernels():
    assert get_optimizer("adam").kernel() == "sparse"
    assert get_optimizer("rowwise_adagrad").kernel() == "fused"


def test_dims_fbgemm_cannot_fuse_fall_back_to_the_sparse_kernel():
    import pytest

    from embedlab.errors import UserError

    ada = get_optimizer("adagrad")
    assert ada.kernel("auto", {}, dim=8) == "fused"
    assert ada.kernel("auto", {}, dim=2) == "sparse"  # FBGEMM's TBE needs dim % 4 == 0
    with pytest.raises(UserError, match="divisible by 4"):
        ada.kernel("fused", {}, dim=6)
