"""The one exception type for user mistakes.

Library code raises :class:`UserError` for anything the user can fix (a bad path, a
malformed file, an unknown name, a negative size). It is a :class:`ValueError`, so code
that calls the library catches it as the standard exception for a bad argument and needs
nothing of the CLI. Only the CLI (:mod:`embedlab.cli.main`) turns it into one line on
stderr and exit code 2; every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in the caller's input: one clear, actionable line (a ``ValueError``)."""


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> UserError:
    """The error for an unknown registry name, listing the valid ones."""
    return UserError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
