"""Resources: the warehouse IO manager and the warehouse SQL resource, on DuckDB or on Spark."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBResource
from dagster_duckdb.io_manager import DuckDbClient, _get_cleanup_statement, _partition_where_clause
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

from churn_assets.core.table_query import TableQuery, WrittenTable, write_table_query
from churn_assets.core.warehouse import insert_by_name, table_exists
from churn_assets.settings import Settings

# Every asset that touches the DuckDB file joins this pool; dagster.yaml limits it to one at a
# time, because DuckDB allows a single writer and the IO manager opens read-write connections.
DUCKDB_POOL = "duckdb_warehouse"


class _TransactionalDuckDbClient(DuckDbClient):
    """Runs the IO manager's delete-then-insert in one transaction.

    Upstream deletes a partition's rows and inserts the new ones as separate statements; a run
    killed in between would leave the partition empty. One transaction makes the swap atomic.
    """

    @staticmethod
    def delete_table_slice(context, table_slice: TableSlice, connection) -> None:
        # Upstream tries the DELETE and swallows the missing-table error, which inside a
        # transaction would abort it; look the table up instead.
        if table_exists(connection, table_slice.schema, table_slice.table):
            # duckdb 2 wants every result consumed before the next statement on the connection
            connection.execute(_get_cleanup_statement(table_slice)).fetchall()

    @staticmethod
    @contextmanager
    def connect(context, table_slice):
        with DuckDbClient.connect(context, table_slice) as connection:
            connection.begin()
            try:
                yield connection
            except BaseException:
                connection.rollback()
                connection.close()  # upstream closes only after a clean exit
                raise
            connection.commit()


def storage_kind(settings: Settings) -> str:
    """The kind an asset shows for where its table lives: ``duckdb`` or ``spark``."""
    return settings.engine


def written_metadata(context: dg.OutputContext, name: str, rows: int, kind: str = "duckdb") -> dict:
    """Where the rows went and how many, for the materialization."""
    metadata = {**TableMetadataSet(storage_kind=kind), "dagster/table_name": name}
    if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
        # Metadata here lands on every partition of the range, so a row count would claim the
        # whole range's rows for each one; the asset adds each partition's own count.
        return {**metadata, "rows_written_for_range": rows}
    count_key = "partition_row_count" if context.has_partition_key else "row_count"
    return {**metadata, **TableMetadataSet(**{count_key: rows})}


def _write_arrow(context: dg.OutputContext, table_slice: TableSlice, table: pa.Table, connection) -> dict:
    """Insert ``table`` into the slice's table by column name, creating the table even when there
    are no rows."""
    name = f"{table_slice.schema}.{table_slice.table}"
    insert_by_name(connection, name, table)
    return written_metadata(context, name, table.num_rows)


class _WarehousePandasTypeHandler(DuckDBPandasTypeHandler):
    """Writes DataFrames by column name, and creates the table even for an empty DataFrame.

    Upstream skips empty frames (so a table may never exist and downstream reads fail) and inserts
    by position (so a reordered frame would land in the wrong columns).
    """

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
        # As Arrow: DuckDB scans Arrow buffers about twice as fast as a pandas frame.
        return _write_arrow(context, table_slice, pa.Table.from_pandas(obj, preserve_index=False), connection)


def table_query_metadata(query: TableQuery, result: WrittenTable) -> dict:
    """How a ``TableQuery``'s rows were checked, and its summaries, for the materialization."""
    checked = (
        f"{len(result.checks)} SQL checks from the schema {query.schema.name!r}, all passed" if query.check
        else f"validated by the Pandera schema {query.schema.name!r} one file or month at a time, before staging"
    )
    metadata = {"schema_checks": dg.MetadataValue.text(checked)}
    for title, frame in result.summaries.items():
        metadata[title] = dg.MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "_no rows_")
    return metadata


class _TableQueryTypeHandler(DbTypeHandler[TableQuery]):
    """Tables whose rows stay in DuckDB: the query runs inside the warehouse, in the transaction
    that removed the slice's old rows, and the schema's SQL checks run on the new rows before it
    commits."""

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: TableQuery, connection):
        name = f"{table_slice.schema}.{table_slice.table}"
        written = _partition_where_clause(table_slice.partition_dimensions) if table_slice.partition_dimensions else None
        result = write_table_query(connection, name, obj, written)
        return {**written_metadata(context, name, result.rows), **table_query_metadata(obj, result)}

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> TableQuery:
        raise TypeError(f"{table_slice.table} stays in the warehouse: read it with SQL or load it as a DataFrame")

    @property
    def supported_types(self):
        return [TableQuery]


class WarehouseIOManager(DuckDBPandasIOManager):
    """The DuckDB IO manager for every table asset: atomic partition swaps, empty-safe writes."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_WarehousePandasTypeHandler(), _TableQueryTypeHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_TransactionalDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=pd.DataFrame,
            io_manager_name="WarehouseIOManager",
        )


class WarehouseResource(dg.ConfigurableResource):
    """SQL on the warehouse: a DuckDB connection, or with ``engine`` spark a ``SparkWarehouse``
    that takes the same SQL (see ``core/spark``)."""

    engine: str = "duckdb"
    database: str = ""
    connection_config: dict[str, str] = {}
    spark_root: str = ""
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"

    @contextmanager
    def get_connection(self):
        if self.engine == "spark":
            from churn_assets.core.spark.session import spark_session
            from churn_assets.core.spark.warehouse import SparkWarehouse

            session = spark_session(self.spark_master, self.spark_driver_memory)
            with SparkWarehouse(session, Path(self.spark_root)) as warehouse:
                yield warehouse
        else:
            # DuckDBResource retries while another process holds the file, but closes the
            # connection only after a clean exit; a failed step must not leave it open.
            with DuckDBResource(database=self.database, connection_config=self.connection_config).get_connection() as connection:
                try:
                    yield connection
                finally:
                    connection.close()


def build_resources(settings: Settings) -> dict[str, object]:
    """Resources for Definitions and for tests, all pointing at ``settings.churn_home``."""
    settings.churn_home.mkdir(parents=True, exist_ok=True)
    if settings.engine == "spark":
        from churn_assets.lib.spark_io import SparkWarehouseIOManager

        spark = {"spark_root": str(settings.spark_warehouse_path), "spark_master": settings.spark_master,
                 "spark_driver_memory": settings.spark_driver_memory}
        return {
            "io_manager": SparkWarehouseIOManager(**spark),
            "warehouse": WarehouseResource(engine="spark", **spark),
        }
    database = str(settings.warehouse_path)
    return {
        "io_manager": WarehouseIOManager(database=database, connection_config=settings.duckdb_config),
        "warehouse": WarehouseResource(database=database, connection_config=settings.duckdb_config),
    }
