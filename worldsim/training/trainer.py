"""`worldsim train`: the phases of `worldsim.training.phases`, run by one loop, resumable at any step.

A checkpoint holds the EMA model (for inference) plus raw weights, optimizer, RNG states and step; `--resume`
continues from the latest one exactly. `init` starts a fresh run from another checkpoint (the shipped one, say):
its autoencoder, heads and dynamics weights, raw and EMA where it carries both, so training goes on from there.
Runs unchanged under `torchrun --nproc_per_node=N` (DistributedDataParallel; gloo on CPU, NCCL on GPU): each
rank draws its own batches, gradients are averaged.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from worldsim.data.dataset import Dataset, FrameSource
from worldsim.io.atomic import write_json_atomic
from worldsim.model.actions import space_to_json
from worldsim.model.autoencoder import to_pixels
from worldsim.model.checkpoint import (
    RAW_WEIGHTS,
    load_train_state,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_config,
    resolve,
    save_checkpoint,
)
from worldsim.model.config import ModelConfig
from worldsim.model.world_model import WorldModel, cpu_has_bf16
from worldsim.training.config import Preset, TrainConfig, preset
from worldsim.training.latents import FILES as CACHE_FILES
from worldsim.training.latents import MOVED, LatentCache
from worldsim.training.phases import ORDER, PHASES, Phase

_OWN_GROUP = False  # True once _dist_setup created the process group (then `train` destroys it when done)


def _dist_setup() -> tuple[int, int, torch.device]:
    global _OWN_GROUP
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        _OWN_GROUP = True
    rank = dist.get_rank() if dist.is_initialized() else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


@dataclass(frozen=True)
class Split:
    """Which episodes train and which are held out (the last `holdout`: dream samples), computed once."""

    train: list[int]
    val: list[int]
    first_val_frame: int  # latent-cache index of the first held-out frame (the cache keeps episode order)

    @classmethod
    def of(cls, ds: Dataset, holdout: int) -> Split:
        n = len(ds)
        holdout = min(holdout, max(0, n - 1))
        train = list(range(n - holdout))
        return cls(train, list(range(n - holdout, n)), sum(ds.episode_length(e) + 1 for e in train))


class EMA:
    """An exponential moving average of the weights a phase trains (checkpoints hold it for inference)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        self._trained_ids: tuple[torch.nn.Module | None, set[int]] = (None, set())
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int, trained: torch.nn.Module) -> None:
        """Average the parameters of `trained` (the part of `model` this phase optimises) only: averaging the
        frozen rest would pull their averaged weights toward their last raw weights, undoing the earlier phase's EMA."""
        d = min(self.decay, (1 + step) / (10 + step))  # warm up the average early on
        if self._trained_ids[0] is not trained:  # the parameter set changes once per phase, not per step
            self._trained_ids = (trained, {id(p) for p in trained.parameters()})
        for e, p in zip(self.model.parameters(), model.parameters()):
            if id(p) in self._trained_ids[1]:
                e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


