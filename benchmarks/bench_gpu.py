"""A GPU check ready to run: CogVideoX-2b's real shapes, random weights, nothing downloaded, under 8 minutes.

Builds the CogVideoX-2b transformer, its VAE and a T5-v1.1-XXL encoder from their published configs
(ophora/training/model_configs.py) with random weights, at the paper's 49 frames of 480x720, and measures:

  full fine-tune step  bf16 autocast, gradient checkpointing, fused AdamW, fp32 master weights, batch 1 of
                       precomputed latents: seconds/step, peak GPU memory, MFU from counted FLOPs
                       (3 x the forward's FLOPs as torch's FlopCounterMode counts them / step time / peak)
  LoRA r64             the same step training only rank-64 adapters on the attention projections: peak memory
  sampling             50 DPM steps, guidance 6 with dynamic CFG, VAE decode: seconds/video, plain and after
                       torch.compile of the transformer (the compiled time is the second video's)
  latent precompute    VAE encode + T5 encode of one clip, as `ophora train precompute` does: clips/s

and prints them next to the anchors: finetrainers' CogVideoX-2b full fine-tune 33.9 GB and LoRA 13.0 GB peak
memory; THUDM's CogVideoX-2b sampling ~45 s per video on an H100 (50 steps).

    python benchmarks/bench_gpu.py --out bench-gpu.json                # on a GPU machine, ~5-7 min
    python benchmarks/bench_gpu.py --reduced --no-compile              # the same code at toy size, CPU, ~1 min
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import contextmanager
from typing import Any

ANCHORS = {"full_ft_peak_gb": 33.9, "lora_peak_gb": 13.0, "sample_s_per_video_h100": 45.0}
# dense bf16 tensor-core peaks (no sparsity), TFLOP/s
PEAK_TFLOPS = {
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 80GB HBM3": 989.4,
    "H100 PCIe": 756.0,
    "H100": 756.0,
    "A100": 312.0,
    "L40S": 362.1,
    "A10G": 70.0,
    "L4": 121.0,
}
REDUCED = {
    "transformer": {
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "in_channels": 4,
        "out_channels": 4,
        "time_embed_dim": 32,
        "text_embed_dim": 32,
        "num_layers": 2,
        "sample_width": 12,
        "sample_height": 8,
        "sample_frames": 9,
        "patch_size": 2,
        "max_text_seq_length": 226,
    },
    "vae": {
        "block_out_channels": [8, 8, 16, 16],
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "temporal_compression_ratio": 4,
        "sample_height": 64,
        "sample_width": 96,
    },
    "text_encoder": {
        "vocab_size": 256,
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
        "feed_forward_proj": "gated-gelu",
        "is_encoder_decoder": False,
    },
    "geometry": (9, 64, 96),
}


def build(reduced: bool, device, dtype):
    """(transformer fp32, vae, text encoder in ``dtype``, scheduler config, (frames, height, width))."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    from ophora.clip_geometry import COGVIDEOX
    from ophora.training.model_configs import COGVIDEOX_2B

    configs = REDUCED if reduced else COGVIDEOX_2B
    geometry = REDUCED["geometry"] if reduced else (COGVIDEOX.num_frames, COGVIDEOX.height, COGVIDEOX.width)
    torch.manual_seed(0)
    with torch.device(device):
        transformer = CogVideoXTransformer3DModel.from_config(configs["transformer"])
        vae = AutoencoderKLCogVideoX.from_config(configs["vae"]).to(dtype).requires_grad_(False).eval()
        text = T5EncoderModel(T5Config(**configs["text_encoder"])).to(dtype).requires_grad_(False).eval()
    vae.enable_slicing()
    return transformer, vae, text, COGVIDEOX_2B["scheduler"], geometry


