"""What curation writes and training, inspection and inference read: the shard contract (``shards``: keys,
members, clip metadata, the writer and the safe readers, the Parquet clip index) and the source ledger
(``ledger``). See docs/design.md §3."""
