"""Ingestion layer: bronze assets per landed source, their checks, the landing sensor and which files are new."""
