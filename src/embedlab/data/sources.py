"""The built-in data sources (registered on import)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from embedlab.data.criteo import ID_SPACE, ReadStats, criteo_schema, default_cache_root, load_split
from embedlab.data.registry import CTRData, register_data, require_file, split_by_position
from embedlab.data.synth import SynthConfig, generate, load_synth, load_synth_day, read_meta
from embedlab.errors import UserError


@register_data("synth")
def load_synth_source(
    data_dir: str | Path | None = None,
    rows: int = 200_000,
    seed: int = 0,
    strict: bool = False,
    cache_root: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    day: int | None = None,
    **_: object,
) -> CTRData:
    """Planted-truth data from ``data_dir`` (made by ``embedlab data synth-ctr``); without
    a folder, a default one (``rows`` training rows, ``seed``) is generated once into the
    cache. ``day``: one day file of a folder made with ``--days`` (split 80/10/10 by position;
    its Bayes metrics cover the whole day, so none are reported)."""
    if data_dir is None:
        root = Path(cache_root) if cache_root is not None else default_cache_root()
        data_dir = root / "synth" / f"rows{rows}-seed{seed}"
        if not (data_dir / "meta.json").is_file():
            generate(SynthConfig(rows=rows, seed=seed), data_dir, progress=progress)
    elif not (Path(data_dir) / "meta.json").is_file():
        raise UserError(
            f"{data_dir} is not a synthetic data folder (no meta.json); make one with `embedlab data synth-ctr`"
        )
    read_meta(data_dir)
    if day is not None:
        schema, splits, meta = load_synth_day(
            data_dir, int(day), strict=strict, cache_root=cache_root
        )
        b = meta["bayes"][f"day_{int(day):03d}"]
        info = {"source": str(data_dir), "day": int(day), "drift_delta": b.get("drift_delta", 0.0)}
        return CTRData("synth", schema, splits["train"], splits["valid"], splits["test"], info)
    schema, splits, meta = load_synth(data_dir, strict=strict, cache_root=cache_root)
    info = {
        "source": str(data_dir),
        "bayes_test_auc": meta["bayes_test_auc"],
        "bayes_test_logloss": meta["bayes_test_logloss"],
        "bayes_test_ne": meta["bayes_test_ne"],
    }
    return CTRData("synth", schema, splits["train"], splits["valid"], splits["test"], info)


@register_data("criteo")
def load_criteo_source(
    train: str | Path | None = None,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    table_sizes: list[int] | None = None,
    max_ind_range: int = 10_000_000,
    strict: bool = False,
    cache_root: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    prepared: str | Path | None = None,
    split: str = "80-10-10",
    stream: bool = False,
    block_rows: int = 1 << 16,
    window_blocks: int = 8,
    **_: object,
) -> CTRData:
    """Criteo TSV files, or a folder made by ``embedlab data prepare criteo`` (``prepared``).

    Files: with only ``train`` given, its last 20% of rows (in file order) become valid and
    test, 10% each. A prepared folder is split by ``split`` (``80-10-10``, ``kaggle``: the
    DLRM reference's last-of-7-days split, ``terabyte``: day 23 halved; see
    :mod:`embedlab.data.prepared`); with ``stream`` the trainer reads its training rows in
    shuffled blocks of ``block_rows`` rows, ``window_blocks`` at a time, and sizes tables
    as it reads, in bounded memory.

    Ids are kept raw (the 32-bit value of the hexadecimal field; the schema's id space is
    ``2**32``): the trainer sizes the tables, by a training vocabulary (default) or by
    hashing into ``table_sizes`` (default: Kaggle cardinalities capped at ``max_ind_range``,
    the DLRM reference's sizes), given here as :attr:`CTRData.hash_sizes`."""
    hash_sizes = criteo_schema(table_sizes, max_ind_range).table_sizes
    schema = criteo_schema([ID_SPACE] * len(hash_sizes))
    if prepared is not None:
        if train is not None or valid is not None or test is not None:
            raise UserError("give either a prepared folder (--prepared) or TSV files (--train ...), not both")
        return _load_prepared(Path(prepared), schema, hash_sizes, split, strict, stream, block_rows, window_blocks)
    if split != "80-10-10" or stream:
        raise UserError("--split and --stream apply to a prepared folder (--prepared DIR)")
    tr = require_file(train, "--train file")
    kw = dict(strict=strict, cache_root=cache_root, progress=progress)
    tr_arr, tr_stats = load_split(tr, schema, **kw)
    stats: dict[str, ReadStats] = {"train": tr_stats}
    if valid is None and test is None:
        tr_arr, va_arr, te_arr = split_by_position(tr_arr)
    else:
        va_arr, stats["valid"] = load_split(require_file(valid, "--valid file"), schema, **kw)
        te_arr, stats["test"] = load_split(require_file(test, "--test file"), schema, **kw)
    info = {
        "source": str(tr),
        "rows_skipped": {k: s.skipped for k, s in stats.items()},
        "reader": {k: s.summary() for k, s in stats.items()},
    }
    return CTRData("criteo", schema, tr_arr, va_arr, te_arr, info, hash_sizes=hash_sizes)


def _load_prepared(path: Path, schema, hash_sizes: list[int], split: str, strict: bool, stream: bool,  # noqa: ANN001
                   block_rows: int, window_blocks: int) -> CTRData:  # fmt: skip
    from embedlab.data.criteo_prepare import _check_strict
    from embedlab.data.prepared import Prepared, sized_source, split_arrays, split_ranges

    prep = Prepared.open(path)
    _check_strict(prep.meta, strict)
    ranges = split_ranges(prep, split)
    arrays = {k: split_arrays(prep, a, b) for k, (a, b) in ranges.items()}
    info = {
        "source": str(path), "split": split, "stream": bool(stream),
        "split_rows": {k: b - a for k, (a, b) in ranges.items()},
        "rows_skipped": {"prepared": int(prep.meta["skipped"])},
    }  # fmt: skip
    data = CTRData("criteo", schema, arrays["train"], arrays["valid"], arrays["test"], info, hash_sizes=hash_sizes)
    if stream:
        data.sizer = sized_source(data, prep, ranges, block_rows, window_blocks)
    return data


import embedlab.data.movielens  # noqa: F401,E402
