"""Ophora's tests. Every test folder is a package, so test modules are named by their path and helpers import as
``tests.fixtures.<module>``; pytest fixtures live in conftest.py files."""
