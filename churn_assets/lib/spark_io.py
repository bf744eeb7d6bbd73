"""The warehouse IO manager on Spark (``CHURN_ENGINE=spark``): tables are Parquet folders under
the Spark warehouse root, a partitioned table has a folder per partition key.

A ``TableQuery`` runs through the same ``write_table_query`` as on DuckDB, its SQL transpiled for
Spark, into a staging table; its schema's SQL checks run there, then each partition key's folder is
swapped in. A DataFrame (predictions, value, the plan) is staged and swapped in the same way. The
swap is atomic per partition folder, not for a whole range: Delta Lake would give that, but its
Spark jars come from Maven, which the install here cannot reach.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pandas as pd

from churn_assets.core.spark.session import spark_session
from churn_assets.core.spark.warehouse import SparkWarehouse
from churn_assets.core.table_query import TableQuery, write_table_query
from churn_assets.lib.resources import table_query_metadata, written_metadata


class SparkWarehouseIOManager(dg.ConfigurableIOManager):
    """Writes each table asset's rows as Parquet through Spark; reads them back as pandas."""

    spark_root: str
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"

    def _warehouse(self) -> SparkWarehouse:
        return SparkWarehouse(spark_session(self.spark_master, self.spark_driver_memory), Path(self.spark_root))

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        schema, name = context.asset_key.path
        column = (context.definition_metadata or {}).get("partition_expr") if context.has_asset_partitions else None
        keys = list(context.asset_partition_keys) if column else []
        staging = f"{schema}_{name}_{uuid.uuid4().hex[:12]}"
        with self._warehouse() as warehouse:
            warehouse.execute("create schema if not exists staging")
            try:
                if isinstance(obj, TableQuery):
                    result = write_table_query(warehouse, f"staging.{staging}", obj)
                    rows, extra = result.rows, table_query_metadata(obj, result)
                elif isinstance(obj, pd.DataFrame):
                    warehouse.register("_frame", obj)
                    rows = warehouse.execute(f"create table staging.{staging} as select * from _frame").fetchall()[0][0]
                    warehouse.unregister("_frame")
                    extra = {}
                else:
                    raise TypeError(f"{schema}.{name}: cannot store a {type(obj).__name__} in the Spark warehouse")
                warehouse.replace_partitions(schema, name, warehouse.read("staging", staging), column, keys)
            finally:
                warehouse.execute(f"drop table if exists staging.{staging}")
        context.add_output_metadata({
            **written_metadata(context, f"{schema}.{name}", rows, kind="spark"),
            "dagster/uri": str(warehouse.location(schema, name)), **extra,
        })

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        schema, name = context.asset_key.path
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else None
        with self._warehouse() as warehouse:
            return warehouse.read(schema, name, keys).toPandas()
