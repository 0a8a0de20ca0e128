"""BLENDER on Attributed Animal Silhouettes: operator fidelity and zero-shot metric learning.

Per class partition (``--partitions``; ``ClassPartition.from_seed``: 5 training, 2
validation, 3 test classes):

1. the conditional UNet is trained on the training classes' real images (partial support:
   at most one attribute per image) or loaded from ``--work/gen-p{P}``;
2. a class judge (small CNN) is trained on *real* renders of the training classes with
   random attribute combinations;
3. the guidance scale (``--scales``) is chosen on the *training* classes by single-attribute
   prompt control and class accuracy (``study.select_scale``);
4. **fidelity**: every operator variant samples the same prompt designs with the same seeds
   (union: two single-attribute prompts; intersection: three prompts sharing one attribute,
   one private each); scored with the exact detectors, the judge and diversity measures;
5. **metric learning**: each arm (real only, + class-only synthetic, + BLENDER union /
   intersection / both, + oracle re-renders) trains the same embedding for the same
   iterations and batch size on the training classes, picks its checkpoint on the
   validation classes, and is scored once on the test classes. Paired differences over
   (partition, seed) with 95% t-intervals.

Every stage is cached under ``--work`` (a crashed run resumes). Nothing is tuned on
validation or test classes; the guidance scale is chosen on the generator's own training
classes, the embedding's checkpoint on the validation classes.

Usage::

    .venv/bin/python benchmarks/blender.py --partitions 0 1 --seeds 0 1 2 3 4 --jobs 2 --out benchmarks/results/blender.json
    .venv/bin/python benchmarks/blender.py --quick --out /tmp/blender.json

With a GPU: ``--device cuda`` (and a larger generator, ``--gen-channels 32 64 64 --gen-layers 2``),
or stage the partitions on a GPU machine with ``benchmarks/blender_gpu.sh`` and run the metric
learning here from the unpacked ``--work`` cache (what produced
``benchmarks/results/blender_gpu_generator.json``; see its ``staging`` field).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.blender.data import ClassPartition, make_splits, oracle_images  # noqa: E402
from embedlab.blender.dml import DMLConfig, LabeledImages, evaluate, paired_difference, train_dml  # noqa: E402
from embedlab.blender.fidelity import (  # noqa: E402
    ClassJudge,
    ClassNet,
    rate_difference_interval,
    train_class_judge,
    wilson_interval,
)
from embedlab.blender.generator import GeneratorConfig, load_generator, train_generator  # noqa: E402
from embedlab.blender.study import POOLS, Guidance, fidelity_study, make_pool, select_scale  # noqa: E402
from embedlab.io import read_json, write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402

ARMS = ("none", "class", "union", "intersection", "both", "oracle")
BLENDER_ARMS = ("union", "intersection", "both")


def _labeled(a: Any) -> LabeledImages:
    return LabeledImages(a.x.float().contiguous(), a.y.long())


def _dml_job(job: dict[str, Any]) -> dict[str, Any]:
    """One metric-learning run (a worker process; one torch thread)."""
    torch.set_num_threads(1)
    out = Path(job["path"])
    if out.is_file():
        return read_json(out)
    splits = make_splits(ClassPartition.from_seed(job["partition"]), seed=job["partition"])
    pool = None
    if job["arm"] != "none":
        d = torch.load(job["pool"], weights_only=True)
        pool = LabeledImages(d["x"].float(), d["y"].long())
    cfg = DMLConfig(iterations=job["iterations"], eval_every=job["eval_every"], seed=job["seed"])
    res = train_dml(_labeled(splits.train), _labeled(splits.val), cfg, synthetic=pool)
    test = evaluate(res.load_model(), _labeled(splits.test))
    doc = {"partition": job["partition"], "seed": job["seed"], "arm": job["arm"], "test": test,
           "best_val": res.best_val, "best_iteration": res.best_iteration, "wall_s": res.wall_s,
           "images_seen": res.images_seen}  # fmt: skip
    write_json(out, doc)
    return doc


def _stage_partition(
    p: int, args: argparse.Namespace, guidance: Guidance, log: Any
) -> dict[str, Any]:
    """Generator, judge, fidelity and pools of one partition (cached)."""
    torch.set_num_threads(args.threads)
    work = Path(args.work) / f"p{p}"
    work.mkdir(parents=True, exist_ok=True)
    part = ClassPartition.from_seed(p)
    splits = make_splits(part, seed=p)
    gdir = Path(args.work) / f"gen-p{p}"
    if not (gdir / "generator.pt").is_file():
        log(f"partition {p}: training the generator ({args.gen_iterations} iterations)")
        cfg = GeneratorConfig(iterations=args.gen_iterations, channels=tuple(args.gen_channels),
                              layers_per_block=args.gen_layers, batch_size=args.gen_batch,
                              lr=args.gen_lr, seed=0)  # fmt: skip
        train_generator(splits.train.x, splits.train.y, splits.train.attrs, cfg, gdir, progress=True,
                        device=args.device, deadline_s=args.gen_deadline_s)  # fmt: skip
    gen = load_generator(gdir).to(args.device)
    gen_meta = read_json(gdir / "generator.json")
    judge_path = work / f"judge-{args.judge_images}.pt"
    if judge_path.is_file():
        judge = ClassJudge(ClassNet(len(part.train)), tuple(part.train), 0.0)
        st = torch.load(judge_path, weights_only=True)
        judge.net.load_state_dict(st["net"])
        judge.val_accuracy = float(st["val_accuracy"])
    else:
        o = oracle_images(splits.train, args.judge_images, seed=10_000 + p)
        judge = train_class_judge(o.x, o.y, seed=p)
        torch.save({"net": judge.net.state_dict(), "val_accuracy": judge.val_accuracy}, judge_path)
    real_acc = judge.accuracy(splits.train.x, splits.train.y)
    log(
        f"partition {p}: class judge val {judge.val_accuracy:.3f}, real training images {real_acc:.3f}"
    )
    sel_path = work / f"scale-selection-{'-'.join(map(str, args.scales))}-s{args.steps}.json"
    if len(args.scales) > 1:
        if sel_path.is_file():
            sel = read_json(sel_path)
        else:
            best, table = select_scale(
                gen, judge, part.train, tuple(args.scales), args.select_n, args.steps, seed=300 + p
            )
            sel = {"best": best, "table": table}
            write_json(sel_path, sel)
        guidance = Guidance(steps=args.steps, class_scale=sel["best"], attr_scale=sel["best"])
        log(f"partition {p}: guidance scale {sel['best']} chosen on training classes "
            + ", ".join(f"{k}: {v['score']:.3f}" for k, v in sel["table"].items()))  # fmt: skip
    else:
        sel = None
    tag = f"s{args.steps}-c{guidance.class_scale}-a{guidance.attr_scale}"
    fid_path = work / f"fidelity-n{args.fid_n}-{tag}.json"
    if fid_path.is_file():
        fid = read_json(fid_path)
    else:
        t0 = time.perf_counter()

        def show(task: str, v: str, s: dict[str, Any]) -> None:
            log(f"  {task:12s} {v:26s} any {s['union']['any']:.2f} all {s['union']['all']:.2f} "
                f"precision {s['intersection']['precision']:.2f} leak {s['union']['leak']:.2f} "
                f"class {s['class_accuracy']:.2f} combos {s['combinations_per_class']:.1f}")  # fmt: skip

        fid = fidelity_study(
            gen, judge, part.train, args.fid_n, guidance, seed=100 + p, progress=show
        )
        fid.update(judge_val_accuracy=judge.val_accuracy, judge_real_train_accuracy=real_acc,
                   wall_s=time.perf_counter() - t0)  # fmt: skip
        write_json(fid_path, fid)
    pools = {}
    for arm in args.arms:
        if arm == "none":
            continue
        path = work / f"pool-{arm}-{args.pool_size}-{tag}.pt"
        if not path.is_file():
            t0 = time.perf_counter()
            pool = make_pool(arm, splits, gen, args.pool_size, guidance, seed=200 + p)
            torch.save({"x": pool.x.half(), "y": pool.y}, path)
            log(
                f"partition {p}: pool {arm} ({args.pool_size} images) in {time.perf_counter() - t0:.0f} s"
            )
        pools[arm] = str(path)
    return {"partition": part.to_json(), "generator": {k: gen_meta[k] for k in ("parameters", "config")},
            "guidance": {"steps": guidance.steps, "class_scale": guidance.class_scale,
                         "attr_scale": guidance.attr_scale}, "scale_selection": sel,
            "generator_wall_s": gen_meta["meta"].get("wall_s"),
            "generator_training": {k: gen_meta["meta"].get(k) for k in ("iterations", "device", "stopped_at_deadline")}, "fidelity": fid, "pools": pools}  # fmt: skip


def _summarize(runs: list[dict[str, Any]], arms: tuple[str, ...]) -> dict[str, Any]:
    by: dict[str, dict[tuple[int, int], dict[str, float]]] = {}
    for r in runs:
        by.setdefault(r["arm"], {})[(r["partition"], r["seed"])] = r["test"]
    out: dict[str, Any] = {"arms": {}, "paired": {}}
    for arm in arms:
        vals = by.get(arm, {})
        if not vals:
            continue
        out["arms"][arm] = {m: {"mean": statistics.fmean(v[m] for v in vals.values()),
                                "sd": statistics.stdev([v[m] for v in vals.values()]) if len(vals) > 1 else 0.0}
                            for m in ("recall_at_1", "recall_at_2", "recall_at_4", "recall_at_8", "map_at_r")}  # fmt: skip
        out["arms"][arm]["n"] = len(vals)
    pairs = [(a, b) for a in BLENDER_ARMS for b in ("class", "none")] + [
        ("class", "none"),
        ("oracle", "none"),
    ]
    for a, b in pairs:
        if a not in by or b not in by:
            continue
        keys = sorted(set(by[a]) & set(by[b]))
        if len(keys) < 2:
            continue
        out["paired"][f"{a}-{b}"] = {m: paired_difference([by[a][k][m] for k in keys], [by[b][k][m] for k in keys])
                                    for m in ("recall_at_1", "map_at_r")}  # fmt: skip
    if "oracle" in out["arms"] and "none" in out["arms"]:
        gap = (
            out["arms"]["oracle"]["recall_at_1"]["mean"]
            - out["arms"]["none"]["recall_at_1"]["mean"]
        )
        out["gap_closed_recall_at_1"] = {
            a: (out["arms"][a]["recall_at_1"]["mean"] - out["arms"]["none"]["recall_at_1"]["mean"])
            / gap
            for a in (*BLENDER_ARMS, "class")
            if a in out["arms"] and gap > 0
        }
    return out


#: Each operator's own fidelity measure and the references it must beat (the issue's goal).
OWN_MEASURE = {"union": ("union", "any"), "intersection": ("intersection", "precision")}
REFERENCES = ("mean", "sum")
FIDELITY_MEASURES = {
    "union": ("any", "all", "leak"),
    "intersection": ("precision", "shared", "private"),
}


def fidelity_summary(parts: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """Fidelity rates pooled over partitions (images summed), each with a 95% Wilson
    interval, plus class accuracy; and each BLENDER operator minus the mean-residual and
    Composable-sum references on its own measure (union: ``any``; intersection:
    ``precision``) with Newcombe intervals (conservative: the variants are paired)."""
    fids = [p["fidelity"] for p in parts.values()]
    out: dict[str, Any] = {"partitions": len(fids), "tasks": {}, "operator_vs_reference": {}}
    for task, measures in FIDELITY_MEASURES.items():
        table: dict[str, Any] = {}
        for variant in fids[0][task]:
            n = sum(f["n"] for f in fids)
            row: dict[str, Any] = {"n": n}
            for m in (*measures, "class_accuracy"):
                scores = [f[task][variant] for f in fids]
                vals = [s[m] if m == "class_accuracy" else s[task][m] for s in scores]
                rate = sum(v * f["n"] for v, f in zip(vals, fids)) / n
                low, high = wilson_interval(min(1.0, max(0.0, rate)), n)
                row[m] = {"rate": rate, "ci_low": low, "ci_high": high}
            table[variant] = row
        out["tasks"][task] = table
    for op, (task, m) in OWN_MEASURE.items():
        t = out["tasks"][task]
        for ref in REFERENCES:
            if op in t and ref in t:
                out["operator_vs_reference"][f"{op}-{ref} ({m})"] = rate_difference_interval(
                    t[op][m]["rate"], t[op]["n"], t[ref][m]["rate"], t[ref]["n"]
                )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=POOLS)
    ap.add_argument("--gen-iterations", type=int, default=3000)
    ap.add_argument("--gen-channels", type=int, nargs="+", default=[16, 32, 32])
    ap.add_argument("--gen-layers", type=int, default=1, help="UNet layers per block.")
    ap.add_argument("--gen-batch", type=int, default=64)
    ap.add_argument("--gen-lr", type=float, default=1e-3)
    ap.add_argument(
        "--gen-deadline-s",
        type=float,
        default=None,
        help="Stop generator training early after this many seconds (recorded in generator.json).",
    )
    ap.add_argument(
        "--device",
        default="cpu",
        help="Device of generator training and sampling (cpu, cuda); metric learning stays on CPU.",
    )
    ap.add_argument("--judge-images", type=int, default=8000)
    ap.add_argument("--fid-n", type=int, default=300, help="Images per operator variant.")
    ap.add_argument("--pool-size", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument(
        "--class-scale", type=float, default=3.0, help="Used when --scales has one value or none."
    )
    ap.add_argument("--attr-scale", type=float, default=3.0)
    ap.add_argument(
        "--scales",
        type=float,
        nargs="*",
        default=[1.0, 2.0, 3.0],
        help="Candidate guidance scales, chosen per partition on the training classes.",
    )
    ap.add_argument(
        "--select-n", type=int, default=60, help="Images per attribute in the scale selection."
    )
    ap.add_argument("--dml-iterations", type=int, default=800)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="Torch threads of the sampling stage.")
    ap.add_argument("--work", default="benchmarks/.work/blender")
    ap.add_argument(
        "--stage-only",
        action="store_true",
        help="Generator, judge, fidelity, pools; no metric learning.",
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--resummarize",
        metavar="JSON",
        help="Recompute the summaries of an existing results file in place and exit.",
    )
    ap.add_argument("--out", default="benchmarks/results/blender.json")
    args = ap.parse_args(argv)
    if args.resummarize:
        doc = read_json(args.resummarize)
        doc["dml_summary"] = _summarize(doc["dml_runs"], tuple(doc["settings"]["arms"]))
        doc["fidelity_summary"] = fidelity_summary(doc["partitions"])
        write_json(args.resummarize, doc)
        _report(doc, print)
        return doc
    if args.quick:
        args.partitions, args.seeds, args.gen_iterations = [0], [0], 60
        args.fid_n, args.pool_size, args.steps, args.dml_iterations, args.eval_every = (
            20,
            40,
            4,
            20,
            10,
        )
        args.judge_images, args.work, args.scales, args.select_n = (
            600,
            str(Path(args.work) / "quick"),
            [1.0, 2.0],
            5,
        )
    t0 = time.perf_counter()
    guidance = Guidance(steps=args.steps, class_scale=args.class_scale, attr_scale=args.attr_scale)
    log = lambda m: print(m, flush=True)  # noqa: E731
    parts = {p: _stage_partition(p, args, guidance, log) for p in args.partitions}
    if args.stage_only:
        return {"partitions": parts}
    jobs = []
    for p in args.partitions:
        for s in args.seeds:
            for arm in args.arms:
                name = f"dml-{arm}-s{s}-it{args.dml_iterations}-{Path(parts[p]['pools'].get(arm, 'real')).stem}.json"
                jobs.append({"partition": p, "seed": s, "arm": arm, "pool": parts[p]["pools"].get(arm),
                             "iterations": args.dml_iterations, "eval_every": args.eval_every,
                             "path": str(Path(args.work) / f"p{p}" / name)})  # fmt: skip
    runs = []
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        for r in ex.map(_dml_job, jobs):
            runs.append(r)
            log(f"dml p{r['partition']} s{r['seed']} {r['arm']:12s} test R@1 {r['test']['recall_at_1']:.4f} "
                f"MAP@R {r['test']['map_at_r']:.4f} (val {r['best_val']['map_at_r']:.4f} @ {r['best_iteration']})")  # fmt: skip
    doc = {"benchmark": "BLENDER operator fidelity and zero-shot metric learning (Attributed Animal Silhouettes)",
           "command": " ".join(["python", *map(shlex.quote, sys.argv)]), "machine": describe(),
           "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "settings": vars(args),
           "partitions": parts, "dml_runs": runs, "dml_summary": _summarize(runs, tuple(args.arms)),
           "fidelity_summary": fidelity_summary(parts), "wall_s": time.perf_counter() - t0}  # fmt: skip
    write_json(args.out, doc)
    _report(doc, log)
    return doc


def _report(doc: dict[str, Any], log: Any) -> None:
    for k, v in doc["fidelity_summary"]["operator_vs_reference"].items():
        log(f"fidelity {k:28s} {v['diff']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]")
    s = doc["dml_summary"]
    for arm, v in s["arms"].items():
        log(
            f"{arm:12s} R@1 {v['recall_at_1']['mean']:.4f} ± {v['recall_at_1']['sd']:.4f}  MAP@R {v['map_at_r']['mean']:.4f}"
        )
    for k, v in s["paired"].items():
        d = v["recall_at_1"]
        log(f"{k:22s} ΔR@1 {d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")


if __name__ == "__main__":
    main()
