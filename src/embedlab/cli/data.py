"""``embedlab data``: make and inspect datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from embedlab.data.synth import DRIFTS, SynthConfig, default_cardinalities, generate
from embedlab.errors import UserError

app = typer.Typer(help="Make and inspect datasets.", no_args_is_help=True)


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserError(f"{what} must be comma-separated integers, got {text!r}") from None


@app.command("synth-ctr")
def synth_ctr(
    out: Path = typer.Option(
        ..., "--out", help="Output folder (train/valid/test.tsv + meta.json)."
    ),
    rows: int = typer.Option(
        100_000, "--rows", help="Training rows (or rows per day with --days)."
    ),
    seed: int = typer.Option(0, "--seed"),
    valid_rows: int | None = typer.Option(
        None, "--valid-rows", help="Default: rows/10, at least 1000."
    ),
    test_rows: int | None = typer.Option(
        None, "--test-rows", help="Default: rows/10, at least 1000."
    ),
    cardinalities: str | None = typer.Option(
        None, "--cardinalities", help="26 comma-separated table sizes."
    ),
    max_cardinality: int = typer.Option(
        300_000, "--max-cardinality", help="Cap of the default Criteo-like sizes."
    ),
    base_ctr: float = typer.Option(0.25, "--base-ctr"),
    linear_std: float = typer.Option(
        1.5, "--linear-std", help="Std of the teacher's per-id and dense linear logit part."
    ),
    interaction_std: float = typer.Option(
        1.5, "--interaction-std", help="Std of the teacher's pairwise-interaction logit part."
    ),
    teacher_dim: int = typer.Option(4, "--teacher-dim", help="The teacher's embedding dim."),
    days: int = typer.Option(
        0, "--days", help="Write one file per day (for drift) instead of splits."
    ),
    drift: str = typer.Option("none", "--drift", help=f"One of: {', '.join(DRIFTS)}."),
) -> None:
    """Planted-truth synthetic CTR data in the Criteo TSV layout, with its Bayes limit."""
    if max_cardinality < 2:
        raise UserError(f"--max-cardinality must be at least 2, got {max_cardinality}")
    cards = _ints(cardinalities, "--cardinalities") or default_cardinalities(max_cardinality)
    cfg = SynthConfig(
        rows=rows, valid_rows=valid_rows, test_rows=test_rows, seed=seed, cardinalities=cards,
        base_ctr=base_ctr, days=days, drift=drift, linear_std=linear_std,
        interaction_std=interaction_std, teacher_dim=teacher_dim,
    )  # fmt: skip
    from tqdm.auto import tqdm

    total = rows * days if days else rows + cfg.n_valid + cfg.n_test
    with tqdm(total=total, unit="row", unit_scale=True, desc="synth-ctr") as bar:
        meta = generate(cfg, out, progress=lambda n: bar.update(n - bar.n))
    if days:
        typer.echo(f"wrote {days} day files to {out}")
    else:
        typer.echo(
            f"wrote {out}: Bayes-optimal test AUC {meta['bayes_test_auc']:.4f}, "
            f"logloss {meta['bayes_test_logloss']:.4f}, NE {meta['bayes_test_ne']:.4f}"
        )


prepare_app = typer.Typer(help="Convert raw datasets once into prepared folders.", no_args_is_help=True)
app.add_typer(prepare_app, name="prepare")


@prepare_app.command("criteo")
def prepare_criteo(
    input: list[Path] = typer.Option(  # noqa: A002
        ..., "--input", help="A Criteo TSV file (plain, .gz or .zst) or a folder of day files; repeatable."
    ),
    out: Path = typer.Option(..., "--out", help="The prepared folder (.npy arrays + meta.json)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed line."),
    workers: int | None = typer.Option(
        None, "--workers", help="Blocks parsed at once (default: usable cores, at most 4)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """Criteo Kaggle / Terabyte text into raw 32-bit ids and dense values, memory-mapped.

    Train from it with `embedlab train --data criteo --prepared DIR [--split kaggle|terabyte] [--stream]`.
    A folder already prepared from the same files (path, size, mtime) is reused; a killed
    run resumes at its first unfinished input file.
    """
    from embedlab.data.criteo_prepare import prepare_once

    if workers is not None and workers <= 0:
        raise UserError(f"--workers must be positive, got {workers}")
    res = prepare_once(input, out, strict=strict, workers=workers, show_progress=not no_progress)
    meta = res.meta
    what = "prepared" if res.parsed else "already prepared (same input files)"
    line = f"{out}: {what}, {meta['rows']:,} rows from {len(meta['files'])} file(s)"
    if meta["skipped"]:
        first = next(f for f in meta["files"] if f["skipped"])
        line += f", {meta['skipped']:,} malformed lines skipped (first: {first['examples'][0]})"
    typer.echo(line)
