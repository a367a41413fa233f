"""Ophora's tests: one folder per part of the package (curation/, training/, inference/, inspection/, cli/, scale/)
plus hostile/ for hostile inputs. Every folder is a package, so test modules are named by their path
(tests.curation.test_phi) and helpers import as ``tests.fixtures.<module>``. Pytest fixtures live in conftest.py
files: tests/conftest.py for the ones several folders use, a folder's own conftest.py for the rest."""
