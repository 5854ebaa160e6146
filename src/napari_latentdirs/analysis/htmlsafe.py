"""A tiny HTML template that escapes by default.

``h(template, *values)`` formats like ``str.format`` but every value is
escaped (``& < > " '``) after its format spec is applied. Only :class:`Html`
values -- markup our own code built with ``h`` or declared as a literal --
go in unescaped. A value whose type does not fit its spec (a string where the
template says ``{:.2f}``, as a hostile or damaged input file gives) is shown
as escaped text instead of failing, so a bad field never breaks the page and
never reaches it as markup.

Templates themselves are trusted code: they are literals in the report's
source, never built from data.
"""

from __future__ import annotations

import html
import string
from collections.abc import Iterable
from typing import Any


class Html(str):
    """Trusted markup: inserted into a template as is."""

    __slots__ = ()


class _Escaping(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Html) and not format_spec:
            return str(value)
        try:
            text = format(value, format_spec)
        except (TypeError, ValueError):
            text = str(value)
        return html.escape(text, quote=True)


_FORMATTER = _Escaping()


def h(template: str, *args: Any, **kwargs: Any) -> Html:
    """``template.format(...)`` with every value escaped unless it is :class:`Html`."""
    return Html(_FORMATTER.vformat(template, args, kwargs))


def escape(value: Any) -> Html:
    """One value as text (already-trusted :class:`Html` is kept)."""
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    """Concatenate fragments; anything that is not :class:`Html` is escaped first."""
    return Html(sep.join(escape(p) for p in parts))


__all__ = ["Html", "escape", "h", "join"]
