"""The synthetic test world: a narrated cataract-surgery corpus with ground truth (``corpus.generate_corpus``),
drawn from the seed, and the scorers that read a curated OUT against that truth (``filter_eval``,
``narration_eval``) or build and score footage from real microscope clips (``footage_eval``).

Nothing in the curation, training or inference code imports from here; tests, benchmarks, ``ophora synth`` and
``ophora demo`` do."""
