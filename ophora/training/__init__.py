"""The Ray Train job: shard reader -> (precomputed or on-the-fly) latents -> CogVideoX loop -> diffusers export.

Public API (import the submodules; nothing heavy loads at package import):

- ``trainer.run_training(config, shards_root, out_dir, stage, init_from=None) -> dict``: one stage (tpt|p2ft).
- ``trainer.run_progressive(tpt_config, p2ft_config, shards_root, out_dir) -> {"tpt": ..., "p2ft": ...}``.
- ``models.make_tiny_model(out_dir, seed=0)``: a random miniature CogVideoX in diffusers layout.
- ``config.load_config("tpt" | "p2ft" | "tiny" | path, overrides)``: the one pydantic TrainConfig.
- ``precompute.precompute_latents(config, shards_root, out_root)``: VAE latents + T5 embeddings as shards.
"""
