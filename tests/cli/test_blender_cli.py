"""``embedlab blender``: train-generator -> sample -> dml end to end, and its user errors."""

from __future__ import annotations

import json

import pytest
import torch
from cli_run import run  # tests/cli is on pytest's pythonpath (pyproject)


def test_train_sample_dml(tmp_path, capsys):
    torch.set_num_threads(1)
    gen = tmp_path / "gen"
    code, out, err = run(["blender", "train-generator", "--iterations", 4, "--batch-size", 8, "--channels", "8,16",
                          "--out", gen, "--no-progress"], capsys)  # fmt: skip
    assert code == 0, err
    assert (gen / "generator.pt").is_file() and json.loads((gen / "partition.json").read_text())[
        "train"
    ]
    png = tmp_path / "grid.png"
    code, out, err = run(["blender", "sample", "--generator", gen, "--op", "intersection", "--classes", "bird,cow",
                          "--prompts", "tint+frame,tint+stripes", "--per-class", 2, "--steps", 2,
                          "--op-options", "magnitude=min,granularity=location", "--out", png], capsys)  # fmt: skip
    assert code == 0, err
    assert png.is_file() and "detected" in out
    assert json.loads(png.with_suffix(".json").read_text())["prompts"] == [[0, 2], [0, 1]]
    code, out, err = run(["blender", "dml", "--synthetic", "oracle", "--pool-size", 50, "--iterations", 4,
                          "--out", tmp_path / "dml", "--no-progress"], capsys)  # fmt: skip
    assert code == 0, err
    m = json.loads((tmp_path / "dml" / "metrics.json").read_text())
    assert m["synthetic"] == "oracle"
    # the CLI's figures are those of the same run done in-process on the test classes
    expected = _dml_in_process(pool_size=50, iterations=4)
    assert m["test"] == pytest.approx(expected, abs=1e-6)
    assert f"Recall@1 {expected['recall_at_1']:.4f}" in out


def _dml_in_process(pool_size: int, iterations: int) -> dict:
    from embedlab.blender.data import ClassPartition, make_splits
    from embedlab.blender.dml import DMLConfig, LabeledImages, evaluate, train_dml
    from embedlab.blender.study import Guidance, make_pool

    part = ClassPartition.from_seed(0)
    sp = make_splits(part, seed=0)
    pool = make_pool("oracle", sp, None, pool_size, Guidance(25, 3.0, 3.0), seed=200)

    def lab(a):
        return LabeledImages(a.x.float().contiguous(), a.y.long())

    res = train_dml(lab(sp.train), lab(sp.val), DMLConfig(iterations=iterations, seed=0),
                    synthetic=lab(pool), progress=False)  # fmt: skip
    return evaluate(res.load_model(), lab(sp.test))


def test_sample_uses_the_shipped_generator_and_its_classes(tmp_path, capsys):
    from embedlab.blender.default_model import default_partition

    png = tmp_path / "grid.png"
    code, out, err = run(["blender", "sample", "--per-class", 1, "--steps", 2, "--prompts", "tint",
                          "--out", png], capsys)  # fmt: skip
    assert code == 0, err
    assert "using the shipped generator" in out
    doc = json.loads(png.with_suffix(".json").read_text())
    assert doc["classes"] == default_partition()["train"]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (
            [
                "blender",
                "sample",
                "--generator",
                "{tmp}/none",
                "--classes",
                "bird",
                "--out",
                "{tmp}/x.png",
            ],
            "no trained generator",
        ),
        (["blender", "dml", "--synthetic", "union", "--out", "{tmp}/d"], "needs --generator"),
        (["blender", "dml", "--synthetic", "magic", "--out", "{tmp}/d"], "unknown --synthetic"),
        (["blender", "dml", "--loss", "triplet", "--out", "{tmp}/d"], "loss"),
        (["blender", "train-generator", "--channels", "12", "--out", "{tmp}/g"], "multiples of 8"),
        (
            ["blender", "train-generator", "--device", "gpu0", "--out", "{tmp}/g"],
            "not a torch device",
        ),
        (["blender", "train-generator", "--layers", "0", "--out", "{tmp}/g"], "--layers"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path, capsys, argv, needle):
    code, out, err = run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1


def test_sample_rejects_bad_prompt_and_class(tmp_path, capsys):
    gen = tmp_path / "gen"
    assert run(["blender", "train-generator", "--iterations", 1, "--batch-size", 4, "--channels", "8,16",
                "--out", gen, "--no-progress"], capsys)[0] == 0  # fmt: skip
    for extra, needle in ((["--classes", "unicorn"], "unknown class"),
                          (["--classes", "bird", "--prompts", "wings"], "unknown attribute"),
                          (["--classes", "bird", "--op", "xor"], "unknown residual operator"),
                          (["--classes", "bird", "--op-options", "depth=3"], "takes no option")):  # fmt: skip
        code, _, err = run(
            ["blender", "sample", "--generator", gen, "--out", tmp_path / "x.png", *extra], capsys
        )
        assert code == 2 and needle in err, (extra, err)
