"""Model commands: `train` (autoencoder, dynamics model, outcome heads; resumable, torchrun-ready), `continue` (the
project's model, from wherever it got to) and `export` (a self-contained inference checkpoint)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from worldsim.cli.options import add_command, add_world_model, dataset, run

_TYPES = {"int": int, "float": float, "str": str}


def add_config_options(p: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> list[str]:
    """One option per field of a config dataclass, named as the field (`dit_steps` -> `--dit-steps`), in the field's
    unit, its docstring as help; left out, a field keeps the preset's (or the resumed run's) value."""
    from worldsim.model.config import field_docs

    docs, names = field_docs(cls), []
    group = p.add_argument_group(f"{cls.__name__} fields (default: the preset's)")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        if kind == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=docs.get(f.name))
        else:
            group.add_argument(flag, type=_TYPES[kind], default=None, metavar=kind.upper(), help=docs.get(f.name))
        names.append(f.name)
    return names


def _train(a: argparse.Namespace) -> int:
    from worldsim.training.trainer import train

    overrides = {name: getattr(a, name) for name in a.config_fields}
    result = train(a.data, a.out, a.preset, resume=a.resume, progress=not a.quiet, init=a.init,
                   time_limit_s=a.time_limit_s, **overrides)
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


#: The project's model: its data, in parts collected in order (the `mix-trees` play of the real game; then episodes
#: that linger at the spawn, where users start and the first part holds ~1 % of its frames), held-out episodes of the
#: first part's play, and its run. A third part of `mix-walk` play (stands, then walks) was tried for three sittings:
#: at equal compute from the shipped model it cost 0.1-0.5 dB on the held-out clips, its own kind of play's included,
#: and moved no measure of walking (`docs/training_log.md`, seventeenth sitting), so it is not part of the data.
CAMPAIGN_DATA = ({"policy": "mix-trees", "episodes": 300, "steps": 1000, "seed": 0},
                 {"policy": "mix-spawn", "episodes": 100, "steps": 500, "seed": 0, "first": 300})
CAMPAIGN_HELDOUT = ({"policy": "mix-trees", "episodes": 12, "steps": 1000, "seed": 1_000_000},)


def _continue(a: argparse.Namespace) -> int:
    """Continue the project's model from wherever it got to: the datasets are collected where missing (collection
    is deterministic: the same episodes, byte for byte), the run resumes where its folder is, else it starts from
    the shipped checkpoint (`--init`); either way it trains `--minutes` more."""
    from worldsim.data_collect.collect import CollectConfig, collect
    from worldsim.io.home import place
    from worldsim.model.checkpoint import DEFAULT_CHECKPOINT, read_config
    from worldsim.training.trainer import train

    data, heldout, run = place(a.data, "datasets"), place(f"{a.data}_heldout", "datasets"), place(a.run, "runs")
    for out, parts in ((data, CAMPAIGN_DATA), (heldout, CAMPAIGN_HELDOUT)):
        print(f"data: {out}")
        for recipe in parts:  # finished episodes are skipped: a complete dataset costs nothing
            collect(CollectConfig(out=str(out), workers=a.workers, **recipe), progress=not a.quiet)
    overrides = {name: getattr(a, name) for name in a.config_fields}
    resuming = (run / "latest.json").exists()
    meta = read_config(run) if resuming else {}
    spent = float(meta.get("elapsed_s", 0.0))
    overrides["time_budget_s"] = spent + a.minutes * 60
    # one warm restart per call: a single cosine stretched over every sitting left the run at its tail's learning
    # rate (docs/training_log.md, fifth sitting: "Every sitting a warm restart")
    overrides["schedule_start"] = int(meta.get("step", 0)) if meta.get("phase") in ("dit", "done") else 0
    print(f"run: {run} ({'resuming after ' + format(spent / 3600, '.2f') + ' h' if resuming else 'from ' + str(DEFAULT_CHECKPOINT)}); "
          f"{a.minutes:g} more minutes")
    result = train(str(data), str(run), "small", resume=resuming, progress=not a.quiet,
                   init=None if resuming else str(DEFAULT_CHECKPOINT), **overrides)
    print(json.dumps(result))
    return 0


def _export(a: argparse.Namespace) -> int:
    import worldsim
    from worldsim.data.dataset import Dataset
    from worldsim.model.checkpoint import resolve, save_derived
    from worldsim.model.openings import cut_openings, load_openings

    src = resolve(a.checkpoint)
    model = worldsim.load(src)
    if a.sampling_steps:  # the default the exported model samples with (env/play/eval can still override it)
        from worldsim.model.shortcut import step_index

        step_index(a.sampling_steps, model.cfg.dit.step_levels)
        model.cfg.sampler.steps = a.sampling_steps
    if a.context_noise is not None:  # the level a finished frame enters a dream's past at
        from worldsim.model.world_model import check_context_noise

        model.cfg.sampler.context_noise = check_context_noise(a.context_noise)
    if a.detail_carry is not None:  # how much of the pixel detail the exported model's dreams carry
        if a.detail_carry < 0:
            raise SystemExit(f"--detail-carry must be >= 0, got {a.detail_carry}")
        model.cfg.sampler.detail_carry = a.detail_carry
    if a.still_below is not None:  # below what change of a decoded pixel the exported model's dreams keep it as shown
        if not 0 <= a.still_below <= 255:
            raise SystemExit(f"--still-below must be 0-255 levels, got {a.still_below}")
        model.cfg.sampler.still_below = a.still_below
    if a.still_latent is not None:  # below what change of a latent element a standing dream keeps the one before
        if a.still_latent < 0:
            raise SystemExit(f"--still-latent must be >= 0, got {a.still_latent}")
        model.cfg.sampler.still_latent = a.still_latent
    if a.view_memory is not None:  # how many frames the exported model's dreams remember with their views
        if a.view_memory < 0:
            raise SystemExit(f"--view-memory must be >= 0 frames, got {a.view_memory}")
        model.cfg.sampler.view_memory = a.view_memory
    bank = cut_openings(Dataset(a.data), model.codec, model.start_frames, n=a.openings, seed=a.seed) if a.data else load_openings(src)
    out = save_derived(src, a.out, model, half=a.fp16, openings=bank, raw=a.raw)
    size = sum(f.stat().st_size for f in Path(out).iterdir()) / 1e6
    print(f"exported {src} -> {out} ({size:.1f} MB, {0 if bank is None else len(bank['frames'])} openings)")
    return 0


def _tune_decoder(a: argparse.Namespace) -> int:
    """Fine-tune a checkpoint's decoder on its own dreams (`worldsim.training.decoder_tune`) into a new checkpoint."""
    import dataclasses as dc

    import torch
    from safetensors.torch import load_file, save_file

    import worldsim
    from worldsim.data.dataset import Dataset
    from worldsim.io.atomic import temp_sibling
    from worldsim.model.checkpoint import raw_dynamics, resolve, save_derived
    from worldsim.training.decoder_tune import DreamBank, dream_bank, tune_decoder
    from worldsim.training.trainer import bf16_is_native

    if a.num_threads:
        torch.set_num_threads(a.num_threads)
    src = resolve(a.checkpoint)
    model = worldsim.load(src)
    if a.decoder_from:  # tuning goes on from an earlier tuned decoder of the same autoencoder
        other = worldsim.load(a.decoder_from)
        same = other.cfg.ae == model.cfg.ae and all(
            torch.equal(p, q) for p, q in zip(model.ae.encoder.state_dict().values(), other.ae.encoder.state_dict().values()))
        if not same:
            raise SystemExit(f"--decoder-from {a.decoder_from}: its encoder is not {src}'s; a decoder only fits the "
                             "latents of the encoder it was trained with")
        model.ae.decoder.load_state_dict(other.ae.decoder.state_dict())
    bank_file = Path(a.bank) if a.bank else None
    if bank_file is not None and bank_file.exists():  # dreams are the costly half: a rerun reuses them
        t = load_file(str(bank_file))
        bank = DreamBank(t["latents"], t["frames"], t["horizon"])
        print(f"dream bank: {bank_file} ({len(bank.latents)} frames)")
    else:
        bank = dream_bank(model, Dataset(a.data), a.clips, a.horizon, seed=a.seed, steps=a.sampling_steps,
                          progress=not a.quiet)
        if bank_file is not None:
            bank_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_sibling(bank_file)
            try:
                save_file({f.name: getattr(bank, f.name) for f in dc.fields(bank)}, str(tmp))
                os.replace(tmp, bank_file)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
    result = tune_decoder(model, bank, a.minutes, batch=a.batch, lr=a.lr, adversarial=a.adversarial, texture=a.texture,
                          seed=a.seed,
                          bf16=bf16_is_native(model.device), max_steps=a.max_steps,
                          adversarial_after=a.adversarial_after, progress=not a.quiet)
    horizon = int(bank.horizon.max())  # the bank's own, where it was read back
    note = {"decoder_tune": {"source": str(src), "decoder_from": a.decoder_from, "data": a.data,
                             "clips": len(bank.latents) // horizon, "horizon": horizon, "adversarial": a.adversarial,
                             "adversarial_after": a.adversarial_after, "texture": a.texture, "lr": a.lr,
                             "batch": a.batch, **dc.asdict(result)}}
    out = save_derived(src, a.out, model, extra=note, raw=raw_dynamics(src) is not None)
    print(json.dumps({"out": str(out), **note["decoder_tune"]}))
    return 0


