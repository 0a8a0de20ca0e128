"""Pre-training NeuroShard's cost models (``train_compute_cost_model.py``,
``train_comm_cost_model.py`` of the reference) and the whole pre-training run.

Paper/reference: MSE loss, Adam (lr 1e-3), batch 512, up to 1,000 epochs, an 80/10/10
train/validation/test split, the weights with the lowest validation loss kept. Ours: the
same with ``compute_epochs``/``comm_epochs`` epochs (:class:`PretrainSettings`), compute
minibatches of 64 (we measure hundreds of shards, not the reference's 100k: batch 512 would
be one step per epoch; measured on 224 shards, batch 64 roughly halved the test MAPE), targets
divided by the median training label, and the held-out error reported as MAPE (mean
absolute percentage error) on the test split (on the training data itself when there are
fewer than 10 samples, flagged in the report).

:func:`pretrain_neuroshard` runs everything in a folder: ``pretrain.json`` (settings and
pool; a resumed run must use the same), ``compute_data.jsonl`` (measured shards,
resumable, see :mod:`~embedlab.sharding.neuroshard.data`), then trains the compute network
and one forward and one backward communication network per device count, and writes the
model to ``model/`` plus ``log.json`` (sample counts, measuring seconds, MAPE). Training
is fast and seeded, so a resumed run simply retrains on all the data collected so far.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedlab.errors import UserError
from embedlab.io import ensure_dir, read_json, write_json
from embedlab.sharding.comm import CommModel
from embedlab.sharding.cost import CostMeter, MeterSettings
from embedlab.sharding.generator import split_pool, table_pool
from embedlab.sharding.neuroshard.data import (
    ComputeSample,
    PretrainSettings,
    augmented_table,
    collect_compute_data,
    comm_data,
    load_compute_samples,
)
from embedlab.sharding.neuroshard.features import NUM_FEATURES, table_features, with_columns
from embedlab.sharding.neuroshard.model import MODEL_FORMAT, NeuroShardModel, comm_inputs
from embedlab.sharding.types import Table

MIN_SAMPLES = 5
#: NeuroShard's own shipped model; its ``meta.comm_model`` is the all-to-all model its
#: communication networks were pre-trained on (NeuroShard reads no other planner's files).
DEFAULT_COMM = Path(__file__).parent / "default_model" / "model.json"


def default_comm_model(path: str | Path = DEFAULT_COMM) -> CommModel:
    """The communication model recorded in a NeuroShard ``model.json`` (default: the shipped
    model's, a gloo calibration of 4 CPU processes): ``meta.comm_model``, as
    :func:`pretrain_neuroshard` writes it."""
    p = Path(path)
    if not p.is_file():
        raise UserError("no communication model given and none shipped; calibrate one with "
                        "`embedlab shard calibrate-comm` and pass it (--comm)")  # fmt: skip
    info = read_json(p)
    if not isinstance(info, dict) or info.get("format") != MODEL_FORMAT:
        raise UserError(f"{p} is not {MODEL_FORMAT}; pass a communication model (--comm)")
    meta = info.get("meta")
    if not isinstance(meta, dict) or "comm_model" not in meta:
        raise UserError(f"{p} records no communication model (meta.comm_model); pass one (--comm)")
    return CommModel.from_json(meta["comm_model"], f"the meta.comm_model of {p}")


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    perm = np.random.default_rng([seed, 3]).permutation(n)
    if n < 10:
        return perm, perm, perm
    a, b = int(0.8 * n), int(0.9 * n)
    return perm[:a], perm[a:b], perm[b:]


def _fit(net: torch.nn.Module, loss_of, n_train: int, val_loss, epochs: int, batch: int, lr: float, seed: int) -> None:  # fmt: skip
    """Adam on minibatches of the training indices; keep the lowest validation loss."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best, best_state = float("inf"), copy.deepcopy(net.state_dict())
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=gen)
        for i in range(0, n_train, batch):
            loss = loss_of(perm[i : i + batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            v = float(val_loss())
        if v < best:
            best, best_state = v, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)


def compute_tensors(samples: Sequence[ComputeSample], pool: list[Table]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Padded ``feats [N, T, 20]``, ``mask [N, T]`` and labels ``[N]`` (ms, fwd + bwd)."""
    T = max(len(s.configs) for s in samples)
    feats = np.zeros((len(samples), T, NUM_FEATURES), dtype=np.float32)
    mask = np.zeros((len(samples), T), dtype=np.float32)
    base: dict[int, np.ndarray] = {}  # per pool table; only ``dim`` differs between configs
    for k, s in enumerate(samples):
        for m, (i, d) in enumerate(s.configs):
            if i not in base:
                base[i] = table_features(augmented_table(pool, i, pool[i].dim))
            feats[k, m] = with_columns(base[i], d)
            mask[k, m] = 1.0
    y = torch.tensor([s.total_ms for s in samples], dtype=torch.float32)
    return torch.from_numpy(feats), torch.from_numpy(mask), y


def _mape(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(((pred - y).abs() / y.abs().clamp_min(1e-9)).mean())


def train_compute(model: NeuroShardModel, samples: Sequence[ComputeSample], pool: list[Table],
                  settings: PretrainSettings) -> dict[str, Any]:  # fmt: skip
    """Fit the compute network; returns the validation/test MAPE and split sizes."""
    if len(samples) < MIN_SAMPLES:
        raise UserError(f"NeuroShard needs at least {MIN_SAMPLES} measured shards, got {len(samples)}; "
                        "raise the measurement budget")  # fmt: skip
    torch.manual_seed(settings.seed)
    feats, mask, y = compute_tensors(samples, pool)
    tr, va, te = (torch.from_numpy(i) for i in _split(len(samples), settings.seed))
    net = model.compute
    net.set_normalisation(feats[tr][mask[tr] > 0].numpy())
    model.compute_scale_ms = float(y[tr].median()) or 1.0
    ys = y / model.compute_scale_ms
    mse = torch.nn.functional.mse_loss
    _fit(net, lambda b: mse(net(feats[tr[b]], mask[tr[b]]), ys[tr[b]]), len(tr),
         lambda: mse(net(feats[va], mask[va]), ys[va]), settings.compute_epochs, settings.compute_batch, settings.lr,
         settings.seed)  # fmt: skip
    net.eval()
    with torch.no_grad():
        pred = net(feats, mask) * model.compute_scale_ms
    return {"samples": len(samples), "train": len(tr), "val": len(va), "test": len(te),
            "held_out": len(samples) >= 10, "train_mape": _mape(pred[tr], y[tr]),
            "val_mape": _mape(pred[va], y[va]), "test_mape": _mape(pred[te], y[te])}  # fmt: skip


def train_comm(model: NeuroShardModel, data: dict[int, dict[str, np.ndarray]], settings: PretrainSettings) -> dict[str, Any]:  # fmt: skip
    """Fit the forward and backward networks of every device count in ``data``."""
    labels = np.concatenate(
        [np.concatenate([d["fw"].ravel(), d["bw"].ravel()]) for d in data.values()]
    )
    model.comm_scale_ms = float(np.median(labels)) or 1.0
    report: dict[str, Any] = {}
    mse = torch.nn.functional.mse_loss
    for D, d in sorted(data.items()):
        torch.manual_seed(settings.seed + D)
        model.add_device_count(D)
        tr, va, te = (torch.from_numpy(i) for i in _split(len(d["dims"]), settings.seed + D))
        for direction, net, x, y in (
            ("fw", model.comm_fw[D], comm_inputs(d["dims"], d["sleeps"]), d["fw"]),
            ("bw", model.comm_bw[D], comm_inputs(d["dims"], None), d["bw"]),
        ):
            X = torch.from_numpy(np.asarray(x, dtype=np.float32))
            Y = torch.from_numpy(np.asarray(y, dtype=np.float32)) / model.comm_scale_ms
            _fit(net, lambda b, net=net, X=X, Y=Y, tr=tr: mse(net(X[tr[b]]), Y[tr[b]]), len(tr),
                 lambda net=net, X=X, Y=Y, va=va: mse(net(X[va]), Y[va]), settings.comm_epochs, settings.comm_batch,
                 settings.lr, settings.seed + D)  # fmt: skip
            net.eval()
            with torch.no_grad():
                pred = net(X[te]) * model.comm_scale_ms
            report[f"{D}_{direction}_test_mape"] = _mape(pred, Y[te] * model.comm_scale_ms)
    return report


def pretrain_neuroshard(out: str | Path, *, meter: CostMeter | None = None, comm: CommModel | None = None,
                        settings: PretrainSettings = PretrainSettings(), pool: list[Table] | None = None,
                        measure_budget_s: float | None = None, resume: bool = False, show_progress: bool = True,
                        meta: dict[str, Any] | None = None) -> NeuroShardModel:  # fmt: skip
    """Collect (or, with ``resume``, continue collecting) pre-training data in ``out`` and
    train the NeuroShard cost models; the model is saved to ``out/model`` and returned.

    ``meter``: measures compute (default: ``CostMeter(MeterSettings())``, 1 thread, batch
    2,048); ``comm``: the all-to-all model for the communication labels (default: the
    meter's, else the one recorded in NeuroShard's shipped default model,
    :func:`default_comm_model`);
    ``measure_budget_s``: seconds of measuring for this folder (all runs together);
    ``meta``: recorded in ``model.json`` (put the command line here).
    """
    if measure_budget_s is not None and measure_budget_s < 0:
        raise UserError(f"measurement budget must be >= 0 seconds, got {measure_budget_s}")
    run = ensure_dir(out)
    meter = meter if meter is not None else CostMeter(MeterSettings())
    comm = (
        comm
        if comm is not None
        else (meter.comm if meter.comm is not None else default_comm_model())
    )
    data_path = run / "compute_data.jsonl"
    info_path = run / "pretrain.json"
    if resume and info_path.is_file():
        info = read_json(info_path)
        if info.get("collection") != settings.collection_json() or info.get("meter") != _meter_json(
            meter
        ):
            raise UserError(
                f"{info_path} was written with other collection settings or meter; resume with the same ones"
            )
        pool = [Table.from_json(t) for t in info["pool"]]
    else:
        if data_path.exists() and not resume:
            raise UserError(
                f"{run} already holds pre-training data; pass resume (--resume) or use a new folder"
            )
        # the train split only: valid and test tasks draw from the other splits' tables
        pool = pool if pool is not None else split_pool(table_pool())["train"]
        if not pool:
            raise UserError("the table pool is empty")
        write_json(info_path, {"collection": settings.collection_json(), "settings": settings.to_json(), "meter": _meter_json(meter),
                               "pool": [t.to_json() for t in pool]})  # fmt: skip
    t0 = time.perf_counter()
    collected = collect_compute_data(
        data_path, pool, meter, settings, measure_budget_s, show_progress
    )
    samples = load_compute_samples(data_path)
    torch.manual_seed(settings.seed)
    model = NeuroShardModel()
    compute_report = train_compute(model, samples, pool, settings)
    cdata = {
        D: comm_data(D, comm, meter.settings.batch_size, settings) for D in settings.device_counts
    }
    comm_report = train_comm(model, cdata, settings)
    log = {"compute": compute_report, "comm": comm_report, "collection": collected,
           "train_wall_s": time.perf_counter() - t0}  # fmt: skip
    meta = dict(meta or {})
    meta.setdefault("command", f"pretrain_neuroshard({str(out)!r}, measure_budget_s={measure_budget_s}, "
                               f"resume={resume}, settings=PretrainSettings(...) as recorded in 'settings')")  # fmt: skip
    model.meta = {**meta, "seed": settings.seed, "backend": meter.settings.backend,
                  "meter": _meter_json(meter), "comm_model": comm.to_json(), "settings": settings.to_json(),
                  "pool_tables": len(pool), "compute_samples": len(samples), "measure_s": collected["measure_s"],
                  "compute_test_mape": compute_report["test_mape"], "comm_test_mape": comm_report,
                  "date": time.strftime("%Y-%m-%d", time.gmtime()),
                  "note": "costs are ms of the meter's backend at its timed batch on the machine that measured them"}  # fmt: skip
    model.save(run / "model")
    write_json(run / "log.json", log)
    return model


def _meter_json(meter: CostMeter) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(meter.settings)


__all__ = ["default_comm_model", "pretrain_neuroshard", "train_comm", "train_compute"]
