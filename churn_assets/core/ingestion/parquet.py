"""Reading Parquet files into pandas through pyarrow directly.

``pandas.read_parquet`` (pandas 2.3, pyarrow 25) opens a local file as a Python handle for pyarrow;
processes that used it were seen to abort at exit about one time in five ("terminate called
without an active exception", status 134), and none did with ``pyarrow.parquet.read_table``,
which opens the file itself.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq


def read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The Parquet file at ``path`` (only ``columns`` when given) as a DataFrame."""
    return pq.read_table(path, columns=columns).to_pandas()