@contextmanager
def phase(device, results: dict[str, Any], name: str):
    """Times a phase and records its peak accelerator memory (GB; None on CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize()
        results[f"{name}_peak_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    else:
        results[f"{name}_peak_gb"] = None
    results[f"{name}_wall_s"] = round(time.perf_counter() - t0, 2)


def train_steps(transformer, scheduler, latents, embeds, steps: int, device, lora_rank: int = 0) -> list[float]:
    """Seconds of each optimizer step of the loop's own pieces (objective, precision, fused AdamW)."""
    import torch

    from ophora.training.config import load_config
    from ophora.training.loop import add_lora, make_optimizer
    from ophora.training.objective import diffusion_loss
    from ophora.training.precision import Precision

    cfg = load_config("tpt", {"lora.rank": lora_rank})
    if lora_rank:
        add_lora(transformer, cfg)
    transformer.enable_gradient_checkpointing()
    transformer.train()
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg, device)
    precision = Precision("bf16", device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = diffusion_loss(transformer, transformer.config, scheduler, latents, embeds, precision.dtype)
        precision.backward(loss)
        precision.step(optimizer, params, cfg.optim.max_grad_norm)
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    del optimizer
    return times


def forward_flops(transformer, scheduler, latents, embeds) -> int:
    """FLOPs of one forward pass as torch's FlopCounterMode counts them (matmuls, convolutions, attention)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ophora.training.objective import rotary_embeddings

    t = torch.full((latents.shape[0],), 500, device=latents.device)
    rotary = rotary_embeddings(transformer.config, latents.shape[1], latents.shape[3], latents.shape[4], latents.device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), torch.autocast(latents.device.type, dtype=torch.bfloat16), counter:
        transformer(
            hidden_states=latents, encoder_hidden_states=embeds, timestep=t, image_rotary_emb=rotary, return_dict=False
        )
    return int(counter.get_total_flops())


def sample_seconds(
    transformer, vae, text, scheduler_cfg, geometry, steps: int, compile_: bool, device, dtype, videos: int
) -> list[float]:
    """Seconds per video of the paper's sampling settings, from the embeddings of a 226-token prompt."""
    import torch
    from diffusers import CogVideoXDPMScheduler, CogVideoXPipeline

    pipe = CogVideoXPipeline(
        tokenizer=None,
        text_encoder=text,
        vae=vae,
        transformer=transformer.to(dtype).eval(),
        scheduler=CogVideoXDPMScheduler.from_config(scheduler_cfg, timestep_spacing="trailing"),
    )
    pipe.set_progress_bar_config(disable=True)
    if compile_:
        pipe.transformer = torch.compile(pipe.transformer)
    ids = torch.randint(0, text.config.vocab_size, (2, 226), device=device)
    with torch.no_grad():
        embeds = text(ids)[0]
    frames, height, width = geometry
    times = []
    for i in range(videos):
        t0 = time.perf_counter()
        with torch.no_grad():
            pipe(
                prompt_embeds=embeds[:1],
                negative_prompt_embeds=embeds[1:],
                num_inference_steps=steps,
                num_frames=frames,
                height=height,
                width=width,
                guidance_scale=6.0,
                use_dynamic_cfg=True,
                output_type="np",
                generator=torch.Generator().manual_seed(i),
            )
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def precompute_clips_per_s(vae, text, geometry, clips: int, device, dtype) -> float:
    """VAE latents and T5 embeddings of ``clips`` random clips, one at a time, as the precompute job encodes."""
    import torch

    from ophora.training.objective import encode_video

    frames, height, width = geometry
    t0 = time.perf_counter()
    for _ in range(clips):
        pixels = torch.rand(1, 3, frames, height, width, device=device, dtype=dtype) * 2 - 1
        encode_video(vae, pixels)
        with torch.no_grad():
            text(torch.randint(0, text.config.vocab_size, (1, 226), device=device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return clips / (time.perf_counter() - t0)


def peak_tflops(device, override: float | None) -> tuple[float | None, str]:
    import torch

    if override:
        return override, "given"
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value, name
    return None, name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reduced", action="store_true", help="toy sizes (the test runs this on CPU)")
    ap.add_argument("--steps", type=int, default=5, help="timed full fine-tune steps (after 2 warm-up steps)")
    ap.add_argument("--lora-steps", type=int, default=3)
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile sampling run")
    ap.add_argument("--precompute-clips", type=int, default=4)
    ap.add_argument("--peak-tflops", type=float, default=None, help="the accelerator's dense bf16 peak, for MFU")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args()

    import torch
    from diffusers import CogVideoXDDIMScheduler

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16
    started = time.perf_counter()
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "reduced": args.reduced,
        "torch": torch.__version__,
    }
    transformer, vae, text, scheduler_cfg, geometry = build(args.reduced, device, dtype)
    results["geometry"] = "x".join(map(str, geometry))
    results["transformer_params"] = sum(p.numel() for p in transformer.parameters())
    results["text_encoder_params"] = sum(p.numel() for p in text.parameters())
    scheduler = CogVideoXDDIMScheduler.from_config(scheduler_cfg)

    from ophora.training.objective import encode_video

    with torch.no_grad():  # one clip's latents and prompt embeddings, as precomputed shards hold them
        pixels = torch.rand(1, 3, *geometry, device=device, dtype=dtype) * 2 - 1
        latents = encode_video(vae, pixels).float()
        embeds = text(torch.randint(0, text.config.vocab_size, (1, 226), device=device))[0].float()
    results["latent_shape"] = list(latents.shape)
    offload = device.type == "cuda"  # each measured step holds only the model it trains, as with precomputed data
    if offload:
        vae.to("cpu"), text.to("cpu")

    flops = forward_flops(transformer, scheduler, latents, embeds)
    with phase(device, results, "full_ft"):
        step_times = train_steps(transformer, scheduler, latents, embeds, 2 + args.steps, device)[2:]
    results["full_ft_s_per_step"] = round(statistics.median(step_times), 4)
    results["model_flops_per_step"] = 3 * flops
    peak, peak_from = peak_tflops(device, args.peak_tflops)
    results["peak_tflops"], results["peak_tflops_from"] = peak, peak_from
    results["mfu"] = float(f"{3 * flops / results['full_ft_s_per_step'] / (peak * 1e12):.4g}") if peak else None

    from diffusers import CogVideoXTransformer3DModel

    if offload:
        transformer.to("cpu")
    with torch.device(device):
        lora_model = CogVideoXTransformer3DModel.from_config(transformer.config)
    with phase(device, results, "lora_r64"):
        lora_times = train_steps(lora_model, scheduler, latents, embeds, args.lora_steps, device, lora_rank=64)
    results["lora_r64_s_per_step"] = round(statistics.median(lora_times), 4)
    del lora_model
    for module in (transformer, vae, text):
        module.to(device)
    with phase(device, results, "sample"):
        plain = sample_seconds(
            transformer, vae, text, scheduler_cfg, geometry, args.sample_steps, False, device, dtype, videos=1
        )
    results["sample_s_per_video"], results["sample_steps"] = round(plain[0], 2), args.sample_steps
    if not args.no_compile:
        compiled = sample_seconds(
            transformer, vae, text, scheduler_cfg, geometry, args.sample_steps, True, device, dtype, videos=2
        )
        results["sample_compiled_first_s"] = round(compiled[0], 2)
        results["sample_compiled_s_per_video"] = round(compiled[1], 2)
    results["precompute_clips_per_s"] = round(
        precompute_clips_per_s(vae, text, geometry, args.precompute_clips, device, dtype), 3
    )
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(table(results))
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)


def table(r: dict[str, Any]) -> str:
    """The measurements next to the published anchors."""

    def gb(v):
        return "n/a (CPU)" if v is None else f"{v:.1f} GB"

    rows = [
        ("full fine-tune peak memory", gb(r.get("full_ft_peak_gb")), f"{ANCHORS['full_ft_peak_gb']} GB (finetrainers)"),
        ("full fine-tune s/step", f"{r['full_ft_s_per_step']:.3f}", ""),
        ("MFU (3 x counted forward FLOPs)", "n/a" if r.get("mfu") is None else f"{r['mfu']:.1%}", ""),
        ("LoRA r64 peak memory", gb(r.get("lora_r64_peak_gb")), f"{ANCHORS['lora_peak_gb']} GB (finetrainers)"),
        (
            f"sampling s/video ({r['sample_steps']} steps)",
            f"{r['sample_s_per_video']:.1f}",
            f"~{ANCHORS['sample_s_per_video_h100']:.0f} s on H100 (THUDM)",
        ),
        ("sampling s/video, torch.compile", str(r.get("sample_compiled_s_per_video", "skipped")), ""),
        ("latent precompute clips/s", f"{r['precompute_clips_per_s']}", ""),
    ]
    width = max(len(a) for a, _, _ in rows)
    head = f"CogVideoX-2b shapes ({'REDUCED, ' if r['reduced'] else ''}{r['geometry']}) on {r['device']}"
    return "\n".join([head] + [f"  {a:<{width}}  {b:>14}  {c}" for a, b, c in rows])


if __name__ == "__main__":
    main()
