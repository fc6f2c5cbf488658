"""Pipeline inference logs: ``logs()`` (one page) and ``export_logs()`` (every page, to files)."""

import datetime
import json
import os
import re
import sys
from typing import Any, Dict, List, Optional, Tuple, Union

from ._frames import ipc_to_table, pandas_or_none, pyarrow_or_none, records_to_dataframe
from ._http import HttpTransport
from .errors import ValidationError

__all__ = ["LogRecords", "fetch_logs", "export_logs", "parse_data_size", "to_epoch_ms"]

#: Rows a query without a time range returns when no limit is given (the original's default).
DEFAULT_LIMIT = 100
#: Size cap of one page in bytes of Arrow data (the original's 10 MB).
PAGE_BYTES = 10_000_000

LogTime = Union[datetime.datetime, datetime.date, int, float, str]

_UNITS = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_JSON = "application/json"
_ARROW_STREAM = "application/vnd.apache.arrow.stream"


class LogRecords(List[Dict[str, Any]]):
    """``logs()`` as records (without pandas): a list with the page's flags as attributes.

    Attributes:
        truncated: the size cap cut the result short (a warning naming ``export_logs`` was printed).
        schema_changed: rows of another schema follow and are not included (a warning was printed).
        more_available: more rows exist beyond ``limit`` (a warning was printed).
    """

    truncated = False
    schema_changed = False
    more_available = False


def _warn(text: str) -> None:
    print(text, file=sys.stderr)


def parse_data_size(text: str) -> int:
    """Bytes of a size like ``"1.5 MiB"``, ``"10MiB"`` or ``"1 gib"`` (KiB, MiB, GiB or TiB).

    Raises:
        ValidationError: ``invalid_data_size`` for anything else or a size that is not positive.
    """
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]iB)", text.strip(), re.IGNORECASE) if isinstance(text, str) else None
    if m is None:
        raise ValidationError(
            "invalid_data_size",
            f'Invalid data size format "{text}". Please use the format: <number><unit> (e.g. 1.5MiB or 1 GiB).',
            0,
            {"data_size_limit": str(text)},
        )
    size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if size <= 0:
        raise ValidationError(
            "invalid_data_size", f'File size must be positive; got "{text}".', 0, {"data_size_limit": text}
        )
    return size


def to_epoch_ms(name: str, value: LogTime) -> int:
    """A time bound as epoch milliseconds. Naive datetimes and zone-less strings are local time
    (``datetime.datetime.now()`` works as in the original); numbers are epoch milliseconds."""
    ms: Optional[float] = None
    if isinstance(value, datetime.datetime):
        ms = value.timestamp() * 1000
    elif isinstance(value, datetime.date):
        ms = datetime.datetime(value.year, value.month, value.day).timestamp() * 1000
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        ms = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            ms = float(text)
        else:
            try:
                ms = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
            except ValueError:
                ms = None
    if ms is None or ms != ms or ms in (float("inf"), float("-inf")):
        raise ValidationError(
            "invalid_time_range",
            f"Log {name} {value!r} is not a time; give a datetime, epoch milliseconds or an ISO 8601 string.",
            0,
            {name: str(value)},
        )
    return int(ms)


def time_range(start: Optional[LogTime], end: Optional[LogTime]) -> Optional[Tuple[int, int]]:
    """Checks start/end before any request: both or neither, start not after end."""
    if (start is None) != (end is None):
        raise ValidationError(
            "invalid_time_range",
            "Please provide both start_datetime and end_datetime together "
            f"(got only {'start_datetime' if start is not None else 'end_datetime'}), or neither for the newest logs.",
        )
    if start is None or end is None:
        return None
    s, e = to_epoch_ms("start", start), to_epoch_ms("end", end)
    if s > e:
        raise ValidationError(
            "invalid_time_range", f"Log start ({start}) is after end ({end}); swap start_datetime and end_datetime."
        )
    return s, e


