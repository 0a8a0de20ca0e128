"""Training throughput against the plain-PyTorch reference, at the Criteo Kaggle configuration.

The issue's benchmark: samples/s of one full training step (forward, BCE-with-logits loss,
backward, optimizer steps) at batch 2048 with 26 tables and SGD, for

* ``plain``: :class:`benchmarks.reference_dlrm.PlainDLRM` (one ``nn.EmbeddingBag(sparse=
  True)`` per feature) with ``torch.optim.SGD`` on everything
  (:func:`benchmarks.reference_dlrm.make_optimizers`), used unchanged;
* ``embedlab_*``: :class:`embedlab.models.DLRM` with the fused kernel
  (``FusedEmbeddingBagCollection``, SGD fused into FBGEMM's backward) and ``torch.optim.SGD``
  on the MLPs, as the trainer builds it. Variants (``--variants``):

  - ``embedlab_eager``: the default model (TBE fast path, cheaper interaction, in-place ReLU);
  - ``embedlab_compiled``: ``compile_dense=True`` (``torch.compile`` of bottom MLP,
    interaction and top MLP); its compile time is measured with an empty Inductor cache;
  - ``embedlab_bf16``: ``autocast_bf16=True`` (opt-in; changes numerics);
  - ``embedlab_original``: the same model computing what the model did before the
    throughput work (TorchRec's ``FusedEmbeddingBagCollection.forward``, the reference
    :func:`embedlab.models.dlrm.dot_interaction`, out-of-place ReLU), for the ablation.

All methods are timed **alternately** in the same process: each round times ``--steps``
steps of every method (the order rotates from round to round), ``--repeats`` rounds. The
machine is shared, so every figure is a median over rounds with its spread, and the ratio
embedlab/plain is computed per round (same round, adjacent in time) and then summarized.
The machine's peak is measured in the same run, once per round: an fp32 ``2048x2048``
matmul (GFLOP/s) and a 256 MiB tensor copy (GB/s counted as bytes read + bytes written).
The load average is recorded before, during (each round) and after. ``--threads 1,2``
times every method at each thread count in every round (warmed up at each, since a
compiled graph recompiles for a new thread count). Each timed step gets a new
``KeyedJaggedTensor`` over the pooled tensors (made before the timer starts), because a KJT
caches its offsets and its ``to_dict()`` split and real training sees a new batch each step.
The machine's other jobs matter a lot at 2 threads: when another process holds a core,
OpenMP regions wait for descheduled threads and every method slows down many times
(FBGEMM's fused backward most); compare rounds by their recorded load.

Workload: 26 one-hot features with the Kaggle cardinalities
(:data:`embedlab.data.criteo.KAGGLE_CARDINALITIES`) capped at ``--max-rows`` (default
1,000,000, to fit memory: the capped tables hold 5.6M rows, 360 MB per model), ids
Zipf-distributed (exponent ``--zipf``, then scattered over the table by a multiplicative
hash so hot rows are not adjacent), 13 dense features ``log(1 + Exp(5))``, labels
Bernoulli(0.25). A pool of ``--pool`` batches is made once by
:func:`embedlab.data.schema.make_batch` (the trainer's batches) before any timing.

Work per sample (analytic, Kaggle sizes): the MLPs' multiply-adds (bottom 13-512-256-64-16,
top 367-512-256-1) plus the interaction's Gram ``bmm`` (27x16x27), times 2 FLOP per
multiply-add, times 3 for forward + backward (the usual convention; the first layer's
input gradient is in fact not computed, so the true count is a little lower). The achieved
fraction of peak is ``samples/s * FLOP/sample / matmul peak``.

A ``torch.profiler`` run of a few steps of ``plain`` and ``embedlab_eager`` (and
``embedlab_compiled`` when timed) splits self CPU time into MLP, interaction, embedding,
loss, optimizer and other.

Usage::

    .venv/bin/python benchmarks/throughput.py --steps 8 --repeats 12 --warmup 4 \
        --threads 1,2                                                 # the recorded run
    .venv/bin/python benchmarks/throughput.py --steps 3 --repeats 2 --warmup 1 \\
        --variants embedlab_eager --out /tmp/tp.json                  # smoke test
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("embedlab_eager", "embedlab_compiled", "embedlab_bf16", "embedlab_original")
DEFAULT_VARIANTS = "embedlab_eager,embedlab_compiled,embedlab_bf16,embedlab_original"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per method per round")
    ap.add_argument(
        "--warmup", type=int, default=5, help="untimed steps per method before the rounds"
    )
    ap.add_argument("--repeats", type=int, default=15, help="rounds (each times every method)")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--out", default="benchmarks/results/throughput.json")
    ap.add_argument(
        "--variants", default=DEFAULT_VARIANTS, help=f"comma list of {', '.join(VARIANTS)}"
    )
    ap.add_argument(
        "--threads",
        default=None,
        help="comma list of torch.set_num_threads values, each timed in every round "
        "(default: torch's default, the number of cores)",
    )
    ap.add_argument("--max-rows", type=int, default=1_000_000, help="cap on each table's rows")
    ap.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of the ids")
    ap.add_argument("--pool", type=int, default=8, help="pregenerated batches, cycled")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--profile-steps", type=int, default=6, help="steps per profiled method (0: no profile)"
    )
    ap.add_argument(
        "--warm-inductor-cache",
        action="store_true",
        help="use Inductor's usual cache (default: an empty one, to time a cold compile)",
    )
    a = ap.parse_args(argv)
    bad = [v for v in a.variants.split(",") if v and v not in VARIANTS]
    if bad:
        ap.error(f"unknown variants {bad}; choose from {VARIANTS}")
    if min(a.steps, a.repeats, a.batch_size, a.pool) <= 0 or a.warmup < 0:
        ap.error("steps, repeats, batch size and pool must be positive, warmup >= 0")
    return a


# ----------------------------------------------------------------------------- machine


def cpu_info() -> dict[str, Any]:
    model, flags = platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == platform.machine():
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    keep = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "mem_gib": mem,
        "isa": {k: k in flags for k in keep},
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    out = {"torch": torch.__version__}
    for pkg in ("fbgemm-gpu-cpu", "fbgemm-gpu", "torchrec", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def matmul_gflops(n: int = 2048, reps: int = 3) -> float:
    """Best of ``reps`` fp32 ``n x n`` matmuls, GFLOP/s."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def memcpy_gbps(mib: int = 256, reps: int = 3) -> float:
    """Best of ``reps`` copies of a ``mib`` MiB fp32 tensor; GB/s of bytes read + written."""
    import torch

    src = torch.randn(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * 4 / best / 1e9


# ----------------------------------------------------------------------------- workload


def make_pool(args: argparse.Namespace):
    import numpy as np

    from embedlab.data.criteo import KAGGLE_CARDINALITIES, NUM_DENSE, criteo_schema
    from embedlab.data.schema import CTRArrays, make_batch

    sizes = [min(c, args.max_rows) for c in KAGGLE_CARDINALITIES]
    schema = criteo_schema(table_sizes=sizes)
    rng = np.random.default_rng(args.seed)
    n = args.batch_size * args.pool
    sparse = []
    for s in sizes:
        ranks = rng.zipf(args.zipf, n).astype(np.uint64) - np.uint64(1)
        sparse.append(((ranks * np.uint64(2654435761)) % np.uint64(s)).astype(np.int64))
    arrays = CTRArrays(
        dense=np.log1p(rng.exponential(5.0, (n, NUM_DENSE))).astype(np.float32),
        sparse=sparse,
        labels=(rng.random(n) < 0.25).astype(np.float32),
    )
    pool = [
        make_batch(arrays, np.arange(i * args.batch_size, (i + 1) * args.batch_size), schema)
        for i in range(args.pool)
    ]
    distinct = [
        float(
            np.mean(
                [
                    len(np.unique(c[i * args.batch_size : (i + 1) * args.batch_size]))
                    for i in range(args.pool)
                ]
            )
        )
        for c in sparse
    ]
    return (
        schema,
        pool,
        {
            "table_rows": sizes,
            "total_rows": sum(sizes),
            "distinct_ids_per_batch": round(sum(distinct)),
        },
    )


def fresh(batch):
    """A new KeyedJaggedTensor over the same tensors: a KJT caches its offsets and its
    ``to_dict()`` split, and each step of real training sees a new batch, so no method may
    reuse what an earlier step computed from a pooled batch."""
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    from embedlab.data.schema import Batch

    kjt = batch.sparse
    return Batch(
        batch.dense,
        KeyedJaggedTensor(keys=kjt.keys(), values=kjt.values(), lengths=kjt.lengths()),
        batch.labels,
    )


def flops_per_sample(cfg, num_dense: int, num_sparse: int) -> dict[str, float]:
    d = cfg.embedding_dim
    bottom = [num_dense, *cfg.bottom_mlp, d]
    inter = d + (num_sparse + 1) * num_sparse // 2
    top = [inter, *cfg.top_mlp, 1]
    mlp_macs = sum(a * b for a, b in zip(bottom[:-1], bottom[1:], strict=True)) + sum(
        a * b for a, b in zip(top[:-1], top[1:], strict=True)
    )
    n = num_sparse + 1
    inter_macs = n * n * d
    fwd = 2 * (mlp_macs + inter_macs)
    return {
        "mlp_mflop_fwd": 2 * mlp_macs / 1e6,
        "interaction_mflop_fwd": 2 * inter_macs / 1e6,
        "mflop_fwd": fwd / 1e6,
        "mflop_fwd_bwd": 3 * fwd / 1e6,
    }


# ----------------------------------------------------------------------------- methods


class Method:
    """A model, its optimizers and a training step over one batch."""

    def __init__(self, name: str, model, opts: list, fused=None) -> None:
        self.name, self.model, self.opts, self.fused = name, model, opts, fused
        self.times: dict[int, list[float]] = {}  # threads -> wall seconds per round
        self.cpu: dict[int, list[float]] = {}  # threads -> process CPU seconds per round
        self.first_step_s: float | None = None

    def step(self, batch) -> None:
        import torch.nn.functional as F

        if self.fused is not None:
            self.fused.step()  # what the trainer does each step (pushes the lr into FBGEMM)
        loss = F.binary_cross_entropy_with_logits(
            self.model(batch.dense, batch.sparse), batch.labels
        )
        for o in self.opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in self.opts:
            o.step()


def build(name: str, schema, args: argparse.Namespace) -> Method:
    import torch

    from benchmarks.reference_dlrm import PlainDLRM, make_optimizers
    from embedlab.models.dlrm import DLRM, EmbeddingOptimizerSpec, dot_interaction, model_config

    cfg = model_config("kaggle")
    torch.manual_seed(args.seed)
    if name == "plain":
        m = PlainDLRM(schema.num_dense, schema.table_sizes, cfg)
        return Method(name, m, make_optimizers(m, "sgd", args.lr))
    kw = {"compile_dense": name == "embedlab_compiled", "autocast_bf16": name == "embedlab_bf16"}
    m = DLRM(
        schema.num_dense,
        schema.table_sizes,
        schema.sparse_names,
        cfg,
        embedding_kernel="fused",
        embedding_optimizer=EmbeddingOptimizerSpec(torch.optim.SGD, {"lr": args.lr}),
        **kw,
    )
    if name == "embedlab_original":
        make_original(m, dot_interaction)
    return Method(name, m, [torch.optim.SGD(m.dense_parameters(), lr=args.lr)], m.fused_optimizer())


def make_original(m, dot_interaction) -> None:
    """Turn ``m`` into what DLRM computed before the throughput work (same weights)."""
    import types

    from torch import nn

    m._tbe.clear()  # TorchRec's FusedEmbeddingBagCollection.forward
    for mod in m.modules():
        if isinstance(mod, nn.ReLU):
            mod.inplace = False

    def _dense_forward(self, dense, pooled):
        x = self.bottom(dense)
        emb = pooled.view(x.shape[0], self._num_features, self.config.embedding_dim)
        return self.top(dot_interaction(x, emb)).squeeze(1)

    m._dense_forward = types.MethodType(_dense_forward, m)


def exactness(schema, pool, args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """|logit difference| of each embedlab variant against ``embedlab_original``: with the
    same weights (training-mode forward, and an eval-mode forward under ``no_grad``), and
    over three training steps from the same weights (outputs before each update; the
    gradients may differ by float rounding, so the weights drift apart slightly)."""
    import torch

    ref = build("embedlab_original", schema, args)
    others = {n: build(n, schema, args) for n in names if n != "embedlab_original"}
    for meth in others.values():
        meth.model.load_state_dict(ref.model.state_dict())
    out: dict[str, Any] = {n: {} for n in others}
    b0 = fresh(pool[0])
    with torch.no_grad():
        r = ref.model(b0.dense, b0.sparse)
        for n, meth in others.items():
            out[n]["same_weights_max_abs_logit_diff_no_grad"] = (
                (meth.model(b0.dense, b0.sparse) - r).abs().max().item()
            )
    worst = {n: 0.0 for n in others}
    for i, b in enumerate(map(fresh, pool[:3])):
        r = ref.model(b.dense, b.sparse).detach()
        for n, meth in others.items():
            d = (meth.model(b.dense, b.sparse).detach() - r).abs().max().item()
            if i == 0:
                out[n]["same_weights_max_abs_logit_diff"] = d
            worst[n] = max(worst[n], d)
        for meth in (ref, *others.values()):
            meth.step(b)
    for n in others:
        out[n]["max_abs_logit_diff_over_3_training_steps"] = worst[n]
    return out


# ----------------------------------------------------------------------------- profile

MLP_BWD = (
    "AddmmBackward",
    "MmBackward",
    "ReluBackward",
    "ThresholdBackward",
    "TBackward",
    "SqueezeBackward",
)
INTER_BWD = (
    "BmmBackward",
    "_DotInteractionBackward",
    "IndexBackward",
    "IndexSelectBackward",
    "CatBackward",
    "StackBackward",
    "UnsqueezeBackward",
    "TransposeBackward",
    "ViewBackward",
)
EMB_BWD = ("EmbeddingBagBackward", "SplitLookupFunction", "EmbeddingBackward")


def classify(chain: list[str]) -> str | None:
    """Category of an op from its name and its ancestors' names (innermost first)."""
    for name in chain:
        if name.startswith("bench::"):
            return name[len("bench::") :]
        if name.startswith("Optimizer.step") or name.startswith("Optimizer.zero_grad"):
            return "optimizer"
        if (
            "CompiledFunctionBackward" in name
            or name.startswith("Torch-Compiled Region")
            or name == "CompiledFunction"
        ):
            return "dense_compiled (MLP + interaction)"
        if name.startswith("autograd::engine::evaluate_function:"):
            node = name.split(":", 2)[-1].strip()
            if any(k in node for k in MLP_BWD):
                return "mlp"
            if any(k in node for k in INTER_BWD):
                return "interaction"
            if any(k in node for k in EMB_BWD):
                return "embedding"
            if "BinaryCrossEntropy" in node or "MeanBackward" in node:
                return "loss"
            return "other"
        if name.startswith("aten::binary_cross_entropy_with_logits"):
            return "loss"
    return None


def profile_split(meth: Method, pool, steps: int) -> dict[str, Any]:
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    handles = []

    def label(mod, cat):
        state: list[Any] = []

        def pre(*_):
            rf = record_function(f"bench::{cat}")
            rf.__enter__()
            state.append(rf)

        def post(*_):
            state.pop().__exit__(None, None, None)

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))

    m = meth.model
    if not getattr(m, "compile_dense", False):
        label(m.bottom, "mlp")
        label(m.top, "mlp")
    if hasattr(m, "tables"):
        for t in m.tables:
            label(t, "embedding")
    else:
        label(m.sparse, "embedding")
        for t in m._tbe:
            label(t, "embedding")
    batches = [fresh(pool[i % len(pool)]) for i in range(steps)]
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for b in batches:
                meth.step(b)
    finally:
        for h in handles:
            h.remove()
    split: dict[str, float] = {}
    ops: dict[str, float] = {}
    for ev in prof.events():
        if ev.device_type != torch.autograd.DeviceType.CPU or ev.name.startswith("bench::"):
            continue
        chain, q = [], ev
        while q is not None:
            chain.append(q.name)
            q = q.cpu_parent
        cat = classify(chain)
        if cat is None:  # forward op outside the MLP and embedding modules
            cat = (
                "interaction"
                if ev.name
                in (
                    "aten::bmm",
                    "aten::index",
                    "aten::index_select",
                    "aten::cat",
                    "aten::stack",
                    "_DotInteraction",
                )
                else "other"
            )
        us = ev.self_cpu_time_total
        split[cat] = split.get(cat, 0.0) + us
        ops[ev.name] = ops.get(ev.name, 0.0) + us
    total = sum(split.values())
    return {
        "steps": steps,
        "ms_per_step": round(total / steps / 1e3, 2),
        "share": {k: round(v / total, 4) for k, v in sorted(split.items(), key=lambda kv: -kv[1])},
        "ms_per_step_by_category": {
            k: round(v / steps / 1e3, 2) for k, v in sorted(split.items(), key=lambda kv: -kv[1])
        },
        "top_ops_ms_per_step": {
            k: round(v / steps / 1e3, 2) for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:12]
        },
        "note": "self CPU time under the profiler (it adds overhead). Forward ops are "
        "attributed by module (bottom/top MLP, embedding modules), backward ops by their "
        "autograd node, optimizer steps by the optimizer's profiler label (for plain this "
        "includes the sparse SGD on the embedding tables); forward ops outside those modules "
        "are 'interaction' (bmm, gather, cat, stack) or 'other' (e.g. plain's offsets)",
    }


