"""Structured sparsity on the DLRM's MLPs: neuron importance, shrinking and growing layers.

A *neuron* of an MLP is one output of a hidden Linear layer: its weight row and bias (the
incoming side) and the matching input column of the next Linear layer (the outgoing side).
Every Linear output of the bottom and top MLPs is prunable except each MLP's last layer
(the bottom MLP must end in the embedding dim, the top MLP in one logit).

Pruning is **physical**: the Linear layers are rebuilt smaller, so a sparse phase really
computes less (on a CPU, masked dense layers cost exactly as much as unmasked ones; that
was the reason to choose this). Optimizer state follows the weights: per-parameter state
tensors of the parameter's shape (Adagrad's sum, Adam's moments) are sliced and re-expanded
with the weights; other state (step counters) is copied.

Growing rebuilds the full-width layers; the kept neurons keep their trained weights and the
regrown ones are initialized as chosen (:data:`REGROW_INITS`):

* ``"function-preserving"`` (default): incoming weights drawn as at initialization (the
  reference DLRM init), outgoing weights zero, so the network computes exactly the same
  function right after growing and the new neurons start learning from the next step (with
  zero *incoming* weights a ReLU neuron would stay dead);
* ``"random"``: incoming and outgoing weights drawn as at initialization;
* ``"restore"``: the values the neurons had when they were pruned.

Importance scores (:data:`SCORES`): ``"l2"`` (default: L2 norm of the incoming weights and
bias), ``"l1"``, ``"l2-out"`` (L2 norm of the outgoing column), ``"l2-product"`` (incoming
times outgoing norm), ``"random"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

SCORES = ("l2", "l1", "l2-out", "l2-product", "random")
REGROW_INITS = ("function-preserving", "random", "restore")
MLPS = ("bottom", "top")


def linear_positions(seq: nn.Sequential) -> list[int]:
    """Indices of the Linear modules of ``seq``."""
    return [i for i, m in enumerate(seq) if isinstance(m, nn.Linear)]


def prunable_layers(
    model: nn.Module, mlps: tuple[str, ...] = MLPS
) -> Iterator[tuple[str, int, int]]:
    """``(mlp, position of a Linear, position of the next Linear)`` for every prunable layer."""
    for name in mlps:
        pos = linear_positions(getattr(model, name))
        for a, b in zip(pos[:-1], pos[1:]):
            yield name, a, b


def layer_key(mlp: str, position: int) -> str:
    return f"{mlp}.{position}"


def importance(
    lin: nn.Linear, nxt: nn.Linear, score: str = "l2", generator: torch.Generator | None = None
) -> torch.Tensor:
    """One score per output neuron of ``lin`` (higher = keep)."""
    w_in = torch.cat([lin.weight.detach(), lin.bias.detach().unsqueeze(1)], dim=1)
    w_out = nxt.weight.detach()
    if score == "l2":
        return w_in.norm(dim=1)
    if score == "l1":
        return w_in.abs().sum(dim=1)
    if score == "l2-out":
        return w_out.norm(dim=0)
    if score == "l2-product":
        return w_in.norm(dim=1) * w_out.norm(dim=0)
    if score == "random":
        return torch.rand(lin.out_features, generator=generator)
    raise ValueError(f"unknown importance score {score!r}; valid: {', '.join(SCORES)}")


def keep_count(width: int, sparsity: float) -> int:
    """Neurons kept of ``width`` at ``sparsity`` (at least one)."""
    return max(1, int(round(width * (1.0 - sparsity))))


@dataclass
class Structure:
    """Which neurons of each prunable layer are alive (indices into the full width), the
    full widths, and the weights of pruned neurons (for the ``restore`` init)."""

    full: dict[str, int] = field(default_factory=dict)
    keep: dict[str, torch.Tensor] = field(default_factory=dict)
    saved: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    @property
    def sparse(self) -> bool:
        return any(self.keep[k].numel() < self.full[k] for k in self.keep)

    def sparsity(self) -> float:
        """Fraction of prunable neurons currently pruned."""
        total = sum(self.full.values())
        alive = sum(int(self.keep[k].numel()) for k in self.keep) if self.keep else total
        return 1.0 - alive / total if total else 0.0

    def state_dict(self) -> dict:
        return {"full": dict(self.full), "keep": {k: v.clone() for k, v in self.keep.items()},
                "saved": {k: {n: t.clone() for n, t in d.items()} for k, d in self.saved.items()}}  # fmt: skip

    @classmethod
    def from_state_dict(cls, d: dict) -> Structure:
        return cls(
            full=dict(d["full"]),
            keep=dict(d["keep"]),
            saved={k: dict(v) for k, v in d["saved"].items()},
        )


def full_structure(model: nn.Module, mlps: tuple[str, ...] = MLPS) -> Structure:
    s = Structure()
    for name, a, _ in prunable_layers(model, mlps):
        lin = getattr(model, name)[a]
        s.full[layer_key(name, a)] = lin.out_features
        s.keep[layer_key(name, a)] = torch.arange(lin.out_features)
    return s


def _new_linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
        lin.bias.copy_(bias)
    return lin


# A transplant tells the optimizer how each new parameter relates to an old one:
# new_param -> (old_param, function mapping an old state tensor to the new shape).
Transplant = dict[nn.Parameter, tuple[nn.Parameter, Callable[[torch.Tensor], torch.Tensor]]]


def _chain(transplant: Transplant, new: nn.Parameter, cur: nn.Parameter, f: Callable) -> None:
    """Record ``new = f(cur)``, composing with an earlier step that made ``cur`` in this pass."""
    if cur in transplant:
        src, g = transplant.pop(cur)
        transplant[new] = (src, lambda t, f=f, g=g: f(g(t)))
    else:
        transplant[new] = (cur, f)


def _mlps(structure: Structure) -> tuple[str, ...]:
    return tuple(m for m in MLPS if any(k.startswith(m + ".") for k in structure.full))


def shrink(model: nn.Module, structure: Structure, sparsity: float, score: str = "l2",
           generator: torch.Generator | None = None) -> Transplant:  # fmt: skip
    """Prune every prunable layer of ``model`` (currently at full width) to ``sparsity``.

    Scores every layer first, then rebuilds the affected Linear modules in place; updates
    ``structure`` (kept indices and the pruned neurons' original weights) and returns the
    parameter transplant for the optimizer.
    """
    if structure.sparse:
        raise RuntimeError("the model is already pruned; grow before pruning again")
    plan = []
    for name, a, b in prunable_layers(model, _mlps(structure)):
        seq = getattr(model, name)
        lin, nxt = seq[a], seq[b]
        scores = importance(lin, nxt, score, generator)
        keep = torch.sort(torch.topk(scores, keep_count(lin.out_features, sparsity)).indices).values
        pruned = torch.ones(lin.out_features, dtype=torch.bool)
        pruned[keep] = False
        saved = {"in_w": lin.weight.detach()[pruned].clone(), "in_b": lin.bias.detach()[pruned].clone(),
                 "out_w": nxt.weight.detach()[:, pruned].clone()}  # fmt: skip
        plan.append((name, a, b, keep, saved))
    transplant: Transplant = {}
    for name, a, b, keep, saved in plan:
        seq = getattr(model, name)
        lin = seq[a]
        new_lin = _new_linear(lin.weight.detach()[keep], lin.bias.detach()[keep])
        _chain(transplant, new_lin.weight, lin.weight, lambda t, kk=keep: t[kk])
        _chain(transplant, new_lin.bias, lin.bias, lambda t, kk=keep: t[kk])
        seq[a] = new_lin
        nxt = seq[b]
        new_nxt = _new_linear(nxt.weight.detach()[:, keep], nxt.bias.detach())
        _chain(transplant, new_nxt.weight, nxt.weight, lambda t, kk=keep: t[:, kk])
        _chain(transplant, new_nxt.bias, nxt.bias, lambda t: t)
        seq[b] = new_nxt
        key = layer_key(name, a)
        structure.keep[key] = keep
        structure.saved[key] = saved
    return transplant


def _init_rows(rows: int, fan_in: int, fan_out: int, like: torch.Tensor,
               gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Weights and biases as the reference DLRM initializes a Linear ``fan_in -> fan_out``."""
    w = torch.randn(rows, fan_in, generator=gen) * math.sqrt(2.0 / (fan_in + fan_out))
    b = torch.randn(rows, generator=gen) * math.sqrt(1.0 / fan_out)
    return w.to(like), b.to(like)


def grow(model: nn.Module, structure: Structure, init: str = "function-preserving",
         generator: torch.Generator | None = None) -> Transplant:  # fmt: skip
    """Regrow every pruned neuron of ``model`` to full width (``init`` as the module says).

    Layers are regrown from the last to the first, so that a layer's restored incoming
    weights (saved at full input width) meet an input that is still pruned and are sliced
    to it, and its outgoing columns meet a next layer already back at full width.
    """
    if init not in REGROW_INITS:
        raise ValueError(f"unknown regrow init {init!r}; valid: {', '.join(REGROW_INITS)}")
    transplant: Transplant = {}
    layers = list(prunable_layers(model, _mlps(structure)))
    prev_keep = {}  # key of a layer -> kept indices of the layer feeding it (for slicing)
    for i, (name, a, _b) in enumerate(layers):
        if i > 0 and layers[i - 1][0] == name and layers[i - 1][2] == a:
            prev_keep[layer_key(name, a)] = structure.keep[layer_key(name, layers[i - 1][1])]
    for name, a, b in reversed(layers):
        seq = getattr(model, name)
        key = layer_key(name, a)
        keep, full = structure.keep[key], structure.full[key]
        if keep.numel() == full:
            continue
        lin, nxt = seq[a], seq[b]
        pruned = torch.ones(full, dtype=torch.bool)
        pruned[keep] = False
        n_new = int(pruned.sum())
        w = lin.weight.new_zeros(full, lin.in_features)
        bias = lin.bias.new_zeros(full)
        w[keep], bias[keep] = lin.weight.detach(), lin.bias.detach()
        out_w = nxt.weight.new_zeros(nxt.out_features, full)
        out_w[:, keep] = nxt.weight.detach()
        saved = structure.saved.get(key)
        if init == "restore" and saved is not None:
            in_w = saved["in_w"]
            if key in prev_keep and in_w.shape[1] != lin.in_features:
                in_w = in_w[:, prev_keep[key]]
            w[pruned], bias[pruned], out_w[:, pruned] = in_w, saved["in_b"], saved["out_w"]
        else:
            w[pruned], bias[pruned] = _init_rows(n_new, lin.in_features, full, w, generator)
            if init == "random":
                std = math.sqrt(2.0 / (full + nxt.out_features))
                out_w[:, pruned] = (
                    torch.randn(nxt.out_features, n_new, generator=generator) * std
                ).to(out_w)

        def rows(t: torch.Tensor, kk: torch.Tensor = keep, n: int = full) -> torch.Tensor:
            out = t.new_zeros((n, *t.shape[1:]))
            out[kk] = t
            return out

        def cols(t: torch.Tensor, kk: torch.Tensor = keep, n: int = full) -> torch.Tensor:
            out = t.new_zeros((t.shape[0], n))
            out[:, kk] = t
            return out

        new_lin = _new_linear(w, bias)
        _chain(transplant, new_lin.weight, lin.weight, rows)
        _chain(transplant, new_lin.bias, lin.bias, rows)
        seq[a] = new_lin
        new_nxt = _new_linear(out_w, nxt.bias.detach())
        _chain(transplant, new_nxt.weight, nxt.weight, cols)
        _chain(transplant, new_nxt.bias, nxt.bias, lambda t: t)
        seq[b] = new_nxt
        structure.keep[key] = torch.arange(full)
    structure.saved.clear()
    return transplant


def apply_structure(model: nn.Module, structure: Structure) -> None:
    """Rebuild a full-width ``model``'s layers at ``structure``'s widths (weights are placeholders
    to be overwritten by a checkpoint's state dict): used when resuming a sparse phase."""
    for name, a, b in prunable_layers(model, _mlps(structure)):
        seq = getattr(model, name)
        keep = structure.keep[layer_key(name, a)]
        lin = seq[a]
        seq[a] = _new_linear(lin.weight.detach()[keep], lin.bias.detach()[keep])
        cur = seq[b]
        seq[b] = _new_linear(cur.weight.detach()[:, keep], cur.bias.detach())


#: Optimizer-state keys that scale the step (accumulated squared gradients): filled for
#: regrown weights by :func:`transplant_state` with ``fill="mean"``.
SECOND_MOMENTS = ("sum", "exp_avg_sq", "square_avg", "momentum_buffer_sq")
STATE_FILLS = ("zero", "mean")


def transplant_state(old_opt: torch.optim.Optimizer, new_opt: torch.optim.Optimizer, transplant: Transplant,
                     fill: str = "zero") -> None:  # fmt: skip
    """Carry ``old_opt``'s per-parameter state into ``new_opt`` (same optimizer class): state
    tensors shaped like the parameter are mapped like the weights, the rest copied.

    Entries of regrown weights start at zero (``fill="zero"``), or, with ``fill="mean"``,
    their accumulated squared gradients (:data:`SECOND_MOMENTS`) start at the mean of the
    tensor's kept entries: with a zero accumulator Adagrad's first step on a regrown weight
    is ``lr * sign(g)``, far larger than the steps its trained neighbours take.
    """
    if fill not in STATE_FILLS:
        raise ValueError(f"unknown state fill {fill!r}; valid: {', '.join(STATE_FILLS)}")
    for group in new_opt.param_groups:
        for p in group["params"]:
            src, f = transplant.get(p, (p, lambda t: t))
            st = old_opt.state.get(src)
            if not st:
                continue
            new_st = {}
            fresh = None
            for k, v in st.items():
                if torch.is_tensor(v) and v.shape == src.shape and v.dim() > 0:
                    mapped = f(v).clone()
                    if fill == "mean" and k in SECOND_MOMENTS and v.numel():
                        if fresh is None:
                            fresh = f(torch.ones_like(v)) == 0
                        mapped[fresh] = v.mean()
                    new_st[k] = mapped
                else:
                    new_st[k] = v.clone() if torch.is_tensor(v) else v
            new_opt.state[p] = new_st


def mlp_widths(model: nn.Module, name: str) -> list[int]:
    """Current widths of an MLP (input first)."""
    seq = getattr(model, name)
    lins = [seq[i] for i in linear_positions(seq)]
    return [lins[0].in_features, *(lin.out_features for lin in lins)]


__all__ = [
    "MLPS",
    "REGROW_INITS",
    "SCORES",
    "SECOND_MOMENTS",
    "STATE_FILLS",
    "Structure",
    "apply_structure",
    "full_structure",
    "grow",
    "importance",
    "keep_count",
    "mlp_widths",
    "prunable_layers",
    "shrink",
    "transplant_state",
]