def _check_limit(limit: Optional[int]) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError("invalid_request", f"limit must be a positive integer; got {limit!r}.", 0)


class _Page:
    __slots__ = ("rows", "truncated", "schema_changed", "next_cursor", "schema_id", "body_bytes", "records", "table")

    def __init__(self) -> None:
        self.rows = 0
        self.truncated = False
        self.schema_changed = False
        self.next_cursor: Optional[str] = None
        self.schema_id: Optional[str] = None
        self.body_bytes = 0
        self.records: List[Dict[str, Any]] = []
        self.table: Any = None


def _fetch_page(http: HttpTransport, path: str, query: Dict[str, Any], arrow: bool) -> _Page:
    res = http.send("GET", path, query=query, accept=_ARROW_STREAM if arrow else _JSON, timeout=300)
    page = _Page()
    page.body_bytes = len(res.body)
    if arrow:
        page.rows = int(res.header("x-quoll-rows") or 0)
        page.truncated = res.header("x-quoll-truncated") == "true"
        page.schema_changed = res.header("x-quoll-schema-changed") == "true"
        page.next_cursor = res.header("x-quoll-next-cursor")
        page.schema_id = res.header("x-quoll-schema-id")
        page.table = ipc_to_table(res.body)
    else:
        body = json.loads(res.body)
        page.rows = int(body.get("rows", 0))
        page.truncated = bool(body.get("truncated"))
        page.schema_changed = bool(body.get("schemaChanged"))
        page.next_cursor = body.get("nextCursor")
        page.schema_id = body.get("schemaId")
        page.records = list(body.get("records") or [])
    return page


def fetch_logs(
    http: HttpTransport,
    path: str,
    *,
    limit: Optional[int],
    start: Optional[LogTime],
    end: Optional[LogTime],
    arrow: bool,
    dataframe: Optional[bool],
    max_bytes: Optional[int],
) -> Any:
    """One page of a pipeline's inference log, with the original's warnings on stderr."""
    rng = time_range(start, end)
    _check_limit(limit)
    if max_bytes is not None and not (isinstance(max_bytes, int) and max_bytes > 0):
        raise ValidationError("invalid_request", f"max_bytes must be a positive integer; got {max_bytes!r}.", 0)
    pa = None
    if arrow:
        pa = pyarrow_or_none()
        if pa is None:
            raise ImportError("logs(arrow=True) needs pyarrow; install it (pip install pyarrow) or leave arrow off.")
    query: Dict[str, Any] = {"limit": limit, "maxBytes": max_bytes or PAGE_BYTES}
    if rng is not None:
        query["start"], query["end"] = rng
    page = _fetch_page(http, path, query, arrow)
    order = "newest" if rng is None else "oldest"
    more = page.next_cursor is not None and not page.truncated and not page.schema_changed
    if page.truncated:
        _warn(
            f"Warning: Pipeline log size limit exceeded. Only displaying {page.rows} log messages. "
            "Please request logs using export_logs."
        )
    if page.schema_changed:
        _warn(
            f"Warning: Pipeline log schema has changed over the logs requested. {page.rows} {order} records "
            "retrieved successfully. Please request additional records separately or use export_logs."
        )
    if more and rng is None:
        _warn("Warning: There are more logs available. Please set a larger limit or request a file using export_logs.")
    if arrow:
        return page.table
    pd = pandas_or_none() if dataframe is not False else None
    if dataframe and pd is None:
        raise ImportError("logs(dataframe=True) needs pandas; install it (pip install pandas).")
    if pd is not None:
        df = records_to_dataframe(page.records, pd)
        df.attrs.update({"truncated": page.truncated, "schema_changed": page.schema_changed, "more_available": more})
        return df
    out = LogRecords(page.records)
    out.truncated, out.schema_changed, out.more_available = page.truncated, page.schema_changed, more
    return out