# ----------------------------------------------------------------------------- stats


def summary(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0], s[0], s[0]]
    return {
        "median": round(statistics.median(s), 4),
        "q1": round(q[0], 4),
        "q3": round(q[2], 4),
        "min": round(s[0], 4),
        "max": round(s[-1], 4),
        "n": len(s),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if not args.warm_inductor_cache and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="throughput_inductor_")
    sys.path.insert(0, str(ROOT))
    import torch

    default_threads = torch.get_num_threads()
    threads = [int(x) for x in args.threads.split(",")] if args.threads else [default_threads]
    torch.set_num_threads(threads[-1])
    load_before = loadavg()
    t_start = time.perf_counter()
    schema, pool, workload = make_pool(args)
    from embedlab.models.dlrm import model_config

    fps = flops_per_sample(model_config("kaggle"), schema.num_dense, len(schema.sparse))
    variants = [v for v in args.variants.split(",") if v]
    names = ["plain", *variants]
    print(f"threads {threads}, load {load_before}, variants {names}", flush=True)

    methods = {}
    for n in names:
        meth = build(n, schema, args)
        t = time.perf_counter()
        meth.step(fresh(pool[0]))
        meth.first_step_s = time.perf_counter() - t
        for th in threads:  # warm up at every thread count (a compiled graph may recompile)
            torch.set_num_threads(th)
            for i in range(args.warmup):
                meth.step(fresh(pool[(i + 1) % len(pool)]))
        torch.set_num_threads(threads[-1])
        methods[n] = meth
        print(f"{n}: first step {meth.first_step_s:.2f}s", flush=True)

    # After the timed methods' first steps, so that the compile time above is a cold one.
    exact = (
        exactness(schema, pool, args, [v for v in variants if v != "embedlab_original"])
        if variants
        else {}
    )
    print("exactness vs embedlab_original:", exact, flush=True)

    peaks_mm: dict[int, list[float]] = {t: [] for t in threads}
    peaks_mem: dict[int, list[float]] = {t: [] for t in threads}
    loads = []
    k = 0
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        line = []
        for th in threads:
            torch.set_num_threads(th)
            peaks_mm[th].append(matmul_gflops())
            peaks_mem[th].append(memcpy_gbps())
            for n in order:
                meth = methods[n]
                batches = [fresh(pool[(k + i) % len(pool)]) for i in range(args.steps)]  # not timed
                k += args.steps
                c, t = time.process_time(), time.perf_counter()
                for b in batches:
                    meth.step(b)
                meth.times.setdefault(th, []).append(time.perf_counter() - t)
                meth.cpu.setdefault(th, []).append(time.process_time() - c)
            line.append(
                f"[{th}t mm {peaks_mm[th][-1]:.0f} "
                + " ".join(
                    f"{n} {args.steps * args.batch_size / methods[n].times[th][-1]:,.0f}"
                    for n in names
                )
                + "]"
            )
        loads.append(loadavg())
        print(
            f"round {r + 1}/{args.repeats} load {loads[-1][0] if loads[-1] else '?'} "
            + " ".join(line),
            flush=True,
        )

    by_threads: dict[str, Any] = {}
    for th in threads:
        peak = max(peaks_mm[th])
        results: dict[str, Any] = {}
        for n, meth in methods.items():
            sps = [args.steps * args.batch_size / t for t in meth.times[th]]
            med = statistics.median(sps)
            res = {
                "samples_per_s": summary(sps),
                "ms_per_step_median": round(1e3 * args.batch_size / med, 2),
                "samples_per_cpu_s": summary(
                    [args.steps * args.batch_size / c for c in meth.cpu[th]]
                ),
                "achieved_gflops_median": round(med * fps["mflop_fwd_bwd"] / 1e3, 1),
                "fraction_of_matmul_peak": round(med * fps["mflop_fwd_bwd"] / 1e3 / peak, 4),
                "fraction_of_matmul_peak_best_round": round(
                    max(sps) * fps["mflop_fwd_bwd"] / 1e3 / peak, 4
                ),
            }
            if n != "plain":
                ratios = [
                    p / e for p, e in zip(methods["plain"].times[th], meth.times[th], strict=True)
                ]  # same-round pairs
                res["ratio_vs_plain"] = summary(ratios)
                res["rounds_with_ratio_ge_1_2"] = f"{sum(x >= 1.2 for x in ratios)}/{len(ratios)}"
                res["ratio_vs_plain_cpu_time"] = summary(
                    [p / e for p, e in zip(methods["plain"].cpu[th], meth.cpu[th], strict=True)]
                )
            results[n] = res
        main_variant = (
            "embedlab_eager" if "embedlab_eager" in results else (variants[0] if variants else None)
        )
        fp32 = [v for v in variants if v not in ("embedlab_original", "embedlab_bf16")]
        best = max(fp32, key=lambda v: results[v]["ratio_vs_plain"]["median"], default=None)
        by_threads[str(th)] = {
            "peak": {
                "matmul_2048_fp32_gflops": summary(peaks_mm[th]),
                "memcpy_256MiB_gbps_read_plus_write": summary(peaks_mem[th]),
                "peak_used_for_fractions_gflops": round(peak, 1),
            },
            "results": results,
            "goal": {
                "ratio_target": 1.2,
                "variant": main_variant,
                "ratio_median": results[main_variant]["ratio_vs_plain"]["median"]
                if main_variant
                else None,
                "met": bool(
                    main_variant and results[main_variant]["ratio_vs_plain"]["median"] >= 1.2
                ),
                "best_fp32_variant": best,
                "best_fp32_ratio_median": results[best]["ratio_vs_plain"]["median"]
                if best
                else None,
            },
        }
    first = {n: round(m.first_step_s, 3) for n, m in methods.items()}
    compile_info = None
    if "embedlab_compiled" in methods:
        th = threads[-1]
        typical = statistics.median(methods["embedlab_compiled"].times[th]) / args.steps
        compile_info = {
            "compile_s": round(methods["embedlab_compiled"].first_step_s - 2 * typical, 2),
            "note": "first step minus two typical steps (the first step also runs one "
            "probe forward+backward), "
            f"at {th} threads, "
            + (
                "warm Inductor cache"
                if args.warm_inductor_cache
                else "empty Inductor cache (cold compile)"
            ),
        }

    prof: dict[str, Any] = {}
    if args.profile_steps:
        for th in threads:
            torch.set_num_threads(th)
            for n in ("plain", "embedlab_eager", "embedlab_compiled"):
                if n in methods:
                    prof.setdefault(f"{th}_threads", {})[n] = p = profile_split(
                        methods[n], pool, args.profile_steps
                    )
                    print(f"profile {th} threads {n}: {p['ms_per_step_by_category']}", flush=True)

    out = {
        "benchmark": "throughput",
        "command": shlex.join(
            [
                os.path.relpath(sys.executable, ROOT)
                if sys.executable.startswith(str(ROOT))
                else sys.executable,
                *sys.argv,
            ]
        ),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": cpu_info(),
        "versions": versions(),
        "threads": threads,
        "load_average": {
            "before": load_before,
            "after": loadavg(),
            "per_round_1min": [x[0] if x else None for x in loads],
            "note": "1/5/15-min load averages; the machine is shared, "
            "so other jobs compete for its cores",
        },
        "config": {
            "batch_size": args.batch_size,
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "lr": args.lr,
            "optimizer": "SGD (dense: torch.optim.SGD; embeddings: plain sparse SGD "
            "/ FBGEMM fused EXACT_SGD)",
            "model": "kaggle (dim 16, bottom 13-512-256-64-16, top 367-512-256-1)",
            "num_tables": len(schema.sparse),
            "max_rows_per_table": args.max_rows,
            "zipf_exponent": args.zipf,
            "pool_batches": args.pool,
            **workload,
            "seed": args.seed,
        },
        "work_per_sample": {k: round(v, 4) for k, v in fps.items()},
        "by_threads": by_threads,
        "first_step_s": first,
        "compile": compile_info,
        "exactness_vs_original": exact,
        "profile": prof,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    brief = {
        th: {
            "goal": b["goal"],
            **{
                n: {
                    "sps": r["samples_per_s"]["median"],
                    "ratio": r.get("ratio_vs_plain", {}).get("median"),
                    "peak_frac": r["fraction_of_matmul_peak"],
                }
                for n, r in b["results"].items()
            },
        }
        for th, b in by_threads.items()
    }
    print(json.dumps(brief, indent=1))
    return out


if __name__ == "__main__":
    main()
