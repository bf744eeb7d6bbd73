"""A Spark session set up as the warehouse needs it (UTC, Arrow), and the result of one statement
in the shape core code reads a DuckDB result in."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

SPARK_CONFIG = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
# Spark's types by the DuckDB names core's schema checks compare with.
_DUCKDB_NAMES = {
    "string": "VARCHAR", "double": "DOUBLE", "bigint": "BIGINT", "int": "INTEGER", "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP", "timestamp_ntz": "TIMESTAMP", "date": "DATE", "float": "FLOAT",
}


def spark_session(master: str = "local[2]", driver_memory: str = "2g"):
    """The SparkSession for ``master``: local[N] in this process's JVM, sc://host for Spark
    Connect, or whatever spark-submit set up. UTC, so timestamps read as DuckDB's do."""
    from pyspark.sql import SparkSession

    if master.startswith("sc://"):
        builder = SparkSession.builder.remote(master)
    else:
        builder = SparkSession.builder.master(master).config("spark.driver.memory", driver_memory)
    for key, value in SPARK_CONFIG.items():
        builder = builder.config(key, value)
    session = builder.appName("churn_assets").getOrCreate()
    if not master.startswith("sc://"):
        session.sparkContext.setLogLevel("ERROR")
    return session


@dataclass
class SparkResult:
    """What ``execute`` returns: the rows of a select, or one row with the rows a write wrote."""

    frame: object | None = None  # a Spark DataFrame
    written: int | None = None

    def fetchall(self) -> list[tuple]:
        if self.written is not None:
            return [(self.written,)]
        return [tuple(row) for row in self.frame.collect()] if self.frame is not None else []

    def fetchone(self) -> tuple | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    def arrow(self) -> pa.Table:
        """The rows as Arrow, timestamps naive UTC as DuckDB's ``TIMESTAMP`` gives them."""
        table = self.frame.toArrow()
        return table.cast(pa.schema([
            pa.field(f.name, pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f for f in table.schema
        ]))

    to_arrow_table = arrow

    def df(self) -> pd.DataFrame:
        return self.arrow().to_pandas()

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    @property
    def types(self) -> list[str]:
        return [_DUCKDB_NAMES.get(f.dataType.simpleString(), f.dataType.simpleString().upper()) for f in self.frame.schema]
