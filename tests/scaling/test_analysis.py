from __future__ import annotations

import pytest

from embedlab.errors import UserError
from embedlab.scaling.analysis import resolve_column


def test_a_real_column_wins_over_an_alias_of_the_same_name() -> None:
    rows = [{"run_id": "a", "params": 1.0e6, "ne": 0.8}]
    assert resolve_column(rows, "params") == "params"


def test_an_alias_applies_when_its_target_exists() -> None:
    rows = [{"run_id": "a", "params_total": 1.0e6, "train_samples": 5.0e5, "ne": 0.8}]
    assert resolve_column(rows, "params") == "params_total"
    assert resolve_column(rows, "data") == "train_samples"


def test_the_error_lists_only_names_that_resolve() -> None:
    rows = [{"run_id": "a", "params": 1.0e6, "ne": 0.8}]
    with pytest.raises(UserError) as e:
        resolve_column(rows, "flops")
    valid = str(e.value).split("valid: ")[1].split(", ")
    assert sorted(valid) == ["ne", "params"]  # no alias whose column is missing
    for name in valid:
        assert resolve_column(rows, name) in rows[0]
