"""Data sources by name: ``synth``, ``movielens``, ``criteo``.

Each source returns a :class:`CTRData`: the schema, the train/valid/test
:class:`~embedlab.data.schema.CTRArrays` and a small ``info`` dict (what was loaded,
Bayes limits for planted-truth data, reader statistics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedlab.data.schema import Batch, CTRArrays, CTRSchema, iter_batches
from embedlab.errors import UserError, unknown_name


@dataclass
class CTRData:
    """A CTR dataset split three ways, ready for :func:`~embedlab.data.schema.iter_batches`."""

    name: str
    schema: CTRSchema
    train: CTRArrays
    valid: CTRArrays
    test: CTRArrays
    info: dict[str, Any] = field(default_factory=dict)
    #: Table sizes that hashing (``--tables hash``) uses by default; ``None``: the schema's.
    #: Sources whose ids are raw hashes (Criteo: 32-bit) give the hashed sizes here.
    hash_sizes: list[int] | None = None
    #: The :class:`~embedlab.data.vocab.Vocabulary` that mapped the ids, when tables are
    #: sized by one (set by the trainer's ``prepare_data``).
    vocabulary: Any = None
    #: Sources that size tables themselves, lazily (a streamed prepared Criteo folder):
    #: the trainer calls ``sizer(cfg)`` instead of its own table sizing.
    sizer: Callable[[Any], CTRData] | None = None
    #: Sources that order training rows themselves (shuffled blocks): an object with
    #: ``batches(schema, batch_size, seed=, epoch=, start=)``; ``None``: a permutation.
    stream: Any = None

    def train_batches(self, batch_size: int, *, seed: int = 0, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """Training batches of one epoch from batch ``start``: the stream's shuffled blocks,
        or :func:`~embedlab.data.schema.iter_batches` (a permutation of all rows)."""
        if self.stream is not None:
            return self.stream.batches(self.schema, batch_size, seed=seed, epoch=epoch, start=start)
        return iter_batches(self.train, self.schema, batch_size, seed=seed, epoch=epoch, start=start)

    def split(self, name: str) -> CTRArrays:
        if name not in ("train", "valid", "test"):
            raise unknown_name("split", name, ["train", "valid", "test"])
        return getattr(self, name)


Loader = Callable[..., CTRData]
DATA_SOURCES: dict[str, Loader] = {}


def register_data(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make a loader available as ``--data NAME``."""

    def deco(fn: Loader) -> Loader:
        DATA_SOURCES[name] = fn
        return fn

    return deco


def load_data(name: str, **options: Any) -> CTRData:
    """Load the data source ``name`` with its options (unknown names list the valid ones)."""
    check_data_name(name)
    return DATA_SOURCES[name](**options)


def check_data_name(name: str) -> None:
    """Raise :class:`UserError` listing the valid names if ``name`` is not a data source."""
    _ensure_builtin()
    if name not in DATA_SOURCES:
        raise unknown_name("data", name, list(DATA_SOURCES))


def _ensure_builtin() -> None:
    import embedlab.data.sources  # noqa: F401  (registers the built-in sources)


def split_by_position(
    arrays: CTRArrays, valid_frac: float = 0.1, test_frac: float = 0.1
) -> tuple[CTRArrays, CTRArrays, CTRArrays]:
    """First rows train, then valid, then test (keeps time order; memmaps stay views)."""
    n = len(arrays)
    n_test = int(round(n * test_frac))
    n_valid = int(round(n * valid_frac))
    a, b = n - n_valid - n_test, n - n_test
    if a <= 0 or n_valid <= 0 or n_test <= 0:
        raise UserError(f"too few rows ({n}) to split into train/valid/test")
    return arrays.take(slice(0, a)), arrays.take(slice(a, b)), arrays.take(slice(b, n))


def require_file(path: str | Path | None, what: str) -> Path:
    if path is None:
        raise UserError(f"missing {what}")
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} not found: {p}")
    return p
