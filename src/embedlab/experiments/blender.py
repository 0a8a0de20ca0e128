"""BLENDER's residual operators on Attributed Animal Silhouettes, for ``embedlab reproduce``."""

from __future__ import annotations

from embedlab.experiments.registry import (
    ExperimentContext,
    ExperimentResult,
    Table,
    register_experiment,
)


@register_experiment(
    "blender-quick",
    "BLENDER residual operators: one sample grid row per operator, scored by exact detectors",
    "blender",
)
def blender_quick(ctx: ExperimentContext) -> ExperimentResult:
    """Every operator variant samples the same union design (two single-attribute prompts)
    and intersection design (three prompts sharing one attribute) with the shipped default
    generator; the detectors score union's 'any prompted attribute' and intersection's
    precision (shared present, private absent). The full study is ``benchmarks/blender.py``."""
    import torch
    from PIL import Image

    from embedlab.blender.data import detect_attributes, to_uint8_grid
    from embedlab.blender.default_model import DEFAULT_GENERATOR, default_partition
    from embedlab.blender.fidelity import intersection_scores, union_scores
    from embedlab.blender.generator import load_generator
    from embedlab.blender.study import INTERSECTION_VARIANTS, UNION_VARIANTS, Guidance, designs
    from embedlab.blender.synth import generate

    model = load_generator(DEFAULT_GENERATOR)
    classes = tuple(default_partition()["train"])
    per_class, steps = (3, 10) if ctx.quick else (8, 25)
    if ctx.smoke:
        per_class, steps = 1, 4
    seed = ctx.seeds[0]
    d = designs(classes, per_class * len(classes), seed=seed)
    # one row per class -> order the design's samples by class
    guidance = Guidance(steps=steps)
    rows, images = [], []
    for task, variants in (("union", UNION_VARIANTS), ("intersection", INTERSECTION_VARIANTS)):
        for v in variants:
            x = generate(model, d[task], guidance.sampler(v), seed)
            det = detect_attributes(x)
            u = union_scores(det, d[task].union)
            i = intersection_scores(det, d[task].union, d[task].shared)
            rows.append([task, v, u["any"], u["all"], u["leak"], i["precision"]])
            images.append(x[torch.argsort(d[task].cls, stable=True)])
    grid = to_uint8_grid(torch.cat(images), len(images[0]))
    name = "blender_operators.png"
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), 0).save(ctx.out / name)
    get = {(r[0], r[1]): r for r in rows}
    u_gain = get[("union", "union")][2] - get[("union", "mean")][2]
    i_gain = (
        get[("intersection", "intersection-location-min")][5] - get[("intersection", "mean")][5]
    )
    return ExperimentResult(
        summary=f"union 'any prompted attribute' {get[('union', 'union')][2]:.2f} vs mean residual "
                f"{get[('union', 'mean')][2]:.2f}; intersection (per-location, min) precision "
                f"{get[('intersection', 'intersection-location-min')][5]:.2f} vs mean {get[('intersection', 'mean')][5]:.2f}",
        tables=[Table(f"{per_class * len(classes)} images per operator, {steps} DDIM steps, seed {seed} "
                      f"(rows of the grid in this order; union rows first)",
                      ["design", "operator", "any", "all", "leak", "intersection precision"], rows)],
        plots=[name],
        metrics={"union_any_minus_mean": u_gain, "intersection_precision_minus_mean": i_gain},
        notes="Small samples, one seed: indicative only. benchmarks/blender.py measures fidelity and "
              "metric learning over partitions and seeds.",
    )  # fmt: skip
