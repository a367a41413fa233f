"""Ophora: narrated ophthalmic-surgery videos -> privacy-filtered clip-instruction shards -> CogVideoX fine-tuning."""

__version__ = "0.1.0"
