"""The domain core: plain functions on files, DataFrames and SQL. Nothing here imports Dagster."""
