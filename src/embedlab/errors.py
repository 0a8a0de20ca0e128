"""The one exception type for user mistakes.

Library code raises :class:`UserError` for anything the user can fix (a bad path, a
malformed file, an unknown name, a negative size). The CLI turns it into one line on
stderr and exit code 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: one clear, actionable line."""


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> UserError:
    """The error for an unknown registry name, listing the valid ones."""
    return UserError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
