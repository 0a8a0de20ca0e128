"""``embedlab blender``: diffusion-residual union/intersection sampling and metric learning."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from embedlab.errors import UserError

app = typer.Typer(
    help="BLENDER: train a conditional generator, sample with residual operators, metric learning.",
    no_args_is_help=True,
)


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


@app.command("train-generator")
def train_generator_cmd(
    partition_seed: int = typer.Option(
        0, "--partition-seed", help="Class partition (train/val/test classes)."
    ),
    data_seed: int = typer.Option(0, "--data-seed", help="Attribute draws of the real images."),
    iterations: int = typer.Option(3000, "--iterations"),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    channels: str = typer.Option("16,32,32", "--channels", help="UNet block channels."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads"),
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoint.pt, generator.pt/json)."),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """Train the class-and-attribute UNet on the training classes' real images; resumable."""
    from embedlab.blender.data import ClassPartition, make_splits
    from embedlab.blender.generator import GeneratorConfig, train_generator

    _threads(threads)
    try:
        ch = tuple(int(c) for c in channels.split(","))
    except ValueError:
        raise UserError(f"--channels must be comma-separated integers, got {channels!r}") from None
    if iterations < 1 or batch_size < 1 or any(c < 8 or c % 8 for c in ch):
        raise UserError("--iterations and --batch-size must be >= 1; --channels multiples of 8")
    part = ClassPartition.from_seed(partition_seed)
    sp = make_splits(part, seed=data_seed)
    cfg = GeneratorConfig(
        channels=ch, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "partition.json").write_text(json.dumps({**part.to_json(), "partition_seed": partition_seed,
                                                     "data_seed": data_seed}, indent=1))  # fmt: skip
    train_generator(sp.train.x, sp.train.y, sp.train.attrs, cfg, out, progress=not no_progress)
    typer.echo(f"generator: {out / 'generator.pt'} (classes {list(part.train)})")
