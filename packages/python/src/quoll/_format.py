"""Printing: objects print as the seed's tables, as text (``print``, REPL) and HTML (Jupyter)."""

import datetime
import html
from typing import Any, Iterable, List, Optional, Sequence, Tuple, TypeVar

__all__ = [
    "render_table",
    "render_fields",
    "html_table",
    "html_fields",
    "display_time",
    "PrintableFields",
    "PrintableList",
]

T = TypeVar("T")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if value is True:
        return "True"
    if value is False:
        return "False"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as an aligned text table with a header rule, like a notebook's table."""
    if not rows:
        return "(no rows)"
    text = [[_cell(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) if i < len(r) else 0 for r in text]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in text])


def render_fields(fields: Sequence[Tuple[str, Any]]) -> str:
    """One object as a two-column field/value table."""
    width = max(len(k) for k, _ in fields)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in fields)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as HTML (what Jupyter shows)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_fields(fields: Sequence[Tuple[str, Any]]) -> str:
    """A field/value table as HTML, the seed's ``Field | Value`` layout."""
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(_cell(v))}</td></tr>" for k, v in fields)
    return f"<table><tr><th>Field</th><th>Value</th></tr>{body}</table>"


def parse_time(iso: Optional[str]) -> Optional[datetime.datetime]:
    """An RFC 3339 string as an aware datetime (None stays None; nanoseconds are cut to micro)."""
    if iso is None:
        return None
    text = iso.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # fromisoformat (3.9/3.10) takes at most 6 fraction digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{(digits + '000000')[:6]}{rest}"
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def display_time(iso: Optional[str]) -> str:
    """A timestamp as the seed prints orchestrations, tasks and runs: ``%Y-%d-%b %H:%M:%S`` in UTC."""
    if iso is None:
        return "-"
    d = parse_time(iso)
    if d is None:
        return iso
    d = d.astimezone(datetime.timezone.utc)
    return f"{d.year}-{d.day:02d}-{_MONTHS[d.month - 1]} {d.hour:02d}:{d.minute:02d}:{d.second:02d}"


class PrintableFields:
    """An object that prints its ``_fields()`` as ``field  value`` lines (and a table in Jupyter)."""

    def _fields(self) -> Sequence[Tuple[str, Any]]:  # pragma: no cover - every class overrides it
        return []

    def __str__(self) -> str:
        return render_fields(self._fields())

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        return html_fields(self._fields())


class PrintableList(List[T]):
    """A list that prints as a table (or lines); otherwise a plain list."""

    #: What an empty list prints as.
    empty_text = "(no rows)"
    #: Column headers of the table.
    headers: Sequence[str] = ()

    def __init__(self, items: Iterable[T] = ()) -> None:
        super().__init__(items)

    def _rows(self) -> List[Sequence[Any]]:  # pragma: no cover - every list overrides it
        return [[str(x)] for x in self]

    def __str__(self) -> str:
        if not self:
            return self.empty_text
        return render_table(self.headers, self._rows())

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        if not self:
            return f"<p>{html.escape(self.empty_text)}</p>"
        return html_table(self.headers, self._rows())
