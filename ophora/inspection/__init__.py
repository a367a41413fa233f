"""Shard inspection: list, summarise, show, search, validate, browse (static gallery) and export Ophora shards.

Everything here reads shards only through :mod:`ophora.dataset.shards` and the ledger only through
:mod:`ophora.dataset.ledger`; shards are treated as untrusted input (streamed, never unpickled, never extracted
outside a target directory). The ``ophora shards`` command (``ophora/cli/shards.py``) only parses and calls these.
"""