def learning_rate(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up, then a cosine decay to a tenth of `base` at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


class Trainer:
    def __init__(self, data: str, out: str, model_cfg: ModelConfig, train_cfg: TrainConfig, resume: bool = False,
                 holdout: int = 2, progress: bool = True, stop_after: int | None = None, time_limit_s: float | None = None,
                 init: str | None = None):
        """stop_after / time_limit_s: end this invocation early (with a checkpoint) after that many optimizer
        steps or seconds; `resume` carries on later, as if it had never stopped. init: a checkpoint (or run)
        whose autoencoder, heads and (where shapes allow) dynamics model a fresh run starts from."""
        self.stop_after, self.time_limit_s, self.steps_this_run = stop_after, time_limit_s, 0
        self.rank, self.world, self.device = _dist_setup()
        self.out = Path(out)
        self.progress = progress and self.rank == 0
        self.tc = train_cfg
        if train_cfg.num_threads:
            torch.set_num_threads(train_cfg.num_threads)
        self.ds = Dataset(data)
        model_cfg.action_space_json = space_to_json(self.ds.action_space)
        keys = self.ds.info.get("count_keys")
        model_cfg.outcome_events = tuple(keys) if keys else ("reward",)
        if tuple(self.ds.observation_space.shape[:2]) != model_cfg.frame_hw:
            raise ValueError(f"dataset {data} has {self.ds.observation_space.shape[:2]} frames but the model expects "
                             f"{model_cfg.frame_hw}: collect at that size or pick another preset")
        self.split = Split.of(self.ds, holdout)
        resuming = resume and (self.out / "latest.json").exists()
        if model_cfg.motion_prior and not any(model_cfg.camera_px_per_deg):
            model_cfg.camera_px_per_deg = self._camera_calibration(resuming, None if resuming else init)
        # dreams sample as training noised, at half the largest level; derived every time, so a run that changes
        # `prior_noise` on resuming samples as it now trains (not as the checkpoint it resumed from did)
        model_cfg.sampler.prior_noise = train_cfg.prior_noise / 2
        model_cfg.prior_geometry = "rotation" if train_cfg.prior_turn == "rotation" else "shift"
        self.bf16 = train_cfg.bf16 and bf16_is_native(self.device)
        torch.manual_seed(train_cfg.seed)
        self.model = WorldModel(model_cfg).to(self.device)
        self.ema = EMA(self.model, train_cfg.ema)
        self.phase, self.step = "ae", 0
        self.dit_done = 0  # dynamics steps finished (kept when later phases reset `step`)
        self.decoder_done = 0  # decoder fine-tuning steps finished
        self.extending = False  # resumed a finished run to train it further: its later phases' log lines stay
        self.np_rng = np.random.default_rng([train_cfg.seed, self.rank])
        self.openings: dict[str, np.ndarray] | None = None  # the bank every checkpoint carries: cut once (same data, seed)
        self.noise_gen = torch.Generator(device=self.device)  # diffusion noise of the dynamics phase
        self.noise_gen.manual_seed(train_cfg.seed * 1000 + self.rank)
        self.opt = self._make_opt()
        self.started = time.time()
        self.elapsed_before = 0.0
        self.writer = None
        self._cache: LatentCache | None = None
        if resuming:
            self._restore()
        else:
            if resume and self.rank == 0:
                print(f"--resume: no checkpoint in {self.out} yet, starting fresh")
            if init:
                self._init_from(init)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.out / "run.json", {"data": str(Path(data).resolve()), "model": model_cfg.to_dict(),
                                                     "train": asdict(train_cfg), "world_size": self.world,
                                                     "train_episodes": len(self.split.train), "val_episodes": self.split.val})

    # ----- set-up -----
    def _camera_calibration(self, resuming: bool, init: str | None) -> tuple[float, float]:
        """Pixels per degree for the motion prior: the run's own figure when resuming, the model's it starts from
        (a warm start continues that model), else measured on the training episodes (fixed seed: every rank agrees)."""
        if resuming or init:
            src = self.out if resuming else init  # a run folder resolves to its latest checkpoint
            px = tuple(read_config(src)["model"]["camera_px_per_deg"])
            if any(px):
                return px
        from worldsim.evaluation.motion import measure_camera

        if "camera" not in self.ds.action_space.spaces:
            raise ValueError(f"the motion prior needs a 'camera' action, and dataset {self.ds.root} has none")
        px = measure_camera(self.ds, self.split.train, seed=self.tc.seed)
        if self.rank == 0:
            print(f"motion prior: the data moves {px[0]:+.3f} px down per degree of pitch, {px[1]:+.3f} px right per degree of yaw")
        return px

    @torch.no_grad()
    def _init_from(self, path: str) -> None:
        """Start from another checkpoint: its autoencoder and latent statistics, its heads, and its dynamics
        weights where the shapes match (a design change of the dynamics model keeps the rest); the raw weights
        where it carries them (`RAW_WEIGHTS`), else its EMA. Its latent cache is reused when the data is the same."""
        from safetensors.torch import load_file

        from worldsim.model.checkpoint import load as load_checkpoint

        src_dir = resolve(path)
        src = load_checkpoint(src_dir)
        if src.cfg.ae != self.model.cfg.ae or src.cfg.frame_hw != self.model.cfg.frame_hw or \
                src.cfg.action_space_json != self.model.cfg.action_space_json:
            raise ValueError(f"--init {path}: its autoencoder, frame size or action space differ from this run's")
        own = self.model.state_dict()
        ema = {k: v for k, v in src.state_dict().items() if k in own and own[k].shape == v.shape}
        raw = dict(ema)
        if (src_dir / RAW_WEIGHTS).exists():
            raw.update({k: v.float() for k, v in load_file(str(src_dir / RAW_WEIGHTS)).items()
                        if k in own and own[k].shape == v.shape})
        kept_dit = any(k.startswith("dit.") for k in ema)
        self.model.load_state_dict(raw, strict=False)
        self.ema.model.load_state_dict({**self.model.state_dict(), **ema})
        self._enter("dit", 0)
        src_cache, cache_dir = src_dir.parent.parent / "latents", self.out / "latents"
        if self.rank == 0 and LatentCache.exists(src_cache) and not LatentCache.exists(cache_dir):
            if self._cache_covers(src_cache):
                cache_dir.mkdir(parents=True, exist_ok=True)
                for name in CACHE_FILES:
                    if (src_cache / name).exists():
                        try:
                            os.link(src_cache / name, cache_dir / name)
                        except OSError:
                            shutil.copy2(src_cache / name, cache_dir / name)
        if self.rank == 0:
            what = "autoencoder, heads and dynamics model" if kept_dit else "autoencoder and heads"
            print(f"initialised from {src_dir}: {what}; training the dynamics model")

    def _phase(self, name: str) -> Phase:
        return PHASES[ORDER[name]]

    def _module(self, phase: str) -> torch.nn.Module:
        m = self.model
        for part in self._phase(phase).module.split("."):
            m = getattr(m, part)
        return m

    def _make_opt(self) -> torch.optim.Optimizer:
        name = self.phase if self.phase in ORDER and self.phase != "done" else "dit"
        lr = getattr(self.tc, self._phase(name).lr)
        return torch.optim.AdamW(self._module(name).parameters(), lr=lr, weight_decay=self.tc.weight_decay, betas=(0.9, 0.99))

    def autocast(self):
        """bf16 autocast where this machine runs it faster than fp32, else a no-op context."""
        if not self.bf16:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def ddp(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return module

    def latents(self) -> LatentCache:
        """The run's latent cache (and the motion prior's moved frames), built on first use; encoded at the
        autoencoder's training numerics (bf16 autocast where it trained so: ~2x faster on a CPU)."""
        if self._cache is not None:
            return self._cache
        cache_dir = self.out / "latents"
        self.model.eval().set_precision("bf16" if self.bf16 else "fp32")
        stale = None  # the cache of a dataset that has grown since: its episodes' rows are reused
        try:
            if self.rank == 0 and LatentCache.exists(cache_dir) and not self._cache_covers(cache_dir):
                stale = LatentCache(cache_dir, self.tc.prior_turn)  # its maps keep the old files readable meanwhile
                print(f"{self.ds.root} has grown to {len(self.ds)} episodes since the latent cache was made: encoding "
                      f"the {len(self.ds) - stale.prefix_of(self.ds, list(range(len(self.ds))))} new ones")
                for name in ("index.json", *MOVED.values(), "turns.f32"):  # the rest is replaced as it is rebuilt
                    (cache_dir / name).unlink(missing_ok=True)
            _barrier()
            if not LatentCache.exists(cache_dir):
                if self.rank == 0:
                    LatentCache.build(cache_dir, self.ds, self.model, list(range(len(self.ds))), progress=self.progress,
                                      reuse=stale)
                _barrier()
            if self.model.prior is not None and not (cache_dir / MOVED[self.tc.prior_turn]).exists():
                if self.rank == 0:
                    LatentCache.write_pixel_prior(cache_dir, self.ds, self.model, progress=self.progress, reuse=stale,
                                                  prior_turn=self.tc.prior_turn)
                _barrier()
        finally:
            self.model.set_precision("fp32")
        self._cache = LatentCache(cache_dir, self.tc.prior_turn)
        return self._cache

    def _cache_covers(self, cache_dir: Path) -> bool:
        """Whether the latent cache holds exactly the dataset's episodes (a dataset grows when more are collected)."""
        index = json.loads((cache_dir / "index.json").read_text())
        return index["episodes"] == list(range(len(self.ds))) and index["offsets"][-1] == self.ds.total_steps + len(self.ds)

    # ----- checkpoints -----
    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def save(self) -> None:
        if self.rank != 0:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_t, opt_j = optimizer_to_tensors(self.opt)
        tensors.update(opt_t)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.noise"] = self.noise_gen.get_state()
        info = {"phase": self.phase, "step": self.step, "dit_done": self.dit_done, "decoder_done": self.decoder_done,
                "np_rng": self.np_rng.bit_generator.state, "py_rng": _py_state(), "elapsed_s": self.elapsed(), **opt_j}
        name = f"checkpoints/{self.phase}_{self.step:07d}"
        extra = {"phase": self.phase, "step": self.step, "decoder_steps": self.decoder_done,
                 "dataset": {"path": str(self.ds.root), "episodes": len(self.ds), "steps": self.ds.total_steps, **self.ds.info},
                 "train": asdict(self.tc), "elapsed_s": round(self.elapsed(), 1)}
        save_checkpoint(self.out / name, self.ema.model, extra=extra, train_tensors=tensors, train_json=info)
        if self.phase != "ae":  # the bank of real openings that reset() draws from
            from worldsim.model.openings import cut_openings, save_openings

            if self.openings is None:  # finding the stands reads every candidate episode: not at every checkpoint
                self.openings = cut_openings(self.ds, self.model.codec, self.model.start_frames, seed=self.tc.seed)
            save_openings(self.out / name, self.openings)
        write_json_atomic(self.out / "latest.json", {"checkpoint": name})
        for old in sorted((self.out / "checkpoints").glob(f"{self.phase}_*"))[:-2]:
            shutil.rmtree(old, ignore_errors=True)

    def _restore(self) -> None:
        from worldsim.model.checkpoint import load as load_checkpoint

        latest = self.out / json.loads((self.out / "latest.json").read_text())["checkpoint"]
        tensors, info = load_train_state(latest)
        self.phase, self.step = info["phase"], int(info["step"])
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
        self.ema.model.load_state_dict(load_checkpoint(latest).state_dict())
        self.dit_done = int(info.get("dit_done", self.step if self.phase == "done" else 0))
        self.decoder_done = int(info.get("decoder_done", 0))
        opt_state: tuple | None = (tensors, info)
        if self.phase == "done":  # a finished run asked for more: carry on the first phase that wants more steps
            self.extending = True
            self.phase, self.step = self._next("ae")
            if self.phase in ("dit", "decoder"):  # with the optimizer state it ended with, kept in its last checkpoint
                last = self.out / "checkpoints" / f"{self.phase}_{self.step:07d}"
                opt_state = load_train_state(last) if (last / "train_state.safetensors").exists() else None
            else:
                opt_state = None
        self.opt = self._make_opt()
        if opt_state is not None:
            optimizer_from_tensors(self.opt, *opt_state)
        torch.set_rng_state(tensors["rng.torch"])
        self.noise_gen.set_state(tensors["rng.noise"])
        self.np_rng.bit_generator.state = info["np_rng"]
        random.setstate(_py_unstate(info["py_rng"]))
        self.elapsed_before = float(info.get("elapsed_s", 0.0))
        if self.rank == 0 and (self.out / "log.jsonl").exists():  # forget log lines written after this checkpoint
            def keep(rec: dict) -> bool:
                if rec["phase"] == self.phase:
                    return rec["step"] <= self.step
                return ORDER[rec["phase"]] < ORDER[self.phase] or self.extending  # a finished run's later phases

            lines = [line for line in (self.out / "log.jsonl").read_text().splitlines() if keep(json.loads(line))]
            (self.out / "log.jsonl").write_text("".join(line + "\n" for line in lines))
        if self.rank > 0:  # only rank 0's streams are saved: the others re-derive theirs from (seed, rank, step)
            self.np_rng = np.random.default_rng([self.tc.seed, self.rank, self.step])
            self.noise_gen.manual_seed(self.tc.seed * 1000 + self.rank + 7919 * self.step)
        if self.rank == 0:
            print(f"resumed from {latest} (phase {self.phase}, step {self.step})")

    # ----- the phases -----
    def _next(self, after: str) -> tuple[str, int]:
        """The first phase after `after` that the run still owes steps, and the step it starts at."""
        for phase in PHASES[ORDER[after] + 1:]:
            if phase.owed(self):
                return phase.name, {"dit": self.dit_done, "decoder": self.decoder_done}.get(phase.name, 0)
        return "done", self.dit_done

    def _enter(self, phase: str, step: int) -> None:
        self.phase, self.step = phase, step
        self.opt = self._make_opt()
        if phase == "done":
            self.save()

    def _finish(self, phase: str) -> None:
        """What a phase leaves behind once it has all its steps."""
        if phase == "ae":
            self._freeze_autoencoder()
        elif phase == "dit":
            self.dit_done = self.step
        elif phase == "heads":
            self.model.heads.load_state_dict(self.ema.model.heads.state_dict())
            self.model.heads_trained.fill_(True)
            self.ema.model.heads_trained.fill_(True)
        elif phase == "decoder":
            self.decoder_done = self.step
        self._enter(*self._next(phase))

    @torch.no_grad()
    def _freeze_autoencoder(self) -> None:
        """Freeze the (EMA) autoencoder, standardise its latents on training frames, encode the dataset once."""
        self.model.ae.load_state_dict(self.ema.model.ae.state_dict())
        src = FrameSource(self.ds, self.split.train)
        frames = src.sample(min(2048, int(src.lengths.sum())), np.random.default_rng(self.tc.seed)).to(self.device)
        z = torch.cat([self.model.ae.encode(to_pixels(frames[i:i + 256])) for i in range(0, len(frames), 256)])
        self.model.latent_mean.copy_(z.mean(dim=(0, 2, 3)))
        self.model.latent_std.copy_(z.std(dim=(0, 2, 3)).clamp_min(1e-3))
        self.ema.model.load_state_dict(self.model.state_dict())
        self.latents()

    def run(self) -> dict[str, Any]:
        """Run the phases from where the run stands to the end (or until this invocation's budget is used)."""
        stopped = False
        while self.phase != "done":
            name = self.phase
            stopped = self._loop(self._phase(name))
            if stopped:
                self.save()
                break
            self._finish(name)
            if name == "ae":
                self.save()
        _barrier()
        result = {"phase": self.phase, "step": self.step, "elapsed_s": round(self.elapsed(), 1), "stopped_early": stopped}
        if self.world > 1:
            result["replicas_in_sync"] = self._check_sync()
        if self.writer:
            self.writer.close()
        return result

    def _loop(self, phase: Phase) -> bool:
        """The optimisation loop every phase shares: LR schedule, step, EMA, logging, checkpoints, early stop.
        True when this invocation stopped before the phase's last step. With `TrainConfig.time_budget_s` the
        dynamics phase's length is refitted every 50 steps to the measured speed, so its schedule (warm-up,
        cosine decay) ends when the budget does, on any machine."""
        from tqdm import tqdm

        tc = self.tc
        loss_fn = phase.batches(self)
        module = self._module(phase.name)
        total, base_lr, batch = getattr(tc, phase.steps), getattr(tc, phase.lr), getattr(tc, phase.batch)
        warmup = tc.warmup if phase.name in ("ae", "dit") else min(tc.warmup, total // 10 + 1)
        frames_per_step = batch * (tc.seq_len if phase.name == "dit" else 1)
        start = min(tc.schedule_start, self.step) if phase.name == "dit" else 0  # a warm restart's first step
        bar = tqdm(total=total, initial=self.step, desc=phase.name, disable=not self.progress)
        t0, seen, step0 = time.time(), 0, self.step
        if phase.name == "dit" and tc.time_budget_s > 0:  # a budget raised on resume: steps to fill it, refitted below
            total = bar.total = max(total, self._steps_for_budget())
        try:
            while self.step < total:
                if phase.name == "dit" and tc.time_budget_s > 0 and self.step - step0 >= 20 and self.step % 50 == 0:
                    total = bar.total = self._fit_to_budget((time.time() - t0) / (self.step - step0))
                for g in self.opt.param_groups:
                    g["lr"] = learning_rate(self.step - start, total - start, base_lr, warmup)
                loss, stats = loss_fn()
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), tc.grad_clip)
                self.opt.step()
                self.ema.update(self.model, self.step, module)
                self.step += 1
                seen += frames_per_step * self.world
                bar.update(1)
                if self.step % tc.log_every == 0:
                    rate = seen / (time.time() - t0)
                    extra = {phase.show: f"{stats[phase.show]:.3f}"} if phase.show else {}
                    bar.set_postfix(loss=f"{loss.item():.4f}", samples_s=f"{rate:.0f}", **extra)
                    self._log({**stats, f"{phase.name}_loss": loss.item(), f"{phase.name}_samples_per_s": rate})
                if self.step % tc.checkpoint_every == 0:
                    self.save()
                if phase.name == "dit" and self.step % tc.sample_every == 0 and self.rank == 0:
                    self.sample_video()
                if self._should_stop():
                    return self.step < total
            return False
        finally:
            bar.close()

    def _should_stop(self) -> bool:
        """Count one optimizer step; True when this invocation has used its step or time budget."""
        self.steps_this_run += 1
        if self.stop_after is not None and self.steps_this_run >= self.stop_after:
            return True
        return self.time_limit_s is not None and time.time() - self.started >= self.time_limit_s

    def budget_left(self) -> float:
        """Seconds of `time_budget_s` not yet used (0 without a budget)."""
        return max(0.0, self.tc.time_budget_s - self.elapsed()) if self.tc.time_budget_s > 0 else 0.0

    def _steps_for_budget(self) -> int:
        """A first estimate of the dynamics steps the budget holds, at the speed the run's log last reported (a
        budget raised on resume), refitted to the measured speed after a few steps."""
        rate = None
        if (self.out / "log.jsonl").exists():
            for line in reversed((self.out / "log.jsonl").read_text().splitlines()):
                rec = json.loads(line)
                if rec.get("dit_samples_per_s"):
                    rate = rec["dit_samples_per_s"]
                    break
        s_per_step = self.tc.dit_batch * self.tc.seq_len / rate if rate else 1.0
        self.tc.dit_steps = max(self.tc.dit_steps, self.step + int(self.budget_left() / s_per_step))
        return self.tc.dit_steps

    def _fit_to_budget(self, s_per_step: float) -> int:
        """The dynamics phase's length that ends the run at `time_budget_s` at the measured seconds per step
        (the same on every rank: rank 0's figure is broadcast). Stored in the config, so a resume keeps it."""
        left = self.tc.time_budget_s - self.elapsed()
        new = torch.tensor(float(max(self.step + 1, self.step + left / max(s_per_step, 1e-6))))
        if dist.is_initialized():
            dist.broadcast(new, 0)
        self.tc.dit_steps = int(new.item())
        return self.tc.dit_steps

    def _log(self, scalars: dict[str, float]) -> None:
        if self.rank != 0:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"))
        for k, v in scalars.items():
            self.writer.add_scalar(k, v, self.step)
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps({"phase": self.phase, "step": self.step, **{k: round(v, 6) for k, v in scalars.items()}}) + "\n")

    @torch.no_grad()
    def sample_video(self, length: int = 60) -> Path | None:
        """An open-loop dream next to the real clip it started from (a held-out episode when there is one)."""
        from worldsim.io.video import write_mp4
        from worldsim.sampling.sampler import dream

        ep = self.ds.episode(self.split.val[0] if self.split.val else 0)
        n, k = min(length, len(ep)), self.model.start_frames
        if n < k + 1:
            return None
        flat = self.model.codec.encode_batch({key: v[:n] for key, v in ep.actions.items()})
        dreamed = dream(self.ema.model.eval(), ep.frames[: n + 1], flat, seed=0)
        strip = np.concatenate([ep.frames[k: n + 1], dreamed], axis=2)
        return write_mp4(self.out / "samples" / f"dream_{self.step:07d}.mp4", strip, fps=20, scale=4)

    def _check_sync(self) -> bool:
        """All ranks hold identical weights (what DDP promises): compare checksums of every parameter."""
        vec = torch.stack([p.detach().double().sum() for p in self.model.parameters()]).to(self.device)
        gathered = [torch.zeros_like(vec) for _ in range(self.world)]
        dist.all_gather(gathered, vec)
        ok = all(torch.equal(gathered[0], g) for g in gathered[1:])
        if self.rank == 0:
            write_json_atomic(self.out / "ddp_sync.json", {"world_size": self.world, "in_sync": ok,
                                                           "checksums": [g.sum().item() for g in gathered]})
        return ok


