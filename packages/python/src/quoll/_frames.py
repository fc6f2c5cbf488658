"""pandas and pyarrow interop, used only when they are importable (neither is required).

Nothing here imports pandas or pyarrow unless the caller's data or request needs it: a
DataFrame or Table passed in means its library is already loaded.
"""

import json
import sys
from typing import Any, Dict, Iterable, List, Optional

from .errors import ValidationError

__all__ = [
    "pandas_or_none",
    "pyarrow_or_none",
    "is_dataframe",
    "is_arrow_table",
    "records_to_json",
    "dataframe_to_json",
    "records_to_dataframe",
    "table_to_ipc_file",
    "ipc_to_table",
]

_ARROW_FILE_MAGIC = b"ARROW1"


def pandas_or_none() -> Any:
    """The pandas module, or None when it is not installed."""
    try:
        import pandas  # noqa: PLC0415 - optional dependency

        return pandas
    except ImportError:
        return None


def pyarrow_or_none() -> Any:
    """The pyarrow module, or None when it is not installed."""
    try:
        import pyarrow  # noqa: PLC0415 - optional dependency
        import pyarrow.ipc  # noqa: F401, PLC0415

        return pyarrow
    except ImportError:
        return None


def is_dataframe(value: Any) -> bool:
    """Whether `value` is a pandas DataFrame (pandas is then already imported)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def is_arrow_table(value: Any) -> bool:
    """Whether `value` is a pyarrow Table or RecordBatch (pyarrow is then already imported)."""
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(value, (pa.Table, pa.RecordBatch))


def _plain(value: Any) -> Any:
    """JSON fallback for numpy values and the like (arrays → lists, scalars → Python numbers)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def records_to_json(records: Iterable[Dict[str, Any]]) -> bytes:
    """Records as the JSON body of an inference (NaN and infinities are refused here, not by the server)."""
    try:
        return json.dumps(records, separators=(",", ":"), allow_nan=False, default=_plain).encode("utf-8")
    except ValueError as err:
        raise ValidationError(
            "non_numeric_value",
            f"The inference input holds a value JSON cannot carry ({err}); replace NaN and infinite values "
            "with numbers first.",
        ) from None
    except TypeError as err:
        raise ValidationError(
            "invalid_inference_input",
            f"The inference input cannot be sent as JSON records: {err}. Give a list of dicts like "
            '[{"tensor": [1.0, 2.0]}], a pandas DataFrame or a pyarrow Table.',
        ) from None


def dataframe_to_json(df: Any) -> bytes:
    """A DataFrame as records (``orient="records"``), numpy values as plain numbers."""
    return records_to_json(df.to_dict(orient="records"))


def records_to_dataframe(records: List[Dict[str, Any]], pd: Any) -> Any:
    """Result records as a DataFrame, ``time`` (epoch ms) as datetime, like the original's results."""
    if not records:
        return pd.DataFrame()
    df = pd.DataFrame.from_records(records, columns=list(records[0].keys()))
    if "time" in df.columns:
        df["time"] = pd.to_datetime(df["time"], unit="ms")
    return df


def table_to_ipc_file(table: Any) -> memoryview:
    """A pyarrow Table (or RecordBatch) as Arrow IPC file bytes."""
    pa = sys.modules["pyarrow"]
    import pyarrow.ipc  # noqa: F401, PLC0415

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return memoryview(sink.getvalue())


def ipc_to_table(data: bytes, pa: Optional[Any] = None) -> Any:
    """Arrow IPC bytes (file or stream format) as a pyarrow Table."""
    pa = pa or pyarrow_or_none()
    if pa is None:
        raise ImportError("pyarrow is needed to read Arrow data; install it with: pip install pyarrow")
    buf = pa.py_buffer(data)
    if bytes(data[:6]) == _ARROW_FILE_MAGIC:
        return pa.ipc.open_file(buf).read_all()
    return pa.ipc.open_stream(buf).read_all()
