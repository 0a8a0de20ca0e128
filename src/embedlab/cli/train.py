"""``embedlab train``: train a DLRM and write a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from embedlab.errors import UserError
from embedlab.train.trainer import TrainConfig

_DEFAULTS = TrainConfig()  # the CLI's defaults are the library's


def train_cmd(
    out: Path = typer.Option(
        None, "--out", help="Run folder (config, metrics.jsonl, checkpoint, metrics.json)."
    ),
    data: str = typer.Option("synth", "--data", help="synth, movielens or criteo."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="synth: folder of `embedlab data synth-ctr` output; movielens: folder with ml-100k.{inter,user,item}."
    ),
    prepared: Path | None = typer.Option(
        None, "--prepared", help="Criteo: folder made by `embedlab data prepare criteo` (instead of --train FILE)."
    ),
    split: str = typer.Option(
        "80-10-10", "--split", help="With --prepared: 80-10-10, kaggle (last of 7 days halved) or terabyte (day 23 halved)."
    ),
    stream: bool = typer.Option(
        False, "--stream", help="With --prepared: read training rows in shuffled blocks, bounded memory."
    ),
    train: Path | None = typer.Option(None, "--train", help="Criteo TSV for training."),
    valid: Path | None = typer.Option(None, "--valid", help="Criteo TSV for validation."),
    test: Path | None = typer.Option(None, "--test", help="Criteo TSV for test."),
    max_ind_range: int | None = typer.Option(
        None, "--max-ind-range", help="Criteo with --tables hash: cap of each table size (default 10,000,000)."
    ),
    tables: str | None = typer.Option(
        None, "--tables",
        help="vocab (rows for training ids seen >= --vocab-min-count times, one shared row for the rest; "
        "default) or hash (ids modulo fixed sizes: --hash-rows, or Criteo's Kaggle sizes).",
    ),
    vocab_min_count: int = typer.Option(
        _DEFAULTS.vocab_min_count, "--vocab-min-count", help="With --tables vocab: training count an id needs for a row of its own."
    ),
    embedding_init: str = typer.Option(
        str(_DEFAULTS.embedding_init or "rows"), "--embedding-init",
        help="Embedding init U(-a, a): a number a, or 'rows' for a = sqrt(1/rows) (DLRM reference).",
    ),
    early_stop_patience: int = typer.Option(
        _DEFAULTS.early_stop_patience or 0, "--early-stop-patience",
        help="Stop after this many validation evaluations without improvement (0: never).",
    ),
    select_metric: str = typer.Option(
        _DEFAULTS.select_metric, "--select-metric", help="Validation metric of the best checkpoint: auc, logloss or ne."
    ),
    strict: bool = typer.Option(False, "--strict", help="synth, criteo: stop at the first malformed line."),
    model_size: str = typer.Option(
        "kaggle", "--model-size", help="kaggle, small, tiny, terabyte or DIM:BOTTOM:TOP."
    ),
    optimizer: str = typer.Option(
        "adam", "--optimizer", help="sgd, adagrad, rowwise_adagrad, adam, cf-sgd or fa-sgd."
    ),
    optimizer_options: str | None = typer.Option(
        None,
        "--optimizer-options",
        help="KEY=VALUE,... e.g. cf-sgd: exponent=0.5,floor=1,unit=batch,max_lr=1.",
    ),
    dense_optimizer: str | None = typer.Option(
        None,
        "--dense-optimizer",
        help="Optimizer of the MLPs (default: the optimizer's own companion).",
    ),
    lr: float | None = typer.Option(None, "--lr"),
    embedding_lr: float | None = typer.Option(None, "--embedding-lr"),
    embedding_kernel: str = typer.Option(
        "auto", "--embedding-kernel", help="auto, fused, sparse or dense."
    ),
    schedule: str = typer.Option(
        "constant", "--schedule", help="constant, warmup-decay or cosine."
    ),
    warmup_steps: int = typer.Option(0, "--warmup-steps"),
    epochs: int | None = typer.Option(
        None, "--epochs",
        help=f"Most epochs (default {_DEFAULTS.epochs}); the best validation epoch is kept and early stopping ends the run sooner.",
    ),
    max_steps: int | None = typer.Option(None, "--max-steps"),
    batch_size: int = typer.Option(512, "--batch-size"),
    train_rows: int | None = typer.Option(
        None, "--train-rows", help="Train on the first N training rows only."
    ),
    hash_rows: int | None = typer.Option(
        None, "--hash-rows", help="Cap every table at N rows (ids taken modulo N)."
    ),
    day: int | None = typer.Option(
        None, "--day", help="Synthetic data made with --days: train on this day's file (80/10/10)."
    ),
    init_from: Path | None = typer.Option(
        None,
        "--init-from",
        help="Start from the final weights of this finished run (one more day).",
    ),
    scheme: str = typer.Option(
        "dense", "--scheme", help="dense, growth-pruning or prune-only (structured MLP sparsity)."
    ),
    sparsity: float | None = typer.Option(
        None, "--sparsity", help="With --scheme: fraction of MLP neurons pruned in sparse phases."
    ),
    scheme_options: str | None = typer.Option(
        None,
        "--scheme-options",
        help="KEY=VALUE,... warmup, cycles, sparse_fraction, init, score, layers.",
    ),
    seed: int = typer.Option(0, "--seed"),
    checkpoint_every: int = typer.Option(
        1000, "--checkpoint-every", help="Steps between checkpoints (0: only at the end)."
    ),
    eval_every: int = typer.Option(
        0, "--eval-every", help="Steps between validation evaluations besides every epoch's end (0: none)."
    ),
    tensorboard: bool = typer.Option(False, "--tensorboard"),
    threads: int | None = typer.Option(
        None, "--threads", help="Intra-op threads (on a busy machine: fewer than free cores)."
    ),
    compile_dense: bool = typer.Option(
        False, "--compile-dense", help="torch.compile the MLPs and interaction (opt-in)."
    ),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="Continue the killed run in this folder with its saved settings (other options are ignored).",
    ),
    no_progress: bool = typer.Option(False, "--no-progress"),
    planner: str | None = typer.Option(
        None,
        "--planner",
        help="Shard the tables with this planner under DistributedModelParallel (run under torchrun, or give --nproc).",
    ),
    nproc: int | None = typer.Option(
        None, "--nproc", help="With --planner: launch torchrun with this many local processes."
    ),
    device_memory_gb: float = typer.Option(
        16.0, "--device-memory-gb", help="With --planner: memory per device the plan must respect."
    ),
) -> None:
    """Train a DLRM (TorchRec embeddings) and report valid/test AUC, logloss and NE."""
    from embedlab.distributed import under_torchrun
    from embedlab.train.trainer import TrainConfig, resume_run
    from embedlab.train.trainer import train as run_train

    if resume is None:
        _check_applicable(data, data_dir=data_dir, train=train, valid=valid, test=test, max_ind_range=max_ind_range,
                          strict=strict, prepared=prepared, split=split, stream=stream, tables=tables,
                          hash_rows=hash_rows, planner=planner)  # fmt: skip
    data_extra = _data_extras(data, data_dir, prepared, split, stream)
    max_ind_range = 10_000_000 if max_ind_range is None else max_ind_range
    saved = None
    if resume is not None:
        from embedlab.io import read_json

        cfg_path = resume / "config.json"
        if not cfg_path.is_file():
            raise UserError(f"{resume} is not a run folder (no config.json)")
        saved = read_json(cfg_path)
    if planner is not None or (saved is not None and saved.get("planner")):
        if not under_torchrun():
            from embedlab.cli.main import ARGV
            from embedlab.distributed import launch

            n = nproc or (saved or {}).get("nproc")
            if n is None:
                raise UserError(
                    "--planner needs torchrun (torchrun --nproc_per_node D -m embedlab train ...) or --nproc D"
                )
            code = launch(int(n), ARGV)
            if code != 0:
                raise typer.Exit(code)
            return
        from embedlab.distributed import finish
        from embedlab.train.distributed import train_distributed

        try:
            if saved is not None:
                cfg = TrainConfig.from_dict(saved)
                m = train_distributed(cfg, resume, planner=saved["planner"], device_memory_gb=float(saved.get("device_memory_gb", 16.0)),
                                      resume=True, show_progress=not no_progress)  # fmt: skip
                run_dir = resume
            else:
                if out is None:
                    raise UserError("missing --out RUN_DIR")
                cfg = _config(data, data_dir, train, valid, test, max_ind_range, strict, model_size, embedding_kernel,
                              optimizer, lr, embedding_lr, schedule, warmup_steps, epochs, max_steps, batch_size, seed,
                              checkpoint_every, eval_every, tensorboard, threads, compile_dense,
                              optimizer_options, dense_optimizer, prepared)  # fmt: skip
                cfg = _with_extras(
                    cfg, train_rows, hash_rows, scheme, sparsity, scheme_options, day, init_from, data_extra
                )
                cfg = _with_selection(cfg, tables, vocab_min_count, embedding_init,
                                      early_stop_patience, select_metric)  # fmt: skip
                m = train_distributed(cfg, out, planner=planner, device_memory_gb=device_memory_gb,
                                      show_progress=not no_progress)  # fmt: skip
                run_dir = out
        finally:
            finish()
        if m is not None:
            _summary(m, run_dir)
        from embedlab.distributed import exit_worker

        exit_worker(0)  # the work is saved; skip native teardown (see exit_worker)
    if resume is not None:
        metrics = resume_run(resume, show_progress=not no_progress)
        _summary(metrics, resume)
        return
    if out is None:
        raise UserError("missing --out RUN_DIR")
    cfg = _config(data, data_dir, train, valid, test, max_ind_range, strict, model_size, embedding_kernel, optimizer,
                  lr, embedding_lr, schedule, warmup_steps, epochs, max_steps, batch_size, seed, checkpoint_every,
                  eval_every, tensorboard, threads, compile_dense, optimizer_options, dense_optimizer, prepared)  # fmt: skip
    cfg = _with_extras(cfg, train_rows, hash_rows, scheme, sparsity, scheme_options, day, init_from, data_extra)
    cfg = _with_selection(cfg, tables, vocab_min_count, embedding_init, early_stop_patience, select_metric)
    metrics = run_train(cfg, out, show_progress=not no_progress)
    _summary(metrics, out)


def _config(data, data_dir, train, valid, test, max_ind_range, strict, model_size, embedding_kernel, optimizer, lr,  # noqa: ANN001, ANN202
            embedding_lr, schedule, warmup_steps, epochs, max_steps, batch_size, seed, checkpoint_every, eval_every,
            tensorboard, threads, compile_dense, optimizer_options=None, dense_optimizer=None, prepared=None):  # fmt: skip
    from embedlab.options import parse_options
    from embedlab.train.trainer import TrainConfig

    opts: dict = {}
    if data == "synth":
        opts = {"data_dir": str(data_dir)} if data_dir else {}
    elif data == "criteo" and train is None and prepared is None:
        raise UserError(
            "--data criteo needs --train FILE (and optionally --valid FILE --test FILE) or --prepared DIR"
        )
    if data == "criteo":
        opts = {
            k: str(v)
            for k, v in (("train", train), ("valid", valid), ("test", test))
            if v is not None
        }
        opts["max_ind_range"] = max_ind_range
    if strict:
        opts["strict"] = True
    cfg = TrainConfig(
        data=data, data_options=opts, model_size=model_size, embedding_kernel=embedding_kernel,
        optimizer=optimizer, lr=lr, embedding_lr=embedding_lr, schedule=schedule,
        warmup_steps=warmup_steps, epochs=epochs if epochs is not None else TrainConfig().epochs, max_steps=max_steps, batch_size=batch_size,
        seed=seed, checkpoint_every=checkpoint_every, eval_every=eval_every,
        tensorboard=tensorboard, threads=threads, compile_dense=compile_dense,
        optimizer_options=parse_options(optimizer_options, "optimizer"), dense_optimizer=dense_optimizer,
    )  # fmt: skip
    cfg.validate()
    return cfg


def _with_extras(cfg, train_rows: int | None, hash_rows: int | None, scheme: str = "dense",  # noqa: ANN001, ANN202
           sparsity: float | None = None, scheme_options: str | None = None, day: int | None = None,
           init_from: Path | None = None, data_extra: dict | None = None):  # fmt: skip
    """``cfg`` with the data-size, recurring-training and growth/pruning options set, validated."""
    import dataclasses

    from embedlab.options import parse_options

    opts = parse_options(scheme_options, "scheme")
    if sparsity is not None:
        opts["sparsity"] = sparsity
    if scheme == "dense" and opts:
        raise UserError(
            "--sparsity and --scheme-options need --scheme growth-pruning or prune-only"
        )
    data_options = {**cfg.data_options, **(data_extra or {})}
    if day is not None:
        if cfg.data != "synth":
            raise UserError("--day applies to --data synth")
        data_options["day"] = day
    cfg = dataclasses.replace(cfg, train_rows=train_rows, hash_rows=hash_rows, scheme=scheme, scheme_options=opts,
                              data_options=data_options, init_from=str(init_from) if init_from else None)  # fmt: skip
    cfg.validate()
    return cfg


def _with_selection(cfg, tables: str | None, vocab_min_count: int, embedding_init: str,  # noqa: ANN001, ANN202
                    early_stop_patience: int, select_metric: str):  # fmt: skip
    """``cfg`` with table sizing, embedding init and best-on-validation settings, validated."""
    import dataclasses

    if embedding_init == "rows":
        init = None
    else:
        try:
            init = float(embedding_init)
        except ValueError:
            raise UserError(f"--embedding-init must be a number or 'rows', got {embedding_init!r}") from None
    if early_stop_patience < 0:
        raise UserError(f"--early-stop-patience must be >= 0, got {early_stop_patience}")
    cfg = dataclasses.replace(cfg, tables=tables, vocab_min_count=vocab_min_count, embedding_init=init,
                              early_stop_patience=early_stop_patience or None, select_metric=select_metric)  # fmt: skip
    cfg.validate()
    return cfg


def _check_applicable(data: str, *, data_dir: Path | None, train: Path | None, valid: Path | None, test: Path | None,
                      max_ind_range: int | None, strict: bool, prepared: Path | None, split: str, stream: bool,
                      tables: str | None, hash_rows: int | None, planner: str | None) -> None:  # fmt: skip
    """Refuse options that the chosen data source (or table sizing) would silently ignore."""
    given = lambda *names: [n for n, v in names if v]  # noqa: E731
    if data != "criteo":
        wrong = given(("--train", train), ("--valid", valid), ("--test", test), ("--prepared", prepared),
                      ("--stream", stream), ("--split", split != "80-10-10"),
                      ("--max-ind-range", max_ind_range is not None))  # fmt: skip
        if wrong:
            raise UserError(f"{', '.join(wrong)} apply to --data criteo, not --data {data}")
    if data == "movielens" and strict:
        raise UserError("--strict applies to text data (--data criteo or synth); MovieLens is read as is")
    if data == "criteo":
        if data_dir is not None:
            raise UserError("--data-dir applies to --data synth and movielens; for criteo give --train FILE or --prepared DIR")
        if prepared is not None and (train or valid or test):
            raise UserError("give either --prepared DIR or --train/--valid/--test files, not both")
        if prepared is None and (stream or split != "80-10-10"):
            raise UserError(f"{', '.join(given(('--stream', stream), ('--split', split != '80-10-10')))} need --prepared DIR")
        if stream and planner is not None:
            raise UserError("--stream feeds the single-process trainer; it cannot go with --planner")
        sizing = tables if tables is not None else ("hash" if hash_rows is not None else "vocab")
        if max_ind_range is not None and (sizing != "hash" or hash_rows is not None):
            raise UserError("--max-ind-range caps Criteo's hashed table sizes: it needs --tables hash and no --hash-rows")


def _data_extras(data: str, data_dir: Path | None, prepared: Path | None, split: str, stream: bool) -> dict:
    """Data options beyond ``_config``'s: MovieLens's folder, a prepared Criteo folder."""
    if data == "movielens" and data_dir is not None:
        return {"data_dir": str(data_dir)}
    if data == "criteo" and prepared is not None:
        return {"prepared": str(prepared), "split": split, **({"stream": True} if stream else {})}
    return {}


def _summary(m: dict, out: Path) -> None:
    keys = [k for k in ("valid_auc", "valid_ne", "test_auc", "test_logloss", "test_ne") if k in m]
    line = ", ".join(f"{k} {m[k]:.4f}" for k in keys)
    if m.get("best_step") is not None:
        line += f" (best validation at step {m['best_step']}, epoch {m['best_epoch']:.2f}" + (
            ", stopped early)" if m.get("stopped_early") else ")")
    if "data_bayes_test_auc" in m:
        line += f" (Bayes limit: test_auc {m['data_bayes_test_auc']:.4f}, test_ne {m['data_bayes_test_ne']:.4f})"
    skipped = {
        k[len("data_rows_skipped_") :]: v for k, v in m.items() if k.startswith("data_rows_skipped")
    }
    typer.echo(
        f"{line}; {m['wall_time_s']:.1f}s, {m['train_samples_per_s']:,.0f} samples/s -> {out}/metrics.json"
    )
    if skipped and any(skipped.values()):
        typer.echo(f"malformed lines skipped: {json.dumps(skipped)}")
