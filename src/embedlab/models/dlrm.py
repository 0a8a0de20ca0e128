"""DLRM (Naumov et al., 2019) on TorchRec's embedding-bag collections.

Architecture as the reference (``facebookresearch/dlrm``): a bottom MLP maps the dense
features to a vector of the embedding dimension; one embedding table per sparse feature
(sum pooling); the *dot* interaction takes the strict lower triangle of the Gram matrix
of ``[bottom_out, emb_1, ..., emb_F]`` and concatenates it with ``bottom_out``; a top MLP
maps that to one logit. Defaults are the reference's Criteo Kaggle configuration: dim 16,
bottom ``13-512-256-64-16``, top ``367-512-256-1``. ``forward`` returns logits (the
sigmoid lives in the loss, ``BCEWithLogitsLoss``, for numerical stability).

Initialization follows the reference for the MLPs: linear weights
``N(0, sqrt(2 / (fan_in + fan_out)))``, biases ``N(0, sqrt(1 / fan_out))``. Embeddings are
``U(-a, a)``: the reference's (and TorchRec's) ``a = sqrt(1/n)`` for a table of ``n`` rows
when ``embedding_init_bound`` is ``None``, else the given ``a`` (one value for all tables).
The reference's bound shrinks with the table: a table hashed to 10M rows starts at
``|w| < 3e-4``, where the dot interaction's gradient (proportional to the other embeddings)
nearly vanishes; the trainer's default is a fixed bound (see
:class:`embedlab.train.trainer.TrainConfig`).

The sparse part is one of two TorchRec modules (``embedding_kernel``):

* ``"fused"`` (default): ``FusedEmbeddingBagCollection``; FBGEMM's table-batched kernel
  applies the embedding optimizer inside the backward pass, so no embedding gradient is
  ever materialized. The embedding optimizer is then part of the model
  (:meth:`DLRM.fused_optimizer`).
* ``"sparse"``: ``EmbeddingBagCollection`` whose bags emit *sparse* gradients (only the
  rows of the batch), for optimizers FBGEMM cannot fuse on this device (Adam on CPU) and
  for custom embedding optimizers that must see each row's gradient.
* ``"dense"``: ``EmbeddingBagCollection`` with dense gradients (small tables only).
* ``"sharded"`` (:data:`SHARDED`, for :mod:`embedlab.train.distributed`): an
  ``EmbeddingBagCollection`` on the meta device that ``DistributedModelParallel`` shards
  and initializes (uniform in ``±sqrt(1/rows)``, from the table configs), with the
  embedding optimizer fused by TorchRec's sharder.

Throughput (``benchmarks/throughput.py``, results in ``benchmarks/results/throughput.json``;
Kaggle sizes, batch 2048, SGD, 26 tables capped at 1M rows, on a shared 2-core AVX-512
Xeon without AMX; each method timed alternately with the plain-PyTorch reference in the
same run). What was kept, and why:

* **Fused-kernel fast path** (:meth:`DLRM.pooled_embeddings`): when the KJT's keys are the
  tables' features in order (what :func:`embedlab.data.schema.make_batch` builds), its
  keys-major ``values``/``offsets`` go straight to FBGEMM's table-batched module,
  skipping ``FusedEmbeddingBagCollection.forward``'s ``to_dict()`` split and
  re-concatenation (about 2.5 of 69 ms per step, 1 thread). Same lookups, same int32
  casts: bit-identical.
* **Interaction** (:class:`_DotInteraction`): the triangle is gathered with one
  ``index_select`` on the flattened Gram matrix instead of 2-D advanced indexing, and the
  backward is one gather plus one ``bmm`` instead of ``index_put`` into zeros plus two
  ``bmm``: forward + backward 12.6 -> 5.3 ms in isolation (1 thread). Forward
  bit-identical; the gradient equals autograd's up to float rounding (relative ~1e-7).
  :func:`dot_interaction` itself (the reference formulation, which the plain-PyTorch
  baseline in ``benchmarks/`` also uses) is unchanged.
* **In-place ReLU** in the MLPs (each follows a Linear whose output nothing else keeps):
  about 1.7 ms less allocation and memory traffic per step.

  Together, against the plain-PyTorch reference (median of same-round ratios): 1.11x ->
  1.33x at 2 threads (56.2k vs 42.4k samples/s), 1.04x -> 1.21x at 1 thread (34.2k vs
  28.8k).
* ``compile_dense`` (**opt-in**, off by default): ``torch.compile`` of bottom MLP,
  interaction and top MLP. It compiles on this CPU (15-35 s cold, and again for every new
  batch size, grad mode and thread count) and falls back to eager with a warning if it
  fails. Measured gain over the eager path above: +3-5% at 2 threads (59.1k samples/s,
  1.38x), none at 1 thread: the remaining time is in GEMMs that Inductor also leaves to
  MKL (Inductor ``max-autotune`` was no faster). Too little for the compile time to be
  the default.
* ``autocast_bf16`` (**opt-in**, changes numerics: logits differ by ~1e-3): bf16 autocast
  of the dense part. On this CPU it is *slower* (0.74-0.87x the plain fp32 reference):
  without AMX, bf16 GEMMs run at ~83 GFLOP/s against ~160 for fp32 (1 thread). Meant for
  CPUs with AMX and for GPUs.

Not kept: chunking the interaction over the batch (no gain), a contiguous embedding
gradient from the interaction (four ``bmm`` cost more than FBGEMM's copy), glibc
``mallopt`` (few page faults to save). Where the time goes now (profiled, 1 thread, ms
per step): MLP 48.6 (its GEMMs ~40 at ~150 GFLOP/s, the rest bias, ReLU and their
gradients), interaction 6.5, FBGEMM lookup and fused-SGD backward 4.6, dense SGD 0.7;
overall 48% (2 threads) to 60% (1 thread) of the measured fp32 matmul peak. The model sets
no thread count: on a machine whose cores are busy with other jobs, use fewer intra-op
threads than free cores (``TrainConfig.threads``): FBGEMM's CPU backward slows down by
orders of magnitude (2.9 ms -> over 1 s per step measured) when one of its OpenMP threads
is descheduled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from embedlab.errors import UserError, unknown_name

KERNELS = ("fused", "sparse", "dense")
#: For ``DistributedModelParallel``: the collection is built on the meta device and sharded
#: (and initialized) by TorchRec; not a choice of the single-process trainer.
SHARDED = "sharded"


@dataclass(frozen=True)
class DLRMConfig:
    """Sizes of a DLRM. ``bottom_mlp`` excludes the input and output widths; the bottom
    MLP ends in ``embedding_dim`` and the top MLP in one logit."""

    embedding_dim: int = 16
    bottom_mlp: tuple[int, ...] = (512, 256, 64)
    top_mlp: tuple[int, ...] = (512, 256)

    def __post_init__(self) -> None:
        if self.embedding_dim <= 0:
            raise UserError(f"embedding dim must be positive, got {self.embedding_dim}")
        for name in ("bottom_mlp", "top_mlp"):
            if any(w <= 0 for w in getattr(self, name)):
                raise UserError(
                    f"{name.replace('_', ' ')} widths must be positive, got {getattr(self, name)}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Named model sizes for ``--model-size``.
MODEL_SIZES: dict[str, DLRMConfig] = {
    "kaggle": DLRMConfig(16, (512, 256, 64), (512, 256)),
    "small": DLRMConfig(16, (128, 64), (128, 64)),
    "tiny": DLRMConfig(8, (32,), (32,)),
    "terabyte": DLRMConfig(64, (512, 256), (512, 512, 256)),
}


def model_config(size: str) -> DLRMConfig:
    """A named size, or ``dim:bottom:top`` such as ``16:512-256-64:512-256``."""
    if size in MODEL_SIZES:
        return MODEL_SIZES[size]
    parts = size.split(":")
    if len(parts) == 3:
        try:
            dim = int(parts[0])
            bottom = tuple(int(x) for x in parts[1].split("-") if x)
            top = tuple(int(x) for x in parts[2].split("-") if x)
        except ValueError:
            raise UserError(
                f"bad model size {size!r}: expected dim:bottom:top, e.g. 16:512-256-64:512-256"
            ) from None
        return DLRMConfig(dim, bottom, top)
    raise unknown_name("model size", size, [*MODEL_SIZES, "DIM:BOTTOM:TOP"])


def mlp(widths: Sequence[int], final_activation: bool) -> nn.Sequential:
    """Linear+ReLU stack over ``widths`` (input first), reference initialization."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.normal_(0.0, math.sqrt(2.0 / (a + b)))
            lin.bias.normal_(0.0, math.sqrt(1.0 / b))
        layers.append(lin)
        if i < len(widths) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def dot_interaction(dense: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """``[B, D] x [B, F, D] -> [B, D + (F+1)F/2]``: dense ⊕ strict lower triangle of Gram."""
    t = torch.cat([dense.unsqueeze(1), emb], dim=1)
    z = torch.bmm(t, t.transpose(1, 2))
    n = t.shape[1]
    li, lj = _tril_indices(n, z.device)
    return torch.cat([dense, z[:, li, lj]], dim=1)


_TRIL_CACHE: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _tril_indices(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (n, str(device))
    if key not in _TRIL_CACHE:
        idx = torch.tril_indices(n, n, offset=-1, device=device)
        _TRIL_CACHE[key] = (idx[0], idx[1])
    return _TRIL_CACHE[key]


def _tril_flat_indices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat positions of the strict lower triangle of an ``n x n`` matrix (row-major, the
    order of ``torch.tril_indices``) and the symmetric inverse map ``[n*n]``: ``1 + k`` at
    the ``k``-th triangle position *and* at its mirror above the diagonal, ``0`` on the
    diagonal."""
    li, lj = torch.tril_indices(n, n, offset=-1)
    flat = li * n + lj
    inv = torch.zeros(n * n, dtype=torch.long)
    k = torch.arange(1, flat.numel() + 1)
    inv[flat] = k
    inv[lj * n + li] = k
    return flat, inv


class _DotInteraction(torch.autograd.Function):
    """:func:`dot_interaction` with a cheaper gather and a hand-written backward.

    Forward: the same ``bmm`` and the same triangle entries as :func:`dot_interaction`
    (bit-identical output), gathered with one ``index_select`` over the flattened Gram
    matrix instead of 2-D advanced indexing (``aten::index``). Backward: with ``G`` the
    triangle's gradient placed in ``dZ`` (strictly lower), ``dT = dZ T + dZ^T T = S T``
    where ``S = dZ + dZ^T`` is built exactly (the two halves do not overlap) by one
    ``index_select`` through the symmetric inverse map, so the backward is one gather and
    one ``bmm`` instead of ``index_put`` into zeros and two ``bmm``. The gradient equals
    autograd's up to float rounding (each row of ``S T`` is one 27-term sum instead of two
    partial sums added).
    """

    @staticmethod
    def forward(
        ctx: Any, dense: torch.Tensor, emb: torch.Tensor, flat: torch.Tensor, inv: torch.Tensor
    ) -> torch.Tensor:
        b, n = dense.shape[0], emb.shape[1] + 1
        t = torch.cat([dense.unsqueeze(1), emb], dim=1)
        z = torch.bmm(t, t.transpose(1, 2))
        ctx.save_for_backward(t, inv)
        return torch.cat([dense, z.view(b, n * n).index_select(1, flat)], dim=1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        t, inv = ctx.saved_tensors
        b, n, d = t.shape
        gpad = torch.cat([grad.new_zeros(b, 1), grad[:, d:]], dim=1)
        gt = torch.bmm(gpad.index_select(1, inv).view(b, n, n), t)
        gdense = grad[:, :d] + gt[:, 0] if ctx.needs_input_grad[0] else None
        gemb = gt[:, 1:] if ctx.needs_input_grad[1] else None
        return gdense, gemb, None, None


def _dot_interaction_gather(
    dense: torch.Tensor, emb: torch.Tensor, flat: torch.Tensor
) -> torch.Tensor:
    """:func:`dot_interaction` with one ``index_select`` gather (autograd backward; used
    under autocast, where the hand-written backward's dtypes would not match)."""
    t = torch.cat([dense.unsqueeze(1), emb], dim=1)
    z = torch.bmm(t, t.transpose(1, 2))
    return torch.cat([dense, z.flatten(1).index_select(1, flat)], dim=1)


def _bound(rows: int, fixed: float | None) -> float:
    """The uniform init bound of a table of ``rows`` rows (see the module doc)."""
    if fixed is not None:
        if not fixed > 0:
            raise UserError(f"embedding init bound must be positive, got {fixed}")
        return float(fixed)
    return math.sqrt(1.0 / rows)


@dataclass
class EmbeddingOptimizerSpec:
    """The embedding optimizer fused into FBGEMM's kernel: a torch optimizer class + kwargs."""

    cls: type[torch.optim.Optimizer] = torch.optim.SGD
    kwargs: dict[str, Any] = field(default_factory=lambda: {"lr": 0.1})


class DLRM(nn.Module):
    """DLRM over a TorchRec embedding-bag collection; ``forward`` returns logits ``[B]``.

    ``compile_dense=True`` runs the dense part (bottom MLP, interaction, top MLP) through
    ``torch.compile``, falling back to eager with a warning if compilation fails;
    ``autocast_bf16=True`` runs it under ``torch.autocast(dtype=torch.bfloat16)`` (changes
    numerics). Both are off by default; see the module docstring for the measurements.
    """

    def __init__(
        self,
        num_dense: int,
        table_sizes: Sequence[int],
        feature_names: Sequence[str],
        config: DLRMConfig | None = None,
        *,
        embedding_kernel: str = "fused",
        embedding_optimizer: EmbeddingOptimizerSpec | None = None,
        compile_dense: bool = False,
        autocast_bf16: bool = False,
        embedding_init_bound: float | None = None,
    ) -> None:
        super().__init__()
        from torchrec.modules.embedding_configs import EmbeddingBagConfig

        cfg = config or DLRMConfig()
        if embedding_kernel not in (*KERNELS, SHARDED):
            raise unknown_name("embedding kernel", embedding_kernel, KERNELS)
        if num_dense < 0:
            raise UserError(f"num_dense must be >= 0, got {num_dense}")
        if len(table_sizes) != len(feature_names) or not table_sizes:
            raise UserError("need one table size per sparse feature (at least one)")
        self.config = cfg
        self.num_dense = num_dense
        self.feature_names = list(feature_names)
        self.table_sizes = [int(n) for n in table_sizes]
        self.embedding_kernel = embedding_kernel
        d = cfg.embedding_dim
        tables = [
            EmbeddingBagConfig(
                name=f"t_{name}",
                embedding_dim=d,
                num_embeddings=int(n),
                feature_names=[name],
                weight_init_min=-_bound(n, embedding_init_bound),
                weight_init_max=_bound(n, embedding_init_bound),
            )
            for name, n in zip(feature_names, table_sizes)
        ]
        self.bottom = mlp([max(num_dense, 1), *cfg.bottom_mlp, d], final_activation=True)
        f = len(tables)
        inter = d + (f + 1) * f // 2
        self.top = mlp([inter, *cfg.top_mlp, 1], final_activation=False)
        for m in [*self.bottom, *self.top]:
            if isinstance(m, nn.ReLU):
                m.inplace = True  # each follows a Linear whose output nothing else keeps
        if embedding_kernel == "fused":
            from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection

            spec = embedding_optimizer or EmbeddingOptimizerSpec()
            self.sparse = FusedEmbeddingBagCollection(
                tables=tables, optimizer_type=spec.cls, optimizer_kwargs=dict(spec.kwargs)
            )
        elif embedding_kernel == SHARDED:
            from torchrec import EmbeddingBagCollection

            self.sparse = EmbeddingBagCollection(tables=tables, device=torch.device("meta"))
        else:
            from torchrec import EmbeddingBagCollection

            self.sparse = EmbeddingBagCollection(tables=tables, device=torch.device("cpu"))
            with torch.no_grad():
                for t, bag in zip(tables, self.sparse.embedding_bags.values()):
                    bag.weight.uniform_(t.weight_init_min, t.weight_init_max)
                    bag.sparse = embedding_kernel == "sparse"
        self._num_features = f
        flat, inv = _tril_flat_indices(f + 1)
        self.register_buffer("_tril_flat", flat, persistent=False)
        self.register_buffer("_tril_inv", inv, persistent=False)
        # FBGEMM's table-batched module behind the fused collection, when one module holds
        # every table in feature order (then the KJT can be handed to it as it is). Held in a
        # plain list, as TorchRec holds it, so it is not registered a second time as a
        # submodule (its buffers would otherwise appear twice in the state dict).
        self._tbe: list[nn.Module] = []
        if embedding_kernel == "fused":
            mods = getattr(self.sparse, "_emb_modules", None)
            order = [fn for c in self.sparse.embedding_bag_configs() for fn in c.feature_names]
            if isinstance(mods, list) and len(mods) == 1 and order == self.feature_names:
                self._tbe.append(mods[0])
        self.compile_dense = compile_dense
        self.autocast_bf16 = autocast_bf16
        self._compiled: Any = None
        self._compile_state = "off" if not compile_dense else "new"  # new | ok | failed

    def forward(self, dense: torch.Tensor, sparse: Any) -> torch.Tensor:
        if self.num_dense == 0:
            dense = dense.new_zeros(dense.shape[0], 1)
        pooled = self.pooled_embeddings(sparse)  # [B, F * D], in table order
        if self._compile_state in ("new", "ok"):
            return self._compiled_dense(dense, pooled)
        return self._dense_forward(dense, pooled)

    def pooled_embeddings(self, sparse: Any) -> torch.Tensor:
        """Sum-pooled embeddings ``[B, F * D]`` of a KeyedJaggedTensor, in table order.

        Fast path (fused kernel): when the KJT's keys are the model's features in table
        order, unweighted and with one batch size for all keys, its ``values``/``offsets``
        (keys-major) are exactly what FBGEMM's table-batched module takes, so
        ``FusedEmbeddingBagCollection.forward``'s ``to_dict()`` split and per-feature
        re-concatenation are skipped. Otherwise, and for the other kernels, the TorchRec
        module is called as usual.
        """
        if (
            self._tbe
            and sparse.keys() == self.feature_names
            and sparse.weights_or_none() is None
            and not sparse.variable_stride_per_key()
        ):
            # The same int32 casts as FusedEmbeddingBagCollection.forward.
            return self._tbe[0](sparse.values().int(), sparse.offsets().int(), None)
        kt = self.sparse(sparse)  # a KeyedTensor (a lazy awaitable of one when sharded)
        if list(kt.keys()) == self.feature_names:
            return kt.values()
        d = kt.to_dict()  # a sharded collection may order its outputs by sharding type
        return torch.cat([d[f] for f in self.feature_names], dim=1)

    def _dense_forward(self, dense: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Bottom MLP, dot interaction and top MLP: everything but the embedding lookup."""
        if self.autocast_bf16:
            with torch.autocast(dense.device.type, dtype=torch.bfloat16):
                x = self.bottom(dense)
                emb = pooled.view(x.shape[0], self._num_features, self.config.embedding_dim)
                out = self.top(_dot_interaction_gather(x, emb, self._tril_flat))
            return out.float().squeeze(1)
        x = self.bottom(dense)
        emb = pooled.view(x.shape[0], self._num_features, self.config.embedding_dim)
        if torch.is_grad_enabled() and (x.requires_grad or emb.requires_grad):
            inter = _DotInteraction.apply(x, emb, self._tril_flat, self._tril_inv)
        else:
            inter = _dot_interaction_gather(x, emb, self._tril_flat)
        return self.top(inter).squeeze(1)

    def _compiled_dense(self, dense: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """:meth:`_dense_forward` through ``torch.compile``, falling back to eager (with a
        warning) if compilation fails. The first call with gradients also runs the
        compiled backward once on a detached copy, so that a failure to compile the
        backward graph (compiled lazily by AOTAutograd) surfaces here rather than in the
        caller's ``loss.backward()``."""
        try:
            if self._compiled is None:
                self._compiled = torch.compile(self._dense_forward)
            if self._compile_state == "new" and torch.is_grad_enabled():
                probe = pooled.detach().requires_grad_(True)
                out = self._compiled(dense, probe)
                torch.autograd.grad(out.sum(), [probe])
                self._compile_state = "ok"
            return self._compiled(dense, pooled)
        except Exception as e:  # noqa: BLE001 -- any compiler failure: run eager instead
            import warnings

            warnings.warn(
                f"torch.compile of the DLRM dense part failed, running eager: "
                f"{type(e).__name__}: {e}",
                stacklevel=2,
            )
            self._compile_state = "failed"
            self._compiled = None
            return self._dense_forward(dense, pooled)

    def fused_optimizer(self) -> Any | None:
        """TorchRec's KeyedOptimizer over the fused tables (``None`` for the dense kernel)."""
        return self.sparse.fused_optimizer() if self.embedding_kernel == "fused" else None

    def dense_parameters(self) -> list[nn.Parameter]:
        """The MLP parameters."""
        return [*self.bottom.parameters(), *self.top.parameters()]

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Embedding weights of an unfused kernel (empty when fused: FBGEMM owns them)."""
        return [] if self.embedding_kernel in ("fused", SHARDED) else list(self.sparse.parameters())

    def parameter_counts(self) -> dict[str, int]:
        """Embedding, dense (MLP) and total parameter counts."""
        dense = sum(p.numel() for p in [*self.bottom.parameters(), *self.top.parameters()])
        emb = self.config.embedding_dim * sum(self.table_sizes)
        return {"embedding": emb, "dense": dense, "total": emb + dense}
