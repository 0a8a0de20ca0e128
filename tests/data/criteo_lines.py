"""Criteo-format lines for the reader tests, and the exact parser's view of them."""

from __future__ import annotations

import numpy as np

from embedlab.data import criteo_read as cr
from embedlab.data.criteo_read import NUM_SPARSE, parse_fields


def line(label="1", dense=None, cats=None, end="\n") -> str:
    dense = dense if dense is not None else [str(i) for i in range(13)]
    cats = cats if cats is not None else [f"{i * 7919:08x}" for i in range(26)]
    return "\t".join([label, *dense, *cats]) + end


def random_lines(n: int, seed: int = 0, *, odd: bool = False) -> list[str]:
    """Well-formed lines; ``odd`` adds forms the fast path must also get right (short and
    long hex, uppercase, large and negative integers, CRLF)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        dense = [str(v) if v % 4 else "" for v in rng.integers(-3, 10**6, 13)]
        cats = [f"{v:08x}" if v % 7 else "" for v in rng.integers(0, 2**32, 26)]
        end = "\n"
        if odd:
            k = int(rng.integers(4))
            cats[k] = ["a", "ABCDEF12", "123456789abc", "0"][k]
            dense[k] = ["-17", "123456789012345", "0", "-0"][k]
            end = "\r\n" if rng.random() < 0.5 else "\n"
        out.append(line(str(rng.integers(2)), dense, cats, end))
    return out


def expected(lines: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, transformed dense, raw ids (-1 missing) by the exact per-line parser."""
    rows = [parse_fields(x) for x in lines]
    labels = np.array([r[0] for r in rows], dtype=np.uint8)
    dense = cr.dense_transform(np.array([r[1] for r in rows], dtype=np.int64).reshape(-1, 13))
    ids = np.array([r[2] for r in rows], dtype=np.int64).reshape(-1, 26)
    return labels, dense, ids, ids < 0


def as_ids(chunk: cr.RawChunk) -> np.ndarray:
    ids = np.stack(chunk.ids, axis=1).astype(np.int64)
    miss = (chunk.missing[:, None] >> np.arange(NUM_SPARSE, dtype=np.uint32)) & 1
    ids[miss.astype(bool)] = -1
    return ids