def bf16_is_native(device: torch.device) -> bool:
    """Train under bf16 autocast where the hardware runs it natively: on a CPU without bf16 dot products it is
    emulated and several times slower than fp32 (measured: 0.9 against ~20 samples/s)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def _py_state() -> list:
    v, state, gauss = random.getstate()
    return [v, list(state), gauss]


def _py_unstate(s: list) -> tuple:
    return (s[0], tuple(s[1]), s[2])


def train(data: str, out: str, preset_name: str = "small", resume: bool = False, progress: bool = True,
          stop_after: int | None = None, time_limit_s: float | None = None, init: str | None = None,
          **overrides: Any) -> dict[str, Any]:
    """Train a preset on a dataset; `overrides` replace TrainConfig fields (e.g. dit_steps=1000). A resumed run
    keeps the settings it was started with (a run begun with 3,000 dynamics steps does not become the preset's
    20,000 on resume); only what `overrides` names changes."""
    p = preset(preset_name)
    if resume and (Path(out) / "latest.json").exists():
        stored = read_config(out)
        p = Preset(ModelConfig.from_dict(stored["model"]), TrainConfig.from_dict(stored["train"]))
        if overrides.get("dit_steps") is not None:  # an explicit length replaces a budget-fitted one
            p.train.time_budget_s = 0.0
    for k, v in overrides.items():
        if v is None:
            continue
        if not hasattr(p.train, k):
            raise ValueError(f"unknown training option {k!r}")
        setattr(p.train, k, v)
    global _OWN_GROUP
    try:
        return Trainer(data, out, p.model, p.train, resume=resume, progress=progress, stop_after=stop_after,
                       time_limit_s=time_limit_s, init=init).run()
    finally:
        if _OWN_GROUP and dist.is_initialized():  # left to interpreter exit, gloo's threads can abort the process
            dist.destroy_process_group()
            _OWN_GROUP = False