def export_logs(
    http: HttpTransport,
    path: str,
    pipeline_name: str,
    *,
    directory: Optional[str],
    file_prefix: Optional[str],
    data_size_limit: Optional[str],
    limit: Optional[int],
    start: Optional[LogTime],
    end: Optional[LogTime],
    arrow: bool,
) -> Dict[str, Any]:
    """Every page of a pipeline's inference log into numbered files, one per schema."""
    size_text = data_size_limit or "100 MiB"
    budget = parse_data_size(size_text)
    rng = time_range(start, end)
    _check_limit(limit)
    cap = limit if limit is not None else (DEFAULT_LIMIT if rng is None else None)
    pa = None
    if arrow:
        pa = pyarrow_or_none()
        if pa is None:
            raise ImportError("export_logs(arrow=True) needs pyarrow; install it (pip install pyarrow) or write JSON.")
    directory = directory or "logs"
    prefix = file_prefix or pipeline_name
    os.makedirs(directory, exist_ok=True)
    files: List[str] = []
    current_schema: Optional[str] = None
    json_file = None
    tables: List[Any] = []
    rows = 0
    written = 0
    truncated = False
    more = False
    cursor: Optional[str] = None

    def close_file() -> None:
        nonlocal json_file, tables
        if json_file is not None:
            json_file.close()
            json_file = None
        if arrow and files and tables:
            table = pa.concat_tables(tables)
            with pa.OSFile(files[-1], "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
        tables = []

    def use_schema(schema_id: Optional[str]) -> None:
        nonlocal current_schema, json_file
        if files and schema_id == current_schema:
            return
        close_file()
        current_schema = schema_id
        name = os.path.join(directory, f"{prefix}-{len(files) + 1}.{'arrow' if arrow else 'json'}")
        files.append(name)
        if not arrow:
            json_file = open(name, "w", encoding="utf-8")  # noqa: SIM115 - closed by close_file

    try:
        while True:
            left = None if cap is None else cap - rows
            query: Dict[str, Any] = {
                "limit": left,
                # Never fetch much more than the budget can still take (the server sends at least one row).
                "maxBytes": max(1, min(PAGE_BYTES, budget - written)),
                "cursor": cursor,
            }
            if rng is not None:
                query["start"], query["end"] = rng
            page = _fetch_page(http, path, query, arrow)
            if page.rows == 0:
                break
            if arrow:
                table = page.table
                per_row = page.body_bytes / max(1, table.num_rows)
                taken = min(table.num_rows, int((budget - written) // per_row))
                if taken > 0:
                    use_schema(page.schema_id)
                    tables.append(table.slice(0, taken) if taken < table.num_rows else table)
                written += round(taken * per_row)
            else:
                taken = 0
                chunk: List[str] = []
                for record in page.records:
                    line = json.dumps(record, separators=(",", ":")) + "\n"
                    size = len(line.encode("utf-8"))
                    if written + size > budget:
                        break
                    chunk.append(line)
                    written += size
                    taken += 1
                if taken > 0:
                    use_schema(page.schema_id)
                    json_file.write("".join(chunk))  # type: ignore[union-attr]
            rows += taken
            if taken < page.rows:
                truncated = True
                break
            cursor = page.next_cursor
            if cursor is None:
                break
            if cap is not None and rows >= cap:
                more = True
                break
    finally:
        close_file()
    if len(files) > 1:
        _warn("Note: The logs with different schemas are written to separate files in the provided directory.")
    if truncated:
        _warn(
            f"Warning: Pipeline log data size limit of {size_text} exceeded. {rows} "
            f"{'newest' if rng is None else 'oldest'} records exported successfully; set a larger "
            "data_size_limit or a narrower time range to export more."
        )
    if more:
        _warn("Warning: There are more logs available. Please set a larger limit to export more data.")
    return {"files": files, "rows": rows, "bytes": written, "truncated": truncated, "more_available": more}
