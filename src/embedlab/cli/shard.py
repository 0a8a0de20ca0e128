"""``embedlab shard``: sharding tasks and plans (the v1 file formats of docs/sharding.md)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Embedding-table sharding: planners and plans.", no_args_is_help=True)


@app.command("planners")
def planners_cmd() -> None:
    """List the registered planners."""
    from embedlab.sharding.planners import DEFAULT_PLANNER, PLANNERS

    for name in PLANNERS:
        typer.echo(name)
    typer.echo(f"default -> {DEFAULT_PLANNER}")


@app.command("plan")
def plan_cmd(
    tasks: Path = typer.Option(..., "--tasks", help="Task file (embedlab.sharding-tasks/v1)."),
    planner: str = typer.Option(
        "default",
        "--planner",
        help="A name from `embedlab shard planners` (default: the measured portfolio, which keeps "
        "TorchRec's plan unless a candidate's is clearly faster on this machine).",
    ),
    out: Path = typer.Option(..., "--out", help="Plan file to write (embedlab.sharding-plans/v1)."),
    model: Path | None = typer.Option(
        None, "--model", help="A learned planner's model folder (dreamshard)."
    ),
    comm: Path | None = typer.Option(
        None,
        "--comm",
        help="dreamshard, autoshard, portfolio (default): communication model of the target devices "
        "(`shard calibrate-comm`).",
    ),
) -> None:
    """One plan per task, with the planning time recorded; plans are validated."""
    from embedlab.io import ensure_dir
    from embedlab.sharding.planners import plan_all
    from embedlab.sharding.types import load_tasks, save_plans

    ts = load_tasks(tasks)
    plans = plan_all(ts, planner, str(model) if model is not None else None,
                     str(comm) if comm is not None else None)  # fmt: skip
    ensure_dir(out.parent if str(out.parent) else Path("."))
    save_plans(out, plans)
    total = sum(p.planning_seconds for p in plans)
    typer.echo(f"{len(plans)} plans by {planner} ({total * 1000:.1f} ms planning) -> {out}")


@app.command("gen-tasks")
def gen_tasks_cmd(
    family: str = typer.Option(..., "--family", help="dreamshard, autoshard or neuroshard."),
    tables: int = typer.Option(..., "--tables", help="Tables per task."),
    devices: int = typer.Option(..., "--devices", help="Devices per task."),
    count: int = typer.Option(10, "--count", help="Number of tasks."),
    seed: int = typer.Option(0, "--seed"),
    split: str = typer.Option(
        "train", "--split", help="Disjoint part of the table pool: train (half), valid or test (a quarter each)."
    ),
    out: Path = typer.Option(..., "--out", help="Task file to write (embedlab.sharding-tasks/v1)."),
    optimizer: str = typer.Option(
        "none",
        "--optimizer",
        help="Embedding optimizer whose state device memory must hold: sgd, rowwise_adagrad, adagrad, "
        "adam, or none (default: the task key is omitted, weights only).",
    ),
) -> None:
    """Tasks of one of the papers' families over the synthetic DLRM-like table pool."""
    from embedlab.io import ensure_dir
    from embedlab.sharding.generator import gen_tasks
    from embedlab.sharding.types import save_tasks

    opt = None if optimizer == "none" else optimizer
    ts = gen_tasks(family, tables, devices, count, seed=seed, split=split, optimizer=opt)
    ensure_dir(out.parent if str(out.parent) else Path("."))
    save_tasks(out, ts)
    state = f", {opt} state" if opt is not None else ""
    typer.echo(f"{len(ts)} {family} tasks ({tables} tables, {devices} devices{state}) -> {out}")


