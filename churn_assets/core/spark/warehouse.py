"""A Spark warehouse that core code uses as it uses a DuckDB connection: ``execute`` takes the
project's DuckDB SQL, ``dialect.to_spark`` turns it into Spark SQL, and each table
``schema.name`` is a folder of Parquet files under the warehouse's root (a partitioned table has a
subfolder per partition key). A view is its DuckDB select, kept as text and inlined where read.

Only the statements the pipeline uses are understood: ``select``, ``create [or replace] [temp]
table ... as select``, ``create table`` from column types, ``insert into ... [by name] select``,
``create [or replace] view``, ``drop table|view`` and ``create schema``. Parquet has no
transactions, so ``begin``, ``commit`` and ``rollback`` do nothing: a table's new files are written
aside and moved in once complete, so readers see the old rows or the new ones per folder.
"""

from __future__ import annotations

import shutil
import urllib.parse
import uuid
from pathlib import Path

import pyarrow as pa
import sqlglot
from sqlglot import exp

from churn_assets.core.spark.dialect import ChurnSpark, to_spark
from churn_assets.core.spark.session import SparkResult


class SparkWarehouse:
    """Tables as Parquet folders ``root/schema/name``; temp tables as session views over Parquet
    written under ``root/_temp``; views as their select's text under ``root/_views``."""

    def __init__(self, spark, root: Path):
        self.spark, self.root = spark, Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._temp: dict[str, Path] = {}  # temp table -> its Parquet folder

    # -- the DuckDB connection's surface that core code uses ------------------------------------

    def execute(self, sql: str, parameters: list | None = None) -> SparkResult:
        if parameters:
            sql = _bind(sql, parameters)
        result = SparkResult()
        for statement in sqlglot.parse(sql, read="duckdb"):
            if statement is not None:
                result = self._run(statement)
        return result

    def sql(self, sql: str) -> SparkResult:
        return self.execute(sql)

    def register(self, name: str, data) -> None:
        """``data`` (pandas or Arrow) as a session view; through Arrow, so even an empty frame keeps
        its column types, and naive timestamps read as UTC."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        table = table.cast(pa.schema([
            pa.field(f.name, pa.timestamp("us", tz="UTC")) if pa.types.is_timestamp(f.type) else f for f in table.schema
        ]))
        self.spark.createDataFrame(table).createOrReplaceTempView(name)

    def unregister(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)

    def begin(self) -> None:
        """Nothing: Parquet folders have no transactions (see the module's note)."""

    commit = rollback = begin

    def close(self) -> None:
        for name in list(self._temp):
            self._drop_temp(name)

    def __enter__(self) -> SparkWarehouse:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- tables --------------------------------------------------------------------------------

    def location(self, schema: str, name: str) -> Path:
        return self.root / schema / name

    def exists(self, schema: str, name: str) -> bool:
        return self.location(schema, name).is_dir() or self._view_path(schema, name).is_file()

    def table_names(self) -> list[tuple[str, str]]:
        return sorted(
            (folder.parent.name, folder.name) for folder in self.root.glob("*/*")
            if folder.is_dir() and not folder.name.startswith(".") and folder.parent.name not in ("_temp", "_views")
        )

    def read(self, schema: str, name: str, partitions: list[str] | None = None):
        """A table's rows (of some partition keys only) as a Spark DataFrame."""
        folder = self.location(schema, name)
        paths = [str(folder / partition_folder(k)) for k in partitions] if partitions else [str(folder)]
        return self.spark.read.option("recursiveFileLookup", "true").parquet(*paths)

    def frame(self, sql: str):
        """The Spark DataFrame of one DuckDB select."""
        sql = self._inline_views(sql)
        for table in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table):
            if table.db and table.db != "information_schema":
                self._register(table.db, table.name)
        (spark_sql,) = to_spark(sql, view_name)
        return self.spark.sql(spark_sql)

    def replace_partitions(self, schema: str, name: str, frame, column: str | None, keys: list[str]) -> None:
        """Make ``frame``'s rows the table's rows for ``keys`` of partition ``column`` (the whole
        table when ``column`` is None): each key's folder is written aside, then swapped in."""
        from pyspark.sql import functions as F

        folder = self.location(schema, name)
        if column is None:
            self._replace_folder(folder, frame)
            return
        folder.mkdir(parents=True, exist_ok=True)
        staged = folder / f".staged-{uuid.uuid4().hex}"
        cached = frame.persist()
        text = F.date_format(F.col(column), "yyyy-MM-dd") if dict(frame.dtypes)[column].startswith("timestamp") else F.col(column)
        for key in keys:
            cached.where(text == key).write.parquet(str(staged / partition_folder(key)))
        for key in keys:
            target = folder / partition_folder(key)
            if target.exists():
                shutil.rmtree(target)
            (staged / partition_folder(key)).rename(target)
        shutil.rmtree(staged)
        cached.unpersist()

    # -- statements ----------------------------------------------------------------------------

    def _run(self, statement: exp.Expression) -> SparkResult:
        if isinstance(statement, exp.Transaction | exp.Commit | exp.Rollback):
            return SparkResult()
        if isinstance(statement, exp.Create):
            return self._create(statement)
        if isinstance(statement, exp.Drop):
            return self._drop(statement)
        if isinstance(statement, exp.Insert):
            table = statement.this if isinstance(statement.this, exp.Table) else statement.this.this
            return SparkResult(written=self._append(table, statement.expression.sql(dialect="duckdb")))
        if any(t.db == "information_schema" for t in statement.find_all(exp.Table)):
            return SparkResult(self._information_schema(statement))
        return SparkResult(self.frame(statement.sql(dialect="duckdb")))

    def _create(self, statement: exp.Create) -> SparkResult:
        kind = statement.kind.upper()
        if kind == "SCHEMA":
            (self.root / statement.this.name).mkdir(parents=True, exist_ok=True)
            return SparkResult()
        target = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
        if kind == "VIEW":
            path = self._view_path(target.db, target.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(statement.expression.sql(dialect="duckdb"))
            return SparkResult()
        properties = statement.args.get("properties") or exp.Properties()
        temporary = any(isinstance(p, exp.TemporaryProperty) for p in properties.expressions) or not target.db
        exists = target.name in self._temp if temporary else self.exists(target.db, target.name)
        if statement.args.get("exists") and exists:
            return SparkResult()
        if statement.expression is None:  # column names and types only: an empty table of that shape
            columns = ", ".join(
                f"cast(null as {column.args['kind'].sql(dialect='duckdb')}) as {column.name}"
                for column in statement.this.expressions
            )
            select = f"select {columns} where false"
        else:
            select = statement.expression.sql(dialect="duckdb")
        if temporary:
            return SparkResult(written=self._write_temp(target.name, select))
        return SparkResult(written=self._write(target, select))

    def _drop(self, statement: exp.Drop) -> SparkResult:
        for target in statement.args.get("tables") or [statement.this]:
            if statement.kind.upper() == "VIEW":
                self._view_path(target.db, target.name).unlink(missing_ok=True)
            elif target.db:
                shutil.rmtree(self.location(target.db, target.name), ignore_errors=True)
            else:
                self._drop_temp(target.name)
        return SparkResult()

    def _observed_write(self, frame, folder: Path) -> int:
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        observed = Observation(f"rows_{uuid.uuid4().hex}")
        frame.observe(observed, F.count(F.lit(1)).alias("rows")).write.parquet(str(folder))
        return int(observed.get["rows"])

    def _write(self, table: exp.Table, select: str) -> int:
        """Replace ``table`` with ``select``'s rows: written aside, then moved in."""
        return self._replace_folder(self.location(table.db, table.name), self.frame(select))

    def _replace_folder(self, folder: Path, frame) -> int:
        """``frame``'s rows as the whole of ``folder``: written beside it, the old folder moved
        aside, the new one renamed in, the old one removed. Returns the rows written."""
        staged = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"
        rows = self._observed_write(frame, staged / "all")
        aside = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"
        if folder.exists():
            folder.rename(aside)
        staged.rename(folder)
        shutil.rmtree(aside, ignore_errors=True)
        return rows

    def _append(self, table: exp.Table, select: str) -> int:
        """Add ``select``'s rows to ``table`` by column name, cast to its columns' types, as a new
        folder of files (created whole, so a reader never sees part of it)."""
        from pyspark.sql import functions as F

        frame = self.frame(select)
        if self.exists(table.db, table.name):
            existing = self.read(table.db, table.name).schema
            frame = frame.select(*[F.col(f.name).cast(f.dataType) for f in existing])
        folder = self.location(table.db, table.name)
        staged = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"
        rows = self._observed_write(frame, staged)
        folder.mkdir(parents=True, exist_ok=True)
        staged.rename(folder / f"append-{uuid.uuid4().hex}")
        return rows

    def _write_temp(self, name: str, select: str) -> int:
        folder = self.root / "_temp" / f"{name}.{uuid.uuid4().hex}"
        rows = self._observed_write(self.frame(select), folder)
        self._drop_temp(name)
        self.spark.read.parquet(str(folder)).createOrReplaceTempView(name)
        self._temp[name] = folder
        return rows

    def _drop_temp(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)
        folder = self._temp.pop(name, None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    # -- names ---------------------------------------------------------------------------------

    def _view_path(self, schema: str, name: str) -> Path:
        return self.root / "_views" / f"{schema}.{name}.sql"

    def _inline_views(self, sql: str) -> str:
        """``sql`` with every view it reads replaced by the view's select, as a subquery."""
        tree = sqlglot.parse_one(sql, read="duckdb")

        def inline(node):
            if isinstance(node, exp.Table) and node.db and self._view_path(node.db, node.name).is_file():
                view = sqlglot.parse_one(self._inline_views(self._view_path(node.db, node.name).read_text()), read="duckdb")
                return exp.Subquery(this=view, alias=exp.TableAlias(this=exp.to_identifier(node.alias_or_name)))
            return node

        return tree.transform(inline).sql(dialect="duckdb")

    def _register(self, schema: str, name: str) -> None:
        """A session view over ``schema.name``'s Parquet files as they are now, for Spark SQL."""
        if not self.location(schema, name).is_dir():
            raise RuntimeError(f"Table {schema}.{name} does not exist in the Spark warehouse {self.root}")
        self.read(schema, name).createOrReplaceTempView(view_name(schema, name))

    def _information_schema(self, statement: exp.Expression):
        """``information_schema.tables`` as the warehouse's folders, for ``table_exists``."""
        rows = [(schema, name, "BASE TABLE") for schema, name in self.table_names()]
        self.spark.createDataFrame(
            rows or [("", "", "")], "table_schema string, table_name string, table_type string"
        ).where("table_name <> ''" if rows else "false").createOrReplaceTempView("_information_schema_tables")
        statement = statement.copy().transform(
            lambda n: exp.to_table("_information_schema_tables")
            if isinstance(n, exp.Table) and n.db == "information_schema" else n
        )
        return self.spark.sql(statement.sql(dialect=ChurnSpark))


def view_name(schema: str, name: str) -> str | None:
    """The session view Spark SQL reads a warehouse table through."""
    return None if schema == "information_schema" else f"{schema}__{name}"


def partition_folder(key: str) -> str:
    """A partition key as a folder name (file names may hold any character)."""
    return urllib.parse.quote(key, safe="-_.")


def _bind(sql: str, parameters: list) -> str:
    """DuckDB's ``?`` placeholders filled with quoted literals (Spark SQL takes no positional ones)."""
    parts = sql.split("?")
    if len(parts) != len(parameters) + 1:
        raise ValueError(f"{len(parameters)} parameters for {len(parts) - 1} placeholders")
    literal = [exp.convert(p).sql(dialect="duckdb") for p in parameters]
    return "".join(part + (literal[i] if i < len(literal) else "") for i, part in enumerate(parts))
