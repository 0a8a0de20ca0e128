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
    layers: int = typer.Option(1, "--layers", help="UNet layers per block."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    deadline_s: float | None = typer.Option(
        None, "--deadline-s", help="Stop early after this many seconds (recorded)."
    ),
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
    if iterations < 1 or batch_size < 1 or layers < 1 or any(c < 8 or c % 8 for c in ch):
        raise UserError(
            "--iterations, --batch-size and --layers must be >= 1; --channels multiples of 8"
        )
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device: not a torch device: {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: this torch build sees no CUDA device")
    part = ClassPartition.from_seed(partition_seed)
    sp = make_splits(part, seed=data_seed)
    cfg = GeneratorConfig(channels=ch, layers_per_block=layers, iterations=iterations,
                          batch_size=batch_size, lr=lr, seed=seed)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "partition.json").write_text(json.dumps({**part.to_json(), "partition_seed": partition_seed,
                                                     "data_seed": data_seed}, indent=1))  # fmt: skip
    train_generator(sp.train.x, sp.train.y, sp.train.attrs, cfg, out, progress=not no_progress,
                    device=dev, deadline_s=deadline_s)  # fmt: skip
    typer.echo(f"generator: {out / 'generator.pt'} (classes {list(part.train)})")


def _attr_sets(text: str) -> list[list[int]]:
    """``tint+frame,stripes`` -> [[0, 2], [1]] (attribute names or indices; ``-`` is none)."""
    from embedlab.blender.data import ATTRIBUTES

    sets = []
    for prompt in text.split(","):
        prompt = prompt.strip()
        if not prompt:
            continue
        idx = []
        for name in prompt.split("+"):
            name = name.strip()
            if name in ("", "-"):
                continue
            if name in ATTRIBUTES:
                idx.append(ATTRIBUTES.index(name))
            elif name.isdigit() and int(name) < len(ATTRIBUTES):
                idx.append(int(name))
            else:
                raise UserError(
                    f"unknown attribute {name!r} in --prompts; valid: {', '.join(ATTRIBUTES)}"
                )
        sets.append(idx)
    if not sets:
        raise UserError("--prompts names no prompt (e.g. --prompts tint,stripes)")
    return sets


def _class_id(text: str) -> int:
    from embedlab.blender.data import CLASS_NAMES

    if text in CLASS_NAMES:
        return CLASS_NAMES.index(text)
    if text.isdigit() and int(text) < len(CLASS_NAMES):
        return int(text)
    raise UserError(f"unknown class {text!r}; valid: {', '.join(CLASS_NAMES)} (or 0-9)")


def _trained_classes(generator: Path) -> list[int]:
    part = generator / "partition.json"
    if not part.is_file():
        raise UserError(f"{generator} has no partition.json: name the classes with --classes")
    return [int(c) for c in json.loads(part.read_text())["train"]]


@app.command("sample")
def sample_cmd(
    generator: Path | None = typer.Option(
        None, "--generator", help="Folder of a trained generator (default: the shipped one)."
    ),
    op: str = typer.Option(
        "union",
        "--op",
        help="union, union-sum, intersection, intersection-consensus, mean, sum or blend.",
    ),
    classes: str | None = typer.Option(
        None,
        "--classes",
        help="Comma-separated class names or ids (one grid row each); default: the classes "
        "the generator was trained on (its partition.json), the only ones it learned to draw.",
    ),
    prompts: str = typer.Option(
        "tint,stripes", "--prompts", help="Prompts' attribute sets: a+b,c (names or ids)."
    ),
    per_class: int = typer.Option(8, "--per-class", help="Images per class."),
    steps: int = typer.Option(25, "--steps"),
    class_scale: float = typer.Option(3.0, "--class-scale"),
    attr_scale: float = typer.Option(3.0, "--attr-scale"),
    options: str | None = typer.Option(
        None, "--op-options", help="KEY=VALUE,... e.g. magnitude=min,granularity=location."
    ),
    window: str = typer.Option(
        "0,1", "--window", help="Steps (fractions) where the operator applies."
    ),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads"),
    out: Path = typer.Option(
        ..., "--out", help="PNG image grid (and OUT.json with detected attributes)."
    ),
) -> None:
    """Sample with a residual operator and write an image grid (rows: classes)."""
    import torch
    from PIL import Image

    from embedlab.blender.data import ATTRIBUTES, detect_attributes, to_uint8_grid
    from embedlab.blender.generator import load_generator
    from embedlab.blender.sampler import SamplerConfig
    from embedlab.blender.synth import PromptDesign, generate
    from embedlab.options import parse_options

    _threads(threads)
    if generator is None:
        from embedlab.blender.default_model import DEFAULT_GENERATOR

        generator = DEFAULT_GENERATOR
        typer.echo(f"using the shipped generator ({generator / 'generator.json'})")
    model = load_generator(generator)
    if classes is None:
        classes = ",".join(str(c) for c in _trained_classes(generator))
    ids = [_class_id(c.strip()) for c in classes.split(",") if c.strip()]
    if not ids or per_class < 1:
        raise UserError("--classes names no class, or --per-class < 1")
    try:
        lo, hi = (float(v) for v in window.split(","))
    except ValueError:
        raise UserError(f"--window must be START,END fractions, got {window!r}") from None
    opts = parse_options(options, f"operator {op!r}")
    cfg = SamplerConfig(op=op, op_options=opts, steps=steps,
                        class_scale=class_scale, attr_scale=attr_scale, window=(lo, hi))  # fmt: skip
    sets = _attr_sets(prompts)
    cls = torch.tensor(ids).repeat_interleave(per_class)
    p = torch.zeros(len(sets), len(cls), len(ATTRIBUTES))
    for i, s in enumerate(sets):
        p[i][:, s] = 1.0
    design = PromptDesign(cls, p, p.bool().any(0), p.bool().all(0))
    x = generate(model, design, cfg, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_grid(x, per_class)).resize(
        ((per_class * 33 + 1) * 3, (len(ids) * 33 + 1) * 3), 0
    ).save(out)
    det = detect_attributes(x).float().mean(0).tolist()
    (out.with_suffix(".json")).write_text(json.dumps({"op": op, "prompts": sets, "classes": ids,
                                                      "detected_rates": dict(zip(ATTRIBUTES, det))}, indent=1))  # fmt: skip
    typer.echo(
        f"{out}: {len(x)} images; detected "
        + ", ".join(f"{a} {r:.2f}" for a, r in zip(ATTRIBUTES, det))
    )


@app.command("dml")
def dml_cmd(
    synthetic: str = typer.Option(
        "none", "--synthetic", help="none, class, union, intersection, both, mean, sum or oracle."
    ),
    generator: Path | None = typer.Option(
        None, "--generator", help="Trained generator (needed for generated pools)."
    ),
    partition_seed: int = typer.Option(0, "--partition-seed"),
    pool_size: int = typer.Option(1000, "--pool-size"),
    loss: str = typer.Option("proxy_anchor", "--loss", help="proxy_anchor or multi_similarity."),
    iterations: int = typer.Option(800, "--iterations"),
    steps: int = typer.Option(25, "--steps"),
    class_scale: float = typer.Option(3.0, "--class-scale"),
    attr_scale: float = typer.Option(3.0, "--attr-scale"),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads"),
    out: Path = typer.Option(..., "--out", help="Run folder (metrics.json)."),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """Zero-shot metric learning with a synthetic pool; checkpoint chosen on validation classes."""
    from embedlab.blender.data import ClassPartition, make_splits
    from embedlab.blender.dml import DMLConfig, LabeledImages, evaluate, train_dml
    from embedlab.blender.generator import load_generator
    from embedlab.blender.study import POOLS, Guidance, make_pool

    _threads(threads)
    if synthetic not in POOLS:
        raise UserError(f"unknown --synthetic {synthetic!r}; valid: {', '.join(POOLS)}")
    if synthetic not in ("none", "oracle") and generator is None:
        raise UserError(
            f"--synthetic {synthetic} needs --generator (train one with `embedlab blender train-generator`)"
        )
    cfg = DMLConfig(loss=loss, iterations=iterations, seed=seed)  # a UserError on bad values
    part = ClassPartition.from_seed(partition_seed)
    sp = make_splits(part, seed=partition_seed)
    model = load_generator(generator) if generator is not None else None
    if model is not None and (generator / "partition.json").is_file():
        trained_on = json.loads((generator / "partition.json").read_text())["train"]
        if sorted(trained_on) != sorted(part.train):
            raise UserError(
                f"{generator} was trained on classes {trained_on}, not this partition's {list(part.train)}"
            )
    pool = make_pool(
        synthetic,
        sp,
        model,
        pool_size,
        Guidance(steps, class_scale, attr_scale),
        seed=200 + partition_seed,
    )

    def lab(a):  # noqa: ANN001, ANN202
        return LabeledImages(a.x.float().contiguous(), a.y.long())

    res = train_dml(
        lab(sp.train),
        lab(sp.val),
        cfg,
        synthetic=None if pool is None else lab(pool),
        progress=not no_progress,
    )
    test = evaluate(res.load_model(), lab(sp.test))
    out.mkdir(parents=True, exist_ok=True)
    doc = {"synthetic": synthetic, "partition": part.to_json(), "test": test, "best_val": res.best_val,
           "best_iteration": res.best_iteration, "history": res.history, "wall_s": res.wall_s}  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(doc, indent=1))
    typer.echo(
        f"test classes {list(part.test)}: Recall@1 {test['recall_at_1']:.4f}, MAP@R {test['map_at_r']:.4f}"
    )
