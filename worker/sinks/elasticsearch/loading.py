"""elasticsearch-py imported without pyarrow: 25 MiB less per worker.

elasticsearch-py's serializer module imports pyarrow at import time whenever it is installed,
for an Arrow response serializer Sluice never asks for. pyarrow is installed for the Parquet
format, so every worker paid for it (measured: 117 MiB against 92 MiB after importing the
worker's modules), Parquet or not. ``import_elasticsearch`` imports elasticsearch-py with
pyarrow hidden for that one import; pyarrow itself stays importable, and the Parquet format
imports it when it is chosen. A contract test (``tests/unit/sinks/elasticsearch/test_sink.py``)
checks that the worker's modules load without pyarrow.
"""

from __future__ import annotations

import sys


def import_elasticsearch() -> None:
    """Import elasticsearch-py (once) without letting it import pyarrow."""
    if "elasticsearch" in sys.modules or "pyarrow" in sys.modules:
        return  # already imported (either way), nothing left to save
    sys.modules["pyarrow"] = None  # type: ignore[assignment]  # import pyarrow -> ImportError
    try:
        import elasticsearch  # noqa: F401
    finally:
        del sys.modules["pyarrow"]
