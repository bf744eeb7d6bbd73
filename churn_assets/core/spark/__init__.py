"""The set-based SQL on Spark: the project's DuckDB SQL transpiled by SQLGlot (``dialect``) and a
warehouse of Parquet folders that takes it as a DuckDB connection would (``warehouse``)."""
