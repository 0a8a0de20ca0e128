"""Do DreamShard's perturbed final-fit plans teach its per-device heads? A held-out check.

A run trained with ``--final-plans N`` keeps its N measured perturbed plans apart from the
loop's (checkpoint ``final_samples``). This script holds out the last ``--holdout`` of them
and compares, on those plans' devices, the per-device forward and backward predictions of:

- the model the run was resumed from (``--base``: the loop's networks, no final fit);
- that model after the final fit (:func:`~embedlab.sharding.dreamshard.train.final_cost_fit`
  with the run's step count and the default rate, batch and seed, as the shipped run used)
  on the loop's plans alone;
- the same fit on the loop's plans plus the other perturbed plans.

Reported: MAPE of the per-device forward and backward compute over the held-out devices that
hold tables, and MAPE and Spearman (pooled over plans) of the compute part of the composed
cost (slowest forward plus slowest backward). No measurement: it reads the checkpoint. The
held-out plans are new plans, not new tasks: the run visits its training tasks in a cycle,
so a held-out plan's task may also have fitted plans.

Usage::

    python benchmarks/sharding_final_plans_holdout.py --run benchmarks/.work/fp/ds_fp \\
        --base benchmarks/.work/cm/ds_analytic/model --out benchmarks/results/sharding_final_plans_holdout.json
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import shlex
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.sharding.dreamshard.agent import DreamShardModel  # noqa: E402
from embedlab.sharding.dreamshard.train import (  # noqa: E402
    CostSample,
    TrainSettings,
    batch_tensors,
    final_cost_fit,
)


def device_errors(model: DreamShardModel, samples: list[CostSample]) -> dict[str, float]:
    """Per-device forward/backward MAPE and the composed compute's MAPE and Spearman on ``samples``."""
    feats, mask, parts, _, valid = batch_tensors(samples, model.scale_ms)
    with torch.no_grad():
        pred = model.cost.parts(model.cost.shard_vectors(feats, mask))
    used = valid.bool() & (mask.sum(-1) > 0)
    out = {}
    for name, j in (("fwd_mape", 0), ("bwd_mape", 1)):
        p, y = pred[..., j][used], parts[..., j][used]
        out[name] = float(((p - y).abs() / y).mean())
    on = used.float()
    y = (parts[..., 0] * on).amax(-1) + (parts[..., 1] * on).amax(-1)
    p = (pred[..., 0] * on).amax(-1) + (pred[..., 1] * on).amax(-1)
    out["compute_mape"] = float(((p - y).abs() / y).mean())
    out["compute_spearman"] = float(spearmanr(p.numpy(), y.numpy()).statistic)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a DreamShard run folder trained with --final-plans")
    ap.add_argument("--base", required=True, help="the model folder that run was resumed from")
    ap.add_argument("--holdout", type=int, default=60, help="last perturbed plans held out")
    ap.add_argument("--out", default="benchmarks/results/sharding_final_plans_holdout.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    ck = torch.load(Path(args.run) / "checkpoint.pt", weights_only=False)
    loop = [CostSample.from_state(s) for s in ck["samples"]]
    extra = [CostSample.from_state(s) for s in ck["final_samples"]]
    if len(extra) <= args.holdout:
        raise SystemExit(f"{args.run} has {len(extra)} perturbed plans; --holdout must be fewer")
    held, rest = extra[-args.holdout :], extra[: -args.holdout]
    base = DreamShardModel.load(args.base)
    steps = DreamShardModel.load(Path(args.run) / "model").meta["final_cost_fit"]["steps"]
    settings = TrainSettings(final_cost_steps=steps)
    rows = {"model before (no final fit)": device_errors(base, held)}
    for name, data in ((f"final fit on the loop's {len(loop)} plans", loop),
                       (f"final fit on those and {len(rest)} perturbed plans", loop + rest)):  # fmt: skip
        m = copy.deepcopy(base)
        final_cost_fit(m, data, settings)
        rows[name] = device_errors(m, held)
    doc = {"benchmark": "DreamShard per-device cost heads on held-out perturbed plans",
           "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
           "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": describe(),
           "settings": {**vars(args), "final_cost_steps": steps, "held_out_plans": len(held)},
           "wall_s": time.perf_counter() - t0, "results": rows}  # fmt: skip
    write_json(args.out, doc)
    for name, r in rows.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()), flush=True)
    return doc


if __name__ == "__main__":
    main()
