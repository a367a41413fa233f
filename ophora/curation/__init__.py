"""The curate job: narrated surgery videos -> clip windows -> WebDataset shards (``pipeline``), its stages
(``stages/``, listed in ``stages.STAGES``), its configuration (``config``) and bookkeeping (``resume``,
``out_lock``)."""

DEFAULT_PROFILE = "default"  # the CLI's and the library's: strong models by hub id; "offline" ships with packages
