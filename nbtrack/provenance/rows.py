"""A batch of predictions as rows: ids (the caller's, else made here), each input row's hash, the
digests of the input and of the predictions, the input's profile, and the table written to the
inference run's part file."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from typing import Any

from nbtrack.errors import UsageError

MAX_PROFILE_COLUMNS = 200  # a wide input (images as pixels) keeps its profile readable


def frame_of(data: Any):
    """The input as a DataFrame, for hashing and profiling only (the model gets ``data`` as
    given)."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    if hasattr(data, "detach") and hasattr(data, "numpy"):  # a torch tensor
        data = data.detach().cpu().numpy()
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):
        array = np.asarray(list(data), dtype=object)
    if array.ndim == 0:
        raise UsageError(
            "nbtrack.predict got a single value, not rows",
            "pass a DataFrame, an array or a list with one row per prediction",
        )
    if array.ndim > 2:
        array = array.reshape(array.shape[0], -1)
    return pd.DataFrame(array if array.ndim == 2 else array.reshape(-1, 1))


def row_count(data: Any) -> int:
    if hasattr(data, "shape") and getattr(data, "shape", None):
        return int(data.shape[0])
    return len(data)


def row_hashes(frame) -> Any:
    """One uint64 per row (pandas' vectorised hash of the values, not the index)."""
    import numpy as np
    import pandas as pd

    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    try:
        return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    except TypeError:
        # Unhashable cells (lists, dicts): their repr is what the row held.
        return pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy(np.uint64)


def hex_hashes(hashes) -> list[str]:
    return [f"{int(h):016x}" for h in hashes]


def digest_of_hashes(hashes) -> str:
    """sha256 over the rows' hashes in order: the batch's digest."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(hashes, dtype="<u8").tobytes()).hexdigest()


def ids_for(ids: Any, n: int) -> list[str]:
    """The caller's ids as strings, checked; or ``n`` new ids that are unique and sort in the
    order they were made: ``p<ms time, 13 digits>-<random, 10 hex>-<row, 6+ digits>``."""
    if ids is None:
        stamp = f"p{int(time.time() * 1000):013d}-{os.urandom(5).hex()}"
        return [f"{stamp}-{i:06d}" for i in range(n)]
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    elif isinstance(ids, str | bytes):
        raise UsageError("ids must be one id per row, not one string", "pass a list or a column")
    ids = list(ids)
    if len(ids) != n:
        raise UsageError(
            f"{len(ids)} ids for {n} rows",
            "pass one id per row of the data (or no ids: nbtrack makes them)",
        )
    out = []
    for value in ids:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise UsageError("an id is missing (None or NaN)", "give every row an id")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a pandas int column with a NaN elsewhere became floats
        out.append(str(value))
    if len(set(out)) != n:
        seen: set[str] = set()
        dup = next(v for v in out if v in seen or seen.add(v))
        raise UsageError(
            f"prediction id {dup!r} appears more than once in this call",
            "ids name one prediction each: make them unique (or pass none)",
        )
    return out


def output_table(output: Any, n: int):
    """The model's output as Arrow columns (``output``, or ``output.<column>`` for a frame)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(output, pd.DataFrame):
        return {f"output.{c}": pa.array(output[c].to_numpy()) for c in output.columns}
    if isinstance(output, pd.Series):
        output = output.to_numpy()
    if hasattr(output, "detach") and hasattr(output, "numpy"):
        output = output.detach().cpu().numpy()
    array = np.asarray(output)
    if array.ndim == 0 or array.shape[0] != n:
        raise UsageError(
            f"the model returned {array.shape[0] if array.ndim else 1} outputs for {n} rows",
            "nbtrack records one output per input row: check what the model's predict returns",
        )
    if array.ndim == 1:
        try:
            return {"output": pa.array(array)}
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return {"output": pa.array([repr(v) for v in array])}
    flat = array.reshape(n, -1)
    return {"output": pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])}


def predictions_digest(columns: dict) -> str:
    """sha256 of the predictions (each output column's Arrow buffers, in name order)."""
    h = hashlib.sha256()
    for name in sorted(columns):
        h.update(name.encode())
        for buf in columns[name].buffers():
            if buf is not None:
                h.update(memoryview(buf))
    return h.hexdigest()


class Profile:
    """Per-column count, mean, std, min, max and null rate, merged batch by batch (a serving loop's
    profile never holds its rows)."""

    def __init__(self) -> None:
        self.rows = 0
        self.columns: dict[str, dict[str, float]] = {}

    def add(self, frame) -> None:
        import numpy as np
        import pandas as pd

        self.rows += len(frame)
        for col in list(frame.columns)[:MAX_PROFILE_COLUMNS]:
            series = frame[col]
            stats = self.columns.setdefault(
                str(col),
                {"n": 0, "nulls": 0, "sum": 0.0, "sumsq": 0.0, "min": math.inf, "max": -math.inf},
            )
            nulls = int(series.isna().sum())
            stats["nulls"] += nulls
            if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
                continue
            values = series.dropna().to_numpy(dtype=np.float64)
            if values.size == 0:
                continue
            stats["n"] += int(values.size)
            stats["sum"] += float(values.sum())
            stats["sumsq"] += float(np.square(values).sum())
            stats["min"] = min(stats["min"], float(values.min()))
            stats["max"] = max(stats["max"], float(values.max()))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows, "columns": {}}
        for col, s in self.columns.items():
            entry: dict[str, Any] = {"null_rate": s["nulls"] / self.rows if self.rows else 0.0}
            if s["n"]:
                mean = s["sum"] / s["n"]
                var = max(s["sumsq"] / s["n"] - mean * mean, 0.0)
                entry.update(mean=mean, std=math.sqrt(var), min=s["min"], max=s["max"])
            out["columns"][col] = entry
        return out

    def json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)
