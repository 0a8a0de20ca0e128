"""Lazy public names for a package (PEP 562): nothing is imported until a name is used.

``import embedlab`` must stay fast (no torch, no TorchRec), yet ``embedlab.DLRM`` or
``embedlab.sharding.CostMeter`` should work without knowing the defining module. A package
declares a map ``public name -> "module"`` (or ``"module:attribute"`` where the public name
differs from the attribute's) and gets back the module-level ``__getattr__``, ``__dir__`` and
``__all__``; the first access imports the defining module and caches the object in the
package's namespace, so later accesses cost a dict lookup.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``.

    ``names`` maps each public name to ``"module"`` or ``"module:attribute"``; ``submodules``
    are subpackages reachable as attributes (``embedlab.sharding``) without an explicit
    import. ``__all__`` holds the public names (not the submodules), sorted.
    """
    table = dict(names)
    subs = tuple(submodules)

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            if name in subs:
                mod = importlib.import_module(f"{package}.{name}")
                setattr(sys.modules[package], name, mod)
                return mod
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        modname, _, attr = target.partition(":")
        obj = getattr(importlib.import_module(modname), attr or name)
        setattr(sys.modules[package], name, obj)  # cached: the next access skips this hook
        return obj

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *table, *subs})

    return __getattr__, __dir__, sorted(table)


__all__ = ["lazy_exports"]