@app.command("eval")
def eval_cmd(
    tasks: Path = typer.Option(..., "--tasks", help="Task file (embedlab.sharding-tasks/v1)."),
    plans: Path = typer.Option(
        ..., "--plans", help="Plan file(s) (embedlab.sharding-plans/v1).", exists=False
    ),
    out: Path = typer.Option(..., "--out", help="Costs JSON to write."),
    backend: str = typer.Option("cpu", "--backend"),
    batch_size: int = typer.Option(
        4096, "--batch-size", "--batch", help="Global batch the CPU backend times (recorded)."
    ),
    repeats: int = typer.Option(15, "--repeats", help="Timed iterations per device kernel."),
    rounds: int = typer.Option(
        5, "--rounds", help="Interleaved rounds the repeats are split into."
    ),
    statistic: str = typer.Option(
        "round_min_median", "--statistic", help="round_min_median, min or median of the repeats."
    ),
    budget_s: float | None = typer.Option(
        None, "--budget-s", help="Stop with an error after this many seconds of measuring."
    ),
    comm: Path | None = typer.Option(
        None, "--comm", help="Communication model from `shard calibrate-comm`."
    ),
) -> None:
    """Measure plans with the CostMeter: cost, parts, straggler, ratio to the best plan and to
    the balanced estimate (an estimate, not a bound)."""
    from embedlab.io import ensure_dir, write_json
    from embedlab.sharding.cost import CostMeter, MeterSettings
    from embedlab.sharding.types import load_plans, load_tasks

    by_name = {t.name: t for t in load_tasks(tasks)}
    all_plans = load_plans(plans)
    from embedlab.sharding.comm import CommModel

    settings = MeterSettings(
        backend=backend, batch_size=batch_size, repeats=repeats, rounds=rounds, statistic=statistic
    )
    meter = CostMeter(settings, comm=CommModel.load(comm) if comm else None, budget_s=budget_s)
    rows = []
    for p in all_plans:
        if p.task not in by_name:
            from embedlab.errors import UserError

            raise UserError(f"{plans}: plan for task {p.task!r}, which is not in {tasks}")
    for name, task in by_name.items():
        mine = [p for p in all_plans if p.task == name]
        if not mine:
            continue
        estimate = meter.balanced_estimate(task)
        costs = meter.measure_plans(task, mine)  # all plans of the task timed interleaved
        best = min(c.total_ms for c in costs)
        typer.echo(f"task {name} (balanced estimate {estimate:.2f} ms at batch {batch_size}):")
        for c in costs:
            s = c.devices[c.straggler]
            typer.echo(
                f"  {c.planner:20s} {c.total_ms:8.2f} ms  x{c.total_ms / best:5.2f} of best  x{c.total_ms / estimate:5.2f} of estimate"
                f"  straggler {c.straggler} (input {s.input_comm_ms:.2f} + fwd {s.fwd_ms:.2f} + comm {s.fwd_comm_ms + s.bwd_comm_ms:.2f}"
                f" + bwd {s.bwd_ms:.2f}, cv {s.cv:.3f})"
            )
            rows.append({**c.to_json(), "ratio_to_best": c.total_ms / best, "balanced_estimate_ms": estimate,
                         "ratio_to_estimate": c.total_ms / estimate})  # fmt: skip
    ensure_dir(out.parent if str(out.parent) else Path("."))
    write_json(out, {"format": "embedlab.sharding-costs/v1", "costs": rows})
    typer.echo(f"{len(rows)} plan costs -> {out}")


@app.command("calibrate-comm")
def calibrate_comm_cmd(
    nproc: int = typer.Option(2, "--nproc", help="Processes taking part in the all-to-all."),
    rounds: int = typer.Option(5, "--rounds", help="Interleaved bursts per message size."),
    repeats: int = typer.Option(4, "--repeats", help="Calls per burst (the fastest counts)."),
    out: Path = typer.Option(..., "--out", help="JSON of the fitted alpha-beta model."),
) -> None:
    """Time TorchRec's input (ids) and pooled all-to-alls among local gloo processes and fit
    one alpha-beta line per message kind."""
    from embedlab.io import ensure_dir
    from embedlab.sharding.comm import calibrate

    if nproc < 2:
        from embedlab.errors import UserError

        raise UserError(f"--nproc must be at least 2, got {nproc}")
    if rounds < 1 or repeats < 1:
        from embedlab.errors import UserError

        raise UserError("--rounds and --repeats must be >= 1")
    ensure_dir(out.parent if str(out.parent) else Path("."))
    model = calibrate(nproc, rounds=rounds, repeats=repeats)
    model.save(out)
    lines = ", ".join(f"{k} {a:.3f} ms + {b * 1e6:.3f} ms/MB" for k, (a, b) in model.kinds.items())
    typer.echo(f"{lines} ({model.backend}, {nproc} processes) -> {out}")


