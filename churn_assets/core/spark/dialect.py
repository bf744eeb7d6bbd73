"""The project's SQL, written once in DuckDB's dialect, as Spark SQL: SQLGlot transpiles it, and a
few rewrites cover what SQLGlot leaves to the engine or maps to a different meaning.

Each rewrite keeps the DuckDB meaning, so both engines return the same rows:

- ``TIMESTAMP`` is Spark's session-zone ``TIMESTAMP`` (the session runs in UTC), not
  ``TIMESTAMP_NTZ``, so a parsed offset converts to UTC as it does in DuckDB;
- ``try_strptime(text, [formats])`` is the first format that parses, through ``try_to_timestamp``
  with the formats in Java's pattern letters;
- ``timezone(zone, naive) at time zone 'UTC'`` (a wall-clock time in ``zone``, as UTC) is
  ``to_utc_timestamp``, and ``timezone(zone, timezone('UTC', instant))`` (the wall-clock time in
  ``zone`` of a UTC instant) is ``from_utc_timestamp``;
- ``isfinite``, ``epoch_us`` and ``hugeint`` have Spark spellings, and a group in a
  ``regexp_replace`` replacement is ``$1`` rather than ``\\1``;
- ``with ... as materialized`` drops the hint, which Spark does not take.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark

# DuckDB's TIMESTAMP has no zone; in a UTC session Spark's TIMESTAMP reads the same.
_TIMESTAMPS = (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.TIMESTAMPTZ)


class ChurnSpark(Spark):
    class Generator(Spark.Generator):
        TYPE_MAPPING = {**Spark.Generator.TYPE_MAPPING, exp.DataType.Type.INT128: "DECIMAL(38, 0)"}

        def datatype_sql(self, expression: exp.DataType) -> str:
            if expression.is_type(*_TIMESTAMPS):
                return "TIMESTAMP"
            return super().datatype_sql(expression)


# strptime directives as Java pattern letters: one letter (one or two digits, as DuckDB reads
# them) unless another number follows with no separator, where only a fixed width can split them.
_NUMBERS = {"%m": "M", "%d": "d", "%H": "H", "%I": "h", "%M": "m", "%S": "s"}
_OTHERS = {"%Y": "yyyy", "%y": "yy", "%f": "SSSSSS", "%p": "a", "%b": "MMM", "%B": "MMMM", "%j": "D", "%z": "XXX", "%%": "%"}


def java_pattern(strftime: str) -> str:
    """A strptime format in Java's pattern letters, literal letters quoted."""
    out, i = [], 0
    while i < len(strftime):
        token = strftime[i:i + 2]
        if token in _NUMBERS:
            adjacent = strftime[i + 2:i + 4] in (*_NUMBERS, "%Y", "%y", "%f")
            out.append(_NUMBERS[token] * (2 if adjacent or strftime[i - 2:i] in (*_NUMBERS, "%Y", "%y") else 1))
            i += 2
        elif token in _OTHERS:
            out.append(_OTHERS[token])
            i += 2
        elif strftime[i].isalpha():
            out.append("'" + strftime[i] + "'")
            i += 1
        else:
            out.append("''" if strftime[i] == "'" else strftime[i])
            i += 1
    return "".join(out)


def _anonymous_name(node: exp.Expression) -> str | None:
    return node.name.lower() if isinstance(node, exp.Anonymous) else None


def _rewrite_functions(node: exp.Expression) -> exp.Expression:
    name = _anonymous_name(node)
    if name == "try_strptime":
        text, formats = node.expressions
        listed = formats.expressions if isinstance(formats, exp.Array) else [formats]
        return exp.func("coalesce", *(
            exp.Anonymous(this="try_to_timestamp", expressions=[text.copy(), exp.Literal.string(java_pattern(f.this))])
            for f in listed
        ))
    if name == "isfinite":
        value = node.expressions[0]
        return exp.Paren(this=exp.and_(
            exp.not_(exp.Anonymous(this="isnan", expressions=[value.copy()])),
            exp.NEQ(this=exp.Abs(this=value.copy()), expression=sqlglot.parse_one("double('Infinity')", read="spark")),
        ))
    if name == "epoch_us":
        return exp.Anonymous(this="unix_micros", expressions=[node.expressions[0].copy()])
    return node


def _rewrite(node: exp.Expression) -> exp.Expression:
    if _anonymous_name(node) == "timezone" and _anonymous_name(node.expressions[1]) == "timezone":
        zone, (utc, instant) = node.expressions[0], node.expressions[1].expressions
        if utc.name.upper() == "UTC":  # the wall-clock time in ``zone`` of a UTC instant
            return exp.Anonymous(this="from_utc_timestamp", expressions=[instant.copy(), zone.copy()])
    if isinstance(node, exp.AtTimeZone) and _anonymous_name(node.this) == "timezone":
        zone, naive = node.this.expressions
        return exp.Anonymous(this="to_utc_timestamp", expressions=[naive.copy(), zone.copy()])
    if isinstance(node, exp.AtTimeZone) and node.args.get("zone") is not None and node.args["zone"].name.upper() == "UTC":
        return node.this  # the session runs in UTC: an instant already reads as UTC
    if isinstance(node, exp.RegexpReplace) and isinstance(node.args.get("replacement"), exp.Literal):
        # DuckDB writes a group in the replacement as \1, Java as $1
        node.set("replacement", exp.Literal.string(re.sub(r"\\(\d)", r"$\1", node.args["replacement"].this)))
    if isinstance(node, exp.CTE) and node.args.get("materialized"):
        node.set("materialized", None)
    return node


def to_spark(sql: str, table_name: Callable[[str, str], str | None] | None = None) -> list[str]:
    """Spark SQL statements for the DuckDB statements in ``sql``. ``table_name(schema, name)``
    gives the name Spark reads a warehouse table by (None: leave the name as it is)."""
    return list(_to_spark(sql, table_name))


@functools.lru_cache(maxsize=512)
def _to_spark(sql: str, table_name) -> tuple[str, ...]:
    out = []
    for statement in sqlglot.parse(sql, read="duckdb"):
        if statement is None:
            continue
        # A rewritten node's arguments are copied as they are, so rewrite until nothing changes.
        for _ in range(8):
            rewritten = statement.transform(_rewrite_functions).transform(_rewrite)
            if rewritten == statement:
                break
            statement = rewritten
        if table_name is not None:
            statement = statement.transform(functools.partial(_rename_table, table_name))
        out.append(statement.sql(dialect=ChurnSpark))
    return tuple(out)


def _rename_table(table_name, node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Table) and node.args.get("db") is not None and not node.args.get("catalog"):
        name = table_name(node.db, node.name)
        if name is not None:
            renamed = exp.to_table(name)
            renamed.set("alias", node.args["alias"].copy() if node.alias else exp.TableAlias(this=exp.to_identifier(node.name)))
            return renamed
    return node
