import pytest

from embedlab.errors import UserError
from embedlab.train.schedule import lr_at


def test_schedules():
    assert lr_at(5, 0.1, 100) == 0.1
    assert lr_at(0, 1.0, 100, "warmup-decay", warmup=10) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 100, "warmup-decay", warmup=10) == pytest.approx(1.0)
    assert lr_at(100, 1.0, 100, "warmup-decay", warmup=10) == pytest.approx(0.0)
    assert lr_at(55, 1.0, 100, "cosine", warmup=10) == pytest.approx(0.5)
    with pytest.raises(UserError, match="valid: constant"):
        lr_at(0, 1.0, 10, "exp")