def _task_and_plan(tasks: Path, name: str | None, plans: Path, planner: str | None):  # noqa: ANN202
    """The task named ``name`` (or the only one) and its plan (by ``planner`` if several)."""
    from embedlab.errors import UserError
    from embedlab.sharding.types import load_plans, load_tasks

    ts = load_tasks(tasks)
    if name is None:
        if len(ts) != 1:
            raise UserError(f"{tasks} holds {len(ts)} tasks; choose one with --name")
        task = ts[0]
    else:
        found = [t for t in ts if t.name == name]
        if not found:
            raise UserError(f"no task {name!r} in {tasks}")
        task = found[0]
    mine = [p for p in load_plans(plans) if p.task == task.name]
    if planner is not None:
        mine = [p for p in mine if p.planner == planner]
    if not mine:
        raise UserError(
            f"{plans} holds no plan for task {task.name!r}"
            + (f" by {planner!r}" if planner else "")
        )
    if len(mine) > 1:
        raise UserError(f"{plans} holds {len(mine)} plans for task {task.name!r} (planners "
                        f"{', '.join(p.planner for p in mine)}); choose one with --planner")  # fmt: skip
    mine[0].validate(task)
    return task, mine[0]


@app.command("run")
def run_cmd(
    task_file: Path = typer.Option(..., "--task", help="Task file (embedlab.sharding-tasks/v1)."),
    name: str | None = typer.Option(
        None, "--name", help="Task name (needed if the file holds several)."
    ),
    plan_file: Path = typer.Option(..., "--plan", help="Plan file (embedlab.sharding-plans/v1)."),
    planner: str | None = typer.Option(
        None, "--planner", help="Which plan, if the file holds several for the task."
    ),
    nproc: int | None = typer.Option(
        None, "--nproc", help="Processes to launch (default: the task's devices)."
    ),
    steps: int = typer.Option(20, "--steps", help="Timed training steps."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed steps first."),
    batch_size: int = typer.Option(
        4096, "--batch-size", "--batch", help="Global batch (split evenly over the processes)."
    ),
    seed: int = typer.Option(0, "--seed"),
    comm: Path | None = typer.Option(
        None, "--comm", help="Comm model for the prediction (default: calibrated in the run)."
    ),
    repeats: int = typer.Option(15, "--repeats", help="CostMeter repeats for the prediction."),
    predict: bool = typer.Option(
        True, "--predict/--no-predict", help="Measure the CostMeter prediction too."
    ),
    threads: int = typer.Option(1, "--threads", help="Intra-op threads per process."),
    out: Path = typer.Option(..., "--out", help="Run report JSON to write."),
) -> None:
    """Train a few steps of the task's DLRM sharded by the plan under DistributedModelParallel
    (torchrun; gloo on CPU, NCCL on GPU) and report per-rank phase times next to the
    CostMeter prediction."""
    from embedlab.distributed import under_torchrun
    from embedlab.errors import UserError

    task, plan = _task_and_plan(task_file, name, plan_file, planner)
    world = nproc or task.num_devices
    for k, v in (
        ("steps", steps),
        ("batch-size", batch_size),
        ("threads", threads),
        ("repeats", repeats),
    ):
        if v < 1:
            raise UserError(f"--{k} must be >= 1, got {v}")
    if warmup < 0:
        raise UserError(f"--warmup must be >= 0, got {warmup}")
    if world != task.num_devices:
        raise UserError(
            f"task {task.name!r} has {task.num_devices} devices; run it with --nproc {task.num_devices}"
        )
    if batch_size % world:
        raise UserError(f"--batch-size {batch_size} does not split evenly over {world} processes")
    if not under_torchrun():
        from embedlab.distributed import launch

        argv = ["shard", "run", "--task", str(task_file), "--name", task.name, "--plan", str(plan_file),
                "--planner", plan.planner, "--steps", str(steps), "--warmup", str(warmup),
                "--batch-size", str(batch_size), "--seed", str(seed), "--repeats", str(repeats),
                "--threads", str(threads), "--out", str(out), "--predict" if predict else "--no-predict"]  # fmt: skip
        if comm is not None:
            argv += ["--comm", str(comm)]
        code = launch(world, argv)
        if code != 0:
            raise typer.Exit(code)
        return
    _run_worker(task, plan, steps, warmup, batch_size, seed, comm, repeats, predict, threads, out)


def _run_worker(
    task, plan, steps, warmup, batch_size, seed, comm, repeats, predict, threads, out
) -> None:  # noqa: ANN001
    import torch.distributed as dist

    from embedlab.distributed import finish, init_distributed
    from embedlab.errors import UserError
    from embedlab.io import ensure_dir, write_json
    from embedlab.machine import describe
    from embedlab.sharding.comm import DEFAULT_SIZES, CommModel, model_from_kinds, time_kinds
    from embedlab.sharding.cost import CostMeter, MeterSettings
    from embedlab.sharding.run import run_plan

    env = init_distributed(threads)
    try:
        if env.world_size != task.num_devices:
            raise UserError(
                f"task {task.name!r} has {task.num_devices} devices, torchrun started {env.world_size} processes"
            )
        if comm is not None:
            model = CommModel.load(comm)
        elif env.world_size > 1:
            pts = time_kinds(DEFAULT_SIZES, rounds=3, repeats=4)
            model = model_from_kinds(pts, f"{env.backend}-{env.device.type}", env.world_size,
                                     DEFAULT_SIZES, 3, 4, threads)  # fmt: skip
        else:
            model = None
        ranks = run_plan(task, plan, steps=steps, warmup=warmup, batch_size=batch_size, seed=seed)
        if env.is_main:
            predicted = None
            if predict and env.device.type == "cpu":
                meter = CostMeter(
                    MeterSettings(batch_size=batch_size, repeats=repeats, seed=seed), comm=model
                )
                predicted = meter.measure_plan(task, plan)
            straggler = max(ranks, key=lambda r: r.embedding_ms)
            doc = {
                "format": "embedlab.sharding-run/v1", "task": task.name, "planner": plan.planner,
                "nproc": env.world_size, "backend": env.backend, "device": env.device.type,
                "batch_size": batch_size, "steps": steps, "warmup": warmup, "seed": seed,
                "threads_per_process": threads, "machine": describe(),
                "ranks": [r.to_json() for r in ranks],
                "measured_embedding_ms": straggler.embedding_ms, "measured_straggler": straggler.rank,
                "measured_step_ms": max(r.step_ms for r in ranks),
                "comm_model": None if model is None else model.to_json(),
                "predicted": None if predicted is None else predicted.to_json(),
                "measured_over_predicted": None if predicted is None else straggler.embedding_ms / predicted.total_ms,
            }  # fmt: skip
            ensure_dir(out.parent if str(out.parent) else Path("."))
            write_json(out, doc)
            _print_run(doc)
        dist.barrier()
    finally:
        finish()
    from embedlab.distributed import exit_worker

    exit_worker(0)  # the result is written; skip native teardown (see exit_worker)


def _print_run(doc: dict) -> None:
    pred = doc["predicted"]
    typer.echo(f"task {doc['task']} plan {doc['planner']}: {doc['nproc']} processes ({doc['backend']}), "
               f"batch {doc['batch_size']}, median of {doc['steps']} steps (ms)")  # fmt: skip
    typer.echo(
        "  rank  input_dist  fwd_compute  fwd_comm   dense  bwd_comm  bwd_compute  embedding | predicted compute  comm"
    )
    for r in doc["ranks"]:
        p = ""
        if pred is not None:
            d = pred["devices"][r["rank"]]
            p = f" | {d['fwd_ms'] + d['bwd_ms']:17.2f} {d.get('input_comm_ms', 0.0) + d['fwd_comm_ms'] + d['bwd_comm_ms']:5.2f}"
        typer.echo(f"  {r['rank']:4d} {r['input_dist_ms']:11.2f} {r['fwd_compute_ms']:12.2f} {r['fwd_comm_ms']:9.2f} "
                   f"{r['dense_ms']:7.2f} {r['bwd_comm_ms']:9.2f} {r['bwd_compute_ms']:12.2f} {r['embedding_ms']:10.2f}{p}")  # fmt: skip
    line = f"  measured plan cost {doc['measured_embedding_ms']:.2f} ms (straggler rank {doc['measured_straggler']})"
    if pred is not None:
        line += f"; CostMeter prediction {pred['total_ms']:.2f} ms (straggler {pred['straggler']}), ratio {doc['measured_over_predicted']:.2f}"
    typer.echo(line)


@app.command("train")
def train_cmd(
    algorithm: str = typer.Argument(..., help="dreamshard or autoshard"),
    tasks: Path = typer.Option(..., "--tasks", help="Training tasks (embedlab.sharding-tasks/v1)."),
    out: Path = typer.Option(..., "--out", help="Run folder; the model is written to OUT/model."),
    iterations: int = typer.Option(10, "--iterations"),
    rollout_tasks: int = typer.Option(10, "--rollout-tasks", help="Plans measured per iteration."),
    batch_size: int = typer.Option(4096, "--batch-size", "--batch", help="Batch the CostMeter times."),
    repeats: int = typer.Option(15, "--repeats"),
    comm: Path | None = typer.Option(
        None, "--comm", help="Communication model (`shard calibrate-comm`)."
    ),
    budget_s: float | None = typer.Option(
        None, "--budget-s", help="Seconds of measurement allowed."
    ),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT."),
    comm_mode: str = typer.Option(
        "analytic",
        "--comm-mode",
        help="dreamshard: 'analytic' (predicted compute + the --comm model) or 'learned' (the reference).",
    ),
    search_plans: int = typer.Option(
        0, "--search-plans",
        help="dreamshard: also measure, per iteration, the planning-time search's plan on this many of "
             "the rollout tasks (0: the reference).",
    ),
    search: str = typer.Option(
        "", "--search", help="dreamshard: that search (default: the registered planner's)."
    ),
    final_cost_steps: int = typer.Option(
        0, "--final-cost-steps",
        help="dreamshard: end with this many steps fitting the cost network to all measured plans "
             "(0: the reference); with --resume, a finished run gets them.",
    ),
    final_plans: int = typer.Option(
        0, "--final-plans",
        help="dreamshard: before that final fit, measure this many heuristic plans of the training "
             "tasks perturbed by random moves and fit on them too (0: none).",
    ),
    reward: str = typer.Option(
        "measured",
        "--reward",
        help="autoshard: 'measured' (the paper's: measured device costs) or 'cost_head' (its own predictions).",
    ),
) -> None:
    """Train a learned planner on measured plans of the training tasks."""
    import shlex
    import sys

    from embedlab.errors import UserError, unknown_name
    from embedlab.sharding.comm import CommModel
    from embedlab.sharding.cost import CostMeter, MeterSettings
    from embedlab.sharding.dreamshard.train import TrainSettings, train_dreamshard
    from embedlab.sharding.types import load_tasks

    if algorithm not in ("dreamshard", "autoshard"):
        raise unknown_name("learned planner", algorithm, ("dreamshard", "autoshard"))
    if iterations < 1 or rollout_tasks < 1:
        raise UserError("--iterations and --rollout-tasks must be >= 1")
    other = {"dreamshard": [("--reward", reward != "measured")],
             "autoshard": [("--comm-mode", comm_mode != "analytic"), ("--search-plans", search_plans != 0),
                           ("--search", bool(search)), ("--final-cost-steps", final_cost_steps != 0),
                           ("--final-plans", final_plans != 0)]}[algorithm]  # fmt: skip
    given = [flag for flag, used in other if used]
    if given:
        raise UserError(f"{', '.join(given)}: not an option of {algorithm} training")
    ts = load_tasks(tasks)
    meta = {"command": " ".join(["embedlab", *map(shlex.quote, sys.argv[1:])]), "seed": seed, "tasks": str(tasks),
            "comm": None if comm is None else CommModel.load(comm).to_json()}  # fmt: skip
    if algorithm == "autoshard":
        from embedlab.sharding.autoshard.train import TrainSettings as ASettings
        from embedlab.sharding.autoshard.train import train_autoshard

        meter = CostMeter(MeterSettings(batch_size=batch_size, repeats=repeats, seed=seed))
        asettings = ASettings(iterations=iterations, rollout_tasks=rollout_tasks, measure_budget_s=budget_s,
                              seed=seed, reward=reward)  # fmt: skip
        train_autoshard(ts, out, meter, asettings, resume=resume, meta=meta)
        typer.echo(f"AutoShard trained -> {out}/model")
        return
    meter = CostMeter(MeterSettings(batch_size=batch_size, repeats=repeats, seed=seed),
                      comm=CommModel.load(comm) if comm else None, budget_s=budget_s)  # fmt: skip
    settings = TrainSettings(
        iterations=iterations, rollout_tasks=rollout_tasks, seed=seed, comm_mode=comm_mode,
        search_plans=search_plans, search=search, final_cost_steps=final_cost_steps,
        final_plans=final_plans,
    )
    model = train_dreamshard(ts, out, meter, settings, resume=resume, meta=meta)
    extra = (model.meta.get("final_cost_fit") or {}).get("plans", 0)
    typer.echo(f"DreamShard trained ({model.meta.get('iterations')} iterations, {model.meta.get('samples')} measured plans"
               f"{f' and {extra} for the final fit' if extra else ''}, {model.meta.get('measure_s', 0):.0f}s measuring)"
               f" -> {out}/model")  # fmt: skip


@app.command("pretrain")
def pretrain_cmd(
    algorithm: str = typer.Argument(..., help="neuroshard"),
    out: Path = typer.Option(
        ..., "--out", help="Run folder (data, checkpoints); the model goes to OUT/model."
    ),
    budget_s: float | None = typer.Option(
        None, "--budget-s", help="Seconds of measurement for this folder."
    ),
    samples: int = typer.Option(2000, "--samples", help="Compute samples (measured shards)."),
    shard_memory_gib: float = typer.Option(
        4.0, "--shard-memory-gib", help="Largest sampled shard (GiB)."
    ),
    device_counts: str = typer.Option(
        "2,4,8", "--device-counts", help="Device counts of the comm networks."
    ),
    comm: Path | None = typer.Option(
        None,
        "--comm",
        help="Communication model (`shard calibrate-comm`); default: the one recorded in "
        "NeuroShard's shipped model.",
    ),
    batch_size: int = typer.Option(4096, "--batch-size", "--batch", help="Batch the CostMeter times."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT."),
) -> None:
    """Pre-train a learned planner's universal cost models (NeuroShard) on measured shards."""
    import shlex
    import sys

    from embedlab.errors import UserError, unknown_name
    from embedlab.sharding.comm import CommModel
    from embedlab.sharding.cost import CostMeter, MeterSettings
    from embedlab.sharding.generator import GIB
    from embedlab.sharding.neuroshard.data import PretrainSettings
    from embedlab.sharding.neuroshard.train import pretrain_neuroshard

    if algorithm != "neuroshard":
        raise unknown_name("pre-trained planner", algorithm, ("neuroshard",))
    try:
        counts = tuple(int(c) for c in device_counts.split(",") if c.strip())
    except ValueError:
        raise UserError(
            f"--device-counts must be comma-separated integers, got {device_counts!r}"
        ) from None
    if samples < 1 or not counts or min(counts) < 2 or shard_memory_gib <= 0:
        raise UserError("--samples must be >= 1, --device-counts >= 2 each, --shard-memory-gib > 0")
    settings = PretrainSettings(compute_samples=samples, shard_memory_bytes=int(shard_memory_gib * GIB),
                                device_counts=counts, seed=seed)  # fmt: skip
    pretrain_neuroshard(out, meter=CostMeter(MeterSettings(batch_size=batch_size, seed=seed)),
                        comm=CommModel.load(comm) if comm else None, settings=settings, measure_budget_s=budget_s,
                        resume=resume, meta={"command": " ".join(["embedlab", *map(shlex.quote, sys.argv[1:])]),
                                             "seed": seed})  # fmt: skip
    typer.echo(f"NeuroShard cost models pre-trained -> {out}/model")
