"""Kept for tools that still look for setup.py; the project is configured in pyproject.toml."""

from setuptools import setup

setup()
