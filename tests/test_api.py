"""The public Python API: every advertised name imports, and ``import embedlab`` stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import embedlab

#: Packages with a public ``__all__`` (each must resolve every name it lists).
PACKAGES = [
    "embedlab", "embedlab.blender", "embedlab.data", "embedlab.experiments", "embedlab.growth",
    "embedlab.models", "embedlab.online", "embedlab.optim", "embedlab.pu", "embedlab.report",
    "embedlab.scaling", "embedlab.sharding", "embedlab.sharding.autoshard", "embedlab.sharding.dreamshard",
    "embedlab.sharding.neuroshard", "embedlab.train",
]  # fmt: skip


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_in_all_resolves(package):
    mod = importlib.import_module(package)
    names = getattr(mod, "__all__", None)
    if package == "embedlab.sharding.autoshard":  # documented as "import the submodules"
        assert names is None
        return
    assert names, f"{package} has no __all__"
    assert len(set(names)) == len(names), f"{package}.__all__ repeats a name"
    for name in names:
        obj = getattr(mod, name)
        assert obj is not None, f"{package}.{name}"
        assert name in dir(mod), f"{package}.{name} missing from dir()"


def test_top_level_reaches_every_capability():
    import embedlab as el
    from embedlab.blender.sampler import blender_sample
    from embedlab.models.dlrm import DLRM
    from embedlab.optim.frequency import CFSGD, FASGD
    from embedlab.pu.classifier import PUClassifier
    from embedlab.sharding.cost import CostMeter
    from embedlab.sharding.torchrec_adapter import EmbedlabPlanner
    from embedlab.train.trainer import TrainConfig

    assert el.DLRM is DLRM and el.TrainConfig is TrainConfig and el.CostMeter is CostMeter
    assert el.EmbedlabPlanner is EmbedlabPlanner and el.PUClassifier is PUClassifier
    assert (el.CFSGD, el.FASGD) == (CFSGD, FASGD) and el.blender_sample is blender_sample
    assert {"neuroshard", "dreamshard", "autoshard", "torchrec", "size_greedy"} <= set(el.PLANNERS)
    assert "fgd" in el.strategy_names() and el.union_max is el.get_operator("union")
    assert el.sharding.NeuroShardPlanner is el.NeuroShardPlanner  # subpackages as attributes


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'DRLM'"):
        embedlab.DRLM  # noqa: B018
    with pytest.raises(AttributeError):
        embedlab.sharding.no_such_planner  # noqa: B018


def test_train_is_callable_however_the_package_was_reached(monkeypatch):
    import embedlab as el
    import embedlab.train.trainer as trainer

    calls = []
    monkeypatch.setattr(
        trainer, "train", lambda cfg, out, **kw: calls.append((cfg, out, kw)) or {"ok": 1}
    )
    assert el.train("cfg", "out", show_progress=False) == {"ok": 1}
    assert calls == [("cfg", "out", {"show_progress": False})]
    assert el.train.trainer is trainer and el.train.TrainConfig is el.TrainConfig


def test_import_embedlab_imports_no_framework():
    code = ("import sys, embedlab; heavy = sorted(m for m in ('torch', 'torchrec', 'numpy', 'typer', 'fbgemm_gpu')"
            " if m in sys.modules); print(','.join(heavy))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    code = "import sys, embedlab as el; el.__all__; dir(el); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # listing the API imports nothing either
