"""Shared fixtures: a small planted-truth dataset generated once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from embedlab.data.synth import SynthConfig, generate

SMALL_CARDS = tuple(
    [
        50,
        20,
        300,
        200,
        10,
        5,
        100,
        30,
        3,
        150,
        40,
        250,
        60,
        8,
        90,
        220,
        4,
        70,
        45,
        2,
        180,
        6,
        7,
        120,
        12,
        80,
    ]
)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["EMBEDLAB_CACHE"] = str(tmp_path_factory.mktemp("cache"))  # never the user's cache


@pytest.fixture(scope="session")
def small_cfg() -> SynthConfig:
    return SynthConfig(
        rows=6000, valid_rows=2000, test_rows=2000, seed=3, cardinalities=SMALL_CARDS
    )


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory, small_cfg: SynthConfig) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(small_cfg, out)
    return out
