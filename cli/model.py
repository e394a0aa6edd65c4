"""Model commands: `train` (autoencoder, dynamics model, outcome heads; resumable, torchrun-ready), and `export` (a
self-contained inference checkpoint)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cli.options import add_command, add_prior_sampling, add_world_model, apply_prior_sampling


def _train(a: argparse.Namespace) -> int:
    from worldsim.train import train

    result = train(a.data, a.out, a.preset, resume=a.resume, progress=not a.quiet, init=a.init,
                   time_limit_s=a.time_limit * 60 if a.time_limit else None, dit_steps=a.steps,
                   ae_steps=a.ae_steps, decoder_steps=a.decoder_steps, dit_batch=a.batch, num_threads=a.threads,
                   compile=a.compile or None, bf16=False if a.no_bf16 else None, checkpoint_every=a.checkpoint_every,
                   sample_every=a.sample_every, time_budget_s=a.time_budget * 60 if a.time_budget else None)
    print(json.dumps(result))
    code = 0 if result.get("replicas_in_sync", True) else 1
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun worker leaves here, its results written: at interpreter teardown, after every Python frame
        # has returned, a gloo-backed worker aborts now and then ("terminate called without an active exception",
        # SIGABRT) and torchrun then fails the whole job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _export(a: argparse.Namespace) -> int:
    import worldsim
    from worldsim.checkpoint import resolve, save_derived
    from worldsim.dataset import Dataset
    from worldsim.openings import cut_openings, load_openings

    src = resolve(a.checkpoint)
    model = worldsim.load(src)
    if a.sampling_steps:  # the default the exported model samples with (env/play/eval can still override it)
        model.cfg.sampler.steps = a.sampling_steps
    if a.key_guidance is not None:
        model.set_key_guidance(a.key_guidance)
    apply_prior_sampling(model, a)
    if a.prior_fill:  # how its rollouts fill the strip a camera move reveals (see ModelConfig.prior_fill)
        atlas = None
        if a.prior_fill == "view":
            from worldsim import view_atlas

            if not a.data:
                raise ValueError("export --prior-fill view needs --data: the view atlas is measured on its frames")
            atlas = view_atlas.from_dataset(model, Dataset(a.data))
        model.set_prior_fill(a.prior_fill, atlas)
    bank = cut_openings(Dataset(a.data), model.codec, model.start_frames, n=a.openings, seed=a.seed) if a.data else load_openings(src)
    out = save_derived(src, a.out, model, half=a.fp16, openings=bank)
    size = sum(f.stat().st_size for f in Path(out).iterdir()) / 1e6
    print(f"exported {src} -> {out} ({size:.1f} MB, {0 if bank is None else len(bank['frames'])} openings)")
    return 0


def register(sub) -> None:
    from worldsim.config import PRESETS

    t = add_command(sub, "train", "train a world model on a dataset: autoencoder, dynamics model, outcome heads "
                    "(resumable, torchrun-ready)", _train)
    t.add_argument("--data", required=True, help="dataset folder (from `worldsim collect`)")
    t.add_argument("--preset", default="small2", choices=list(PRESETS),
                   help="small2: the shipped space-time model; small: the first model; tiny, tiny2: tests")
    t.add_argument("--out", required=True, help="run folder: checkpoints, TensorBoard logs, dream videos")
    t.add_argument("--steps", type=int, help="dynamics-model steps (default: the preset's, or fitted to --time-budget)")
    t.add_argument("--ae-steps", type=int, help="autoencoder steps (default: the preset's)")
    t.add_argument("--decoder-steps", type=int, help="decoder fine-tuning steps on the frozen latents, run last "
                   "(default: the preset's); with --resume on a finished run, trains just the decoder")
    t.add_argument("--batch", type=int, help="dynamics batch size per process (default: the preset's)")
    t.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: the preset's)")
    t.add_argument("--sample-every", type=int, help="dynamics steps between dream videos (default: the preset's)")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    t.add_argument("--init", help="a fresh run starts from this checkpoint or run: its autoencoder (and latent "
                   "cache), heads and dynamics weights; trains the dynamics model from there")
    t.add_argument("--time-limit", type=float, help="minutes: checkpoint and stop after this long (resume later)")
    t.add_argument("--time-budget", type=float, help="minutes the whole run may take: the dynamics schedule is fitted "
                   "to end then, whatever the machine's speed (resumed invocations count)")
    t.add_argument("--compile", action="store_true", help="torch.compile the dynamics model")
    t.add_argument("--no-bf16", action="store_true", help="train in fp32 even where bf16 autocast works")
    t.add_argument("--quiet", action="store_true")

    ex = add_command(sub, "export", "a self-contained inference checkpoint (EMA weights, config, opening clips)", _export)
    add_world_model(ex, required=True, checkpoint_help="checkpoint or run folder to export (its EMA weights)")
    ex.add_argument("--out", required=True, help="folder to write")
    ex.add_argument("--data", help="dataset to cut the bank of real opening clips from (default: the source's bank)")
    ex.add_argument("--openings", type=int, default=32, help="opening clips in the bank")
    ex.add_argument("--seed", type=int, default=0, help="which clips are cut")
    ex.add_argument("--fp16", action="store_true", help="store weights in float16 (half the size)")
    add_prior_sampling(ex)
    ex.add_argument("--prior-fill", choices=["mean", "edge", "view"], help="what the motion prior puts in the strip a "
                    "camera move reveals (default: as the model was trained; view: the view atlas measured on --data)")