def register(sub) -> None:
    from worldsim.training.config import PRESETS, TrainConfig

    t = add_command(sub, "train", "train a world model on a dataset: autoencoder, dynamics model, outcome heads "
                    "(resumable, torchrun-ready)", _train)
    t.add_argument("--data", type=dataset, required=True, help="dataset folder (from `worldsim collect`)")
    t.add_argument("--preset", default="small", choices=list(PRESETS), help="small: the shipped design; tiny: tests")
    t.add_argument("--out", type=run, required=True, help="run folder: checkpoints, TensorBoard logs, dream videos")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    t.add_argument("--init", type=run, help="a fresh run starts from this checkpoint or run: its autoencoder (and latent "
                   "cache), heads and dynamics weights; trains the dynamics model from there")
    t.add_argument("--time-limit-s", type=float, help="seconds: checkpoint and stop after this long (resume later)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(config_fields=add_config_options(t, TrainConfig))

    c = add_command(sub, "continue", "continue the project's model from wherever it got to: collect its data where "
                    "missing, resume its run (or start one from the shipped model), train --minutes more", _continue)
    c.add_argument("--minutes", type=float, required=True, help="minutes of training to add")
    c.add_argument("--run", default="campaign", help="the run (a name in the data home, or a folder)")
    c.add_argument("--data", default="indev64t", help="the dataset (and NAME_heldout), collected where missing")
    c.add_argument("--workers", type=int, default=2, help="collection worker processes")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(config_fields=add_config_options(c, TrainConfig, skip=("time_budget_s", "schedule_start")))

    ex = add_command(sub, "export", "a self-contained inference checkpoint (EMA weights, config, opening clips)", _export)
    add_world_model(ex, required=True, checkpoint_help="checkpoint or run folder to export (its EMA weights)")
    ex.add_argument("--out", type=run, required=True, help="folder to write")
    ex.add_argument("--data", type=dataset, help="dataset to cut the bank of real openings from, settled stands where it holds them (default: the source's bank)")
    ex.add_argument("--openings", type=int, default=32, help="opening clips in the bank")
    ex.add_argument("--seed", type=int, default=0, help="which clips are cut")
    ex.add_argument("--context-noise", type=float, help="the noise level finished frames enter a dream's past at, "
                    "the default the exported model samples with (default: the source's)")
    ex.add_argument("--detail-carry", type=float, help="the change of the decoded picture (0-1) at which the exported "
                    "model's dreams drop a pixel's carried detail (SamplerConfig.detail_carry; 0: none; default: the "
                    "source's)")
    ex.add_argument("--still-below", type=float, metavar="LEVELS", help="a pixel whose decoded value moved less "
                    "than this (0-255) keeps the value the exported model's dream shows (SamplerConfig.still_below; "
                    "0: none; default: the source's)")
    ex.add_argument("--still-latent", type=float, help="on steps with nothing pressed, a latent element the exported "
                    "model's dream moves by less than this keeps the frame before's value (SamplerConfig.still_latent; "
                    "0: none; default: the source's)")
    ex.add_argument("--view-memory", type=int, metavar="FRAMES",
                    help="frames the exported model's dreams remember with their views, to make each prior from the "
                    "closest view while only the camera moves (SamplerConfig.view_memory; 0: none; default: the "
                    "source's)")
    td = add_command(sub, "tune-decoder", "fine-tune a checkpoint's decoder to draw the latents its dynamics model "
                     "dreams as the real frames they stand for (a new checkpoint; the encoder and dynamics stay)",
                     _tune_decoder)
    add_world_model(td, required=True, checkpoint_help="checkpoint or run folder whose decoder to tune")
    td.add_argument("--data", type=dataset, required=True, help="dataset to dream from (its recorded actions)")
    td.add_argument("--out", type=run, required=True, help="checkpoint folder to write")
    td.add_argument("--minutes", type=float, required=True, help="minutes of tuning (after the dreams are made)")
    td.add_argument("--decoder-from", type=run, help="start from this checkpoint's decoder (an earlier tuning of the "
                    "same autoencoder), not the source's own")
    td.add_argument("--max-steps", type=int, help="stop after this many steps if the minutes are not over")
    td.add_argument("--clips", type=int, default=1024, help="dreams in the bank")
    td.add_argument("--horizon", type=int, default=16, help="dreamed steps per clip")
    td.add_argument("--bank", help="a .safetensors file that keeps the dreams: read when it exists, else written")
    td.add_argument("--adversarial", type=float, default=0.5, help="the patch discriminator's weight, relative to "
                    "the reconstruction's gradient at the decoder's last layer (0: L1 + MSE only)")
    td.add_argument("--texture", type=float, default=0.0, help="weight of the texture loss: each 8x8 patch of a "
                    "decoded dream holds as much fine texture as the real frame's (0: none)")
    td.add_argument("--adversarial-after", type=int, default=200, help="steps the discriminator trains alone before "
                    "its loss reaches the decoder")
    td.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate of the decoder (the discriminator's "
                    "is twice it)")
    td.add_argument("--batch", type=int, default=32, help="dreamed frames per step")
    td.add_argument("--seed", type=int, default=0, help="which clips are dreamed and drawn")
    td.add_argument("--num-threads", type=int, help="torch threads (default: torch's)")
    td.add_argument("--quiet", action="store_true")

    ex.add_argument("--fp16", action="store_true", help="store weights in float16 (half the size; not for warm starts)")
    ex.add_argument("--raw", action="store_true", help="also store the raw dynamics weights (fp32) beside the EMA, so "
                    "a warm start from the export (`train --init`, `continue`) loses nothing")
