"""The one ``KEY=VALUE,...`` option parser, and typed coercion against a schema.

Several capabilities take free-form options on the command line: the optimizers
(``--optimizer-options``), the growth scheme (``--scheme-options``), the online
strategies including FGD (``--strategy-options``) and the BLENDER operators
(``--op-options``). All of them go through this module, in two steps:

1. :func:`parse_options` splits the text into ``{key: raw string}``: pairs are separated by
   commas, key and value by the first ``=``; blanks around them are dropped; an empty key,
   a pair without ``=`` or a key given twice is refused.
2. The capability coerces the raw values to its schema with :func:`coerce_options` (a
   mapping of option name to default value or type) or :func:`dataclass_options` (a
   dataclass's fields). Booleans accept ``true/false/yes/no/on/off/1/0``; integers only
   whole numbers; floats only finite numbers; an option whose default is ``None`` and
   whose type is not given is a number when it reads as one, else text.

Every mistake raises :class:`~embedlab.errors.UserError` (a ``ValueError``) in one style:
``"<owner> takes no option <key>; valid: <names>"`` or
``"<owner> option <key>: bad value <value> (expected <kind>)"``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from embedlab.errors import UserError

_TRUE = ("1", "1.0", "true", "yes", "on")
_FALSE = ("0", "0.0", "false", "no", "off")
_KINDS: dict[type, str] = {bool: "true or false", int: "a whole number", float: "a finite number"}


def parse_options(text: str | None, owner: str = "option") -> dict[str, str]:
    """``"a=1, b = x"`` → ``{"a": "1", "b": "x"}``; ``None`` or blank → ``{}``."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"{owner} options: {part!r} is not KEY=VALUE")
        if key in out:
            raise UserError(f"{owner} options: {key} is given twice")
        out[key] = value.strip()
    return out


def coerce_value(owner: str, key: str, value: Any, kind: type | None) -> Any:
    """``value`` (a raw string, or an already typed value) as ``kind``.

    ``kind`` ``None`` means "number if it reads as one, else text".
    """
    if kind is None:
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                return value
            if math.isfinite(f):
                return f
            return value
        return value
    if kind is str:
        return str(value)
    expected = _KINDS.get(kind, kind.__name__)
    bad = UserError(f"{owner} option {key}: bad value {value!r} (expected {expected})")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise bad
    if kind in (int, float):
        if isinstance(value, bool):
            raise bad
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(f) or (kind is int and not f.is_integer()):
            raise bad
        return int(f) if kind is int else f
    raise TypeError(f"{owner} option {key}: unsupported option type {kind!r}")


def _kind_of(default: Any) -> type | None:
    if isinstance(default, type):
        return default
    if default is None:
        return None
    for k in (bool, int, float, str):
        if isinstance(default, k):
            return k
    return None


def coerce_options(owner: str, options: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The options typed by ``schema`` (name → default value, or name → type).

    Unknown names are refused, listing the valid ones; names not given are not added.
    """
    bad = sorted(set(options) - set(schema))
    if bad:
        valid = ", ".join(schema) or "none"
        raise UserError(f"{owner} takes no option {', '.join(bad)}; valid: {valid}")
    return {k: coerce_value(owner, k, v, _kind_of(schema[k])) for k, v in options.items()}


def _field_kind(tp: Any) -> type | None:
    """bool/int/float/str from a (possibly ``X | None``) field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _field_kind(args[0]) if len(args) == 1 else None
    return tp if tp in (bool, int, float, str) else None


def dataclass_options(
    cls: type, owner: str, options: Mapping[str, Any], exclude: tuple[str, ...] = ()
) -> dict[str, Any]:
    """:func:`coerce_options` with the dataclass ``cls``'s fields (less ``exclude``) as the
    schema, typed by the fields' annotations."""
    hints = typing.get_type_hints(cls)
    schema = {f.name: _field_kind(hints[f.name]) for f in dataclasses.fields(cls)
              if f.name not in exclude}  # fmt: skip
    bad = sorted(set(options) - set(schema))
    if bad:
        raise UserError(f"{owner} takes no option {', '.join(bad)}; valid: {', '.join(schema)}")
    return {k: coerce_value(owner, k, v, schema[k]) for k, v in options.items()}


__all__ = ["coerce_options", "coerce_value", "dataclass_options", "parse_options"]
