"""A griffe extension for the API reference: the docstrings' Sphinx roles
(``:class:`~embedlab.errors.UserError```) become Markdown code spans (`` `UserError` ``),
so mkdocstrings does not print the role's markup. A leading ``~`` keeps the last name only,
as Sphinx shows it. Loaded by mkdocs.yml (``extensions:`` of the python handler)."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const|type):`(~?)([^`<]+?)`")


def plain(text: str) -> str:
    """``text`` with every Sphinx role replaced by a code span of its target."""

    def sub(m: re.Match[str]) -> str:
        target = m.group(2).strip()
        return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"

    return ROLE.sub(sub, text)


class SphinxRoles(griffe.Extension):
    """Rewrite every object's docstring once it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
