"""`worldsim train`: the autoencoder first, then the dynamics model on cached latents.

Why two phases and not joint training: on 2 CPU cores every pass through the decoder is time the dynamics model
does not get. With the autoencoder frozen, each frame is encoded once into a latent cache and a dynamics step
reads a few KB per window, which (measured) more than doubles dynamics samples/s over encoding on the fly.

Resumable: a checkpoint holds the EMA model (for inference) plus raw weights, optimizer, EMA, RNG states and
step; `--resume` continues from the latest one exactly. Runs unchanged under `torchrun --nproc_per_node=N`
(DistributedDataParallel; gloo on CPU, NCCL on GPU): each rank draws its own batches, gradients are averaged.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from worldsim.atomic import write_json_atomic
from worldsim.checkpoint import load_train_state, optimizer_from_tensors, optimizer_to_tensors, save_checkpoint
from worldsim.config import ModelConfig, TrainConfig
from worldsim.data import FrameSource, LatentCache
from worldsim.dataset import Dataset
from worldsim.heads import episode_events, outcome_loss
from worldsim.world_model import WorldModel, load_extending

# ----- distributed helpers -----
_OWN_GROUP = False  # True once _dist_setup created the process group (then `train` destroys it when done)


def _dist_setup() -> tuple[int, int, torch.device]:
    global _OWN_GROUP
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
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


def split_episodes(n: int, holdout: int) -> tuple[list[int], list[int]]:
    """Last `holdout` episodes are kept out of training (for dream samples and quick validation)."""
    holdout = min(holdout, max(0, n - 1))
    return list(range(n - holdout)), list(range(n - holdout, n))


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16)


def bf16_supported(device: torch.device) -> bool:
    """bf16 autocast where the hardware runs it natively; on a CPU without bf16 dot products it is emulated and
    several times slower than fp32 (measured: 0.9 against ~20 samples/s), so training stays fp32 there."""
    from worldsim.world_model import bf16_is_fast

    return bf16_is_fast(device.type)


class _EMA:
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


def _lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))




class Trainer:
    def __init__(self, data: str, out: str, model_cfg: ModelConfig, train_cfg: TrainConfig, resume: bool = False,
                 holdout: int = 2, progress: bool = True, stop_after: int | None = None, time_limit_s: float | None = None,
                 init: str | None = None):
        """stop_after / time_limit_s: end this invocation early (with a checkpoint) after that many optimizer
        steps or seconds; `--resume` carries on later, as if it had never stopped. init: a checkpoint (or run)
        whose autoencoder, heads and (where shapes allow) dynamics model a fresh run starts from."""
        self.stop_after, self.time_limit_s, self.steps_this_run = stop_after, time_limit_s, 0
        self.rank, self.world, self.device = _dist_setup()
        self.out = Path(out)
        self.progress = progress and self.rank == 0
        self.tc = train_cfg
        if train_cfg.num_threads:
            torch.set_num_threads(train_cfg.num_threads)
        self.ds = Dataset(data)
        model_cfg.action_space_json = _space_json(self.ds)
        model_cfg.outcome_events = _outcome_events(self.ds)
        if tuple(self.ds.observation_space.shape[:2]) != model_cfg.frame_hw:
            raise ValueError(f"dataset {data} has {self.ds.observation_space.shape[:2]} frames but the model expects "
                             f"{model_cfg.frame_hw}: collect at that size or pick another preset")
        self.train_eps, self.val_eps = split_episodes(len(self.ds), holdout)
        resuming = resume and (self.out / "latest.json").exists()
        if model_cfg.motion_prior and not any(model_cfg.camera_px_per_deg):
            model_cfg.camera_px_per_deg = self._camera_calibration(resuming)
        self.bf16 = train_cfg.bf16 and bf16_supported(self.device)
        torch.manual_seed(train_cfg.seed)
        self.model = WorldModel(model_cfg).to(self.device)
        self.ema = _EMA(self.model, train_cfg.ema)
        self.phase, self.step = "ae", 0
        self.dit_done = 0  # dynamics steps finished (kept when later phases reset `step`)
        self.decoder_done = 0  # decoder fine-tuning steps finished
        self.extending = False  # resumed a finished run to train it further: its later phases' log lines stay
        self.np_rng = np.random.default_rng([train_cfg.seed, self.rank])
        self.noise_gen = torch.Generator(device=self.device)  # diffusion noise of the dynamics phase
        self.noise_gen.manual_seed(train_cfg.seed * 1000 + self.rank)
        self.opt = self._make_opt()
        self.started = time.time()
        self.elapsed_before = 0.0
        self.writer = None
        if resuming:
            self._restore()
        else:
            if resume:
                print(f"--resume: no checkpoint in {self.out} yet, starting fresh")
            if init:
                self._init_from(init)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.out / "run.json", {"data": str(Path(data).resolve()), "model": model_cfg.to_dict(),
                                                     "train": asdict(train_cfg), "world_size": self.world,
                                                     "train_episodes": len(self.train_eps), "val_episodes": self.val_eps})

    def _camera_calibration(self, resuming: bool) -> tuple[float, float]:
        """Pixels per degree for the motion prior: the run's own figure when resuming, else measured on the
        training episodes (the same on every rank: fixed seed)."""
        if resuming:
            from worldsim.checkpoint import read_config

            return tuple(read_config(self.out)["model"]["camera_px_per_deg"])  # a run folder resolves to its latest
        from worldsim.motion import measure_camera

        if "camera" not in self.ds.action_space.spaces:
            raise ValueError(f"the motion prior needs a 'camera' action, and dataset {self.ds.root} has none")
        px = measure_camera(self.ds, self.train_eps, seed=self.tc.seed)
        if self.rank == 0:
            print(f"motion prior: the data moves {px[0]:+.3f} px down per degree of pitch, {px[1]:+.3f} px right per degree of yaw")
        return px

    @torch.no_grad()
    def _init_from(self, path: str) -> None:
        """Start from another run's model: its autoencoder (so its latent cache is reused when it has one), its
        heads, and its dynamics weights where shapes match; input features the other model did not have (the
        motion prior's channels) start at zero, so the start is exactly the other model's function."""
        import shutil

        from worldsim.checkpoint import load as load_ckpt
        from worldsim.checkpoint import resolve

        src_dir = resolve(path)
        src = load_ckpt(src_dir)
        same_dynamics = src.cfg.generation == self.model.cfg.generation and src.cfg.context == self.model.cfg.context
        if src.cfg.ae != self.model.cfg.ae or src.cfg.frame_hw != self.model.cfg.frame_hw or \
                src.cfg.action_space_json != self.model.cfg.action_space_json:
            raise ValueError(f"--init {path}: its autoencoder, frame size or action space differ from this run's")
        state = src.state_dict()
        if not same_dynamics:  # another model generation (or context): its autoencoder and heads only
            state = {k: v for k, v in state.items() if not k.startswith("dit.")}
        try:
            load_extending(self.model, state)
        except ValueError as e:
            raise ValueError(f"--init {path}: {e}") from None
        self.ema.model.load_state_dict(self.model.state_dict())
        self._enter("dit", 0)
        src_cache = src_dir.parent.parent / "latents"
        cache_dir = self.out / "latents"
        if self.rank == 0 and LatentCache.exists(src_cache) and not LatentCache.exists(cache_dir):
            index = json.loads((src_cache / "index.json").read_text())
            if index["episodes"] == list(range(len(self.ds))) and index["offsets"][-1] == self.ds.total_steps + len(self.ds):
                cache_dir.mkdir(parents=True, exist_ok=True)
                for name in ("latents.f16", "actions.f32", "known.u8", "pitch.f32", "moved.f16", "index.json"):  # same AE, same data: same latents
                    if not (src_cache / name).exists():  # moved.f16: only models that train on the pixel prior
                        continue
                    try:
                        os.link(src_cache / name, cache_dir / name)
                    except OSError:
                        shutil.copy2(src_cache / name, cache_dir / name)
        if self.rank == 0:
            what = "autoencoder, heads and dynamics model" if same_dynamics else "autoencoder and heads"
            print(f"initialised from {src_dir}: {what}; training the dynamics model")

    def _make_opt(self) -> torch.optim.Optimizer:
        module = {"ae": self.model.ae, "heads": self.model.heads, "decoder": self.model.ae.decoder}.get(self.phase, self.model.dit)
        params = module.parameters()
        lr = {"ae": self.tc.ae_lr, "heads": self.tc.heads_lr, "decoder": self.tc.decoder_lr}.get(self.phase, self.tc.dit_lr)
        return torch.optim.AdamW(params, lr=lr, weight_decay=self.tc.weight_decay, betas=(0.9, 0.99))

    # ----- checkpoints -----
    def save(self) -> None:
        if self.rank != 0:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_t, opt_j = optimizer_to_tensors(self.opt)
        tensors.update(opt_t)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.noise"] = self.noise_gen.get_state()
        info = {"phase": self.phase, "step": self.step, "dit_done": self.dit_done, "decoder_done": self.decoder_done,
                "np_rng": self.np_rng.bit_generator.state,
                "py_rng": _py_state(), "elapsed_s": self.elapsed(), **opt_j}
        name = f"checkpoints/{self.phase}_{self.step:07d}"
        extra = {"phase": self.phase, "step": self.step, "decoder_steps": self.decoder_done, "dataset": _dataset_info(self.ds), "train": asdict(self.tc),
                 "elapsed_s": round(self.elapsed(), 1)}
        save_checkpoint(self.out / name, self.ema.model, extra=extra, train_tensors=tensors, train_json=info)
        if self.phase != "ae":  # the bank of real openings that reset() draws from
            from worldsim.openings import cut_openings, save_openings

            save_openings(self.out / name, cut_openings(self.ds, self.model.codec, self.model.start_frames, seed=self.tc.seed))
        write_json_atomic(self.out / "latest.json", {"checkpoint": name})
        self._prune()

    def _prune(self, keep: int = 2) -> None:
        import shutil

        ckpts = sorted((self.out / "checkpoints").glob(f"{self.phase}_*"))
        for old in ckpts[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def _restore(self) -> None:
        from worldsim.checkpoint import load as load_ckpt

        latest = self.out / json.loads((self.out / "latest.json").read_text())["checkpoint"]
        tensors, info = load_train_state(latest)
        self.phase, self.step = info["phase"], int(info["step"])
        raw = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(raw)
        self.ema.model.load_state_dict(load_ckpt(latest).state_dict())
        self.dit_done = int(info.get("dit_done", self.step if self.phase == "done" else 0))
        self.decoder_done = int(info.get("decoder_done", 0))
        opt_state: tuple | None = (tensors, info)
        if self.phase == "done":  # a finished run asked for more: carry on the first phase that wants more steps
            self.extending = True
            self.phase, self.step = self._phase_after("ae")
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
            order = {"ae": 0, "dit": 1, "heads": 2, "decoder": 3, "done": 4}

            def keep_line(rec: dict) -> bool:
                if rec["phase"] == self.phase:
                    return rec["step"] <= self.step
                return order[rec["phase"]] < order[self.phase] or self.extending  # a finished run's later phases

            keep = [line for line in (self.out / "log.jsonl").read_text().splitlines() if keep_line(json.loads(line))]
            (self.out / "log.jsonl").write_text("".join(line + "\n" for line in keep))
        if self.rank > 0:  # only rank 0's streams are saved: the others re-derive theirs from (seed, rank, step)
            self.np_rng = np.random.default_rng([self.tc.seed, self.rank, self.step])
            self.noise_gen.manual_seed(self.tc.seed * 1000 + self.rank + 7919 * self.step)
        if self.rank == 0:
            print(f"resumed from {latest} (phase {self.phase}, step {self.step})")

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def _log(self, scalars: dict[str, float], step: int) -> None:
        if self.rank != 0:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"))
        for k, v in scalars.items():
            self.writer.add_scalar(k, v, step)
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps({"phase": self.phase, "step": step, **{k: round(v, 6) for k, v in scalars.items()}}) + "\n")

    def _ddp(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return module

    # ----- phases -----
    def _should_stop(self) -> bool:
        """Count one optimizer step; True when this invocation has used its step or time budget."""
        self.steps_this_run += 1
        if self.stop_after is not None and self.steps_this_run >= self.stop_after:
            return True
        return self.time_limit_s is not None and time.time() - self.started >= self.time_limit_s

    def run(self) -> dict[str, Any]:
        stopped = False
        if self.phase == "ae":
            stopped = self._train_ae()
            if not stopped:
                self._finish_ae()
        if self.phase == "dit" and not stopped:
            stopped = self._train_dit()
            if not stopped:
                self.dit_done = self.step
                self._enter(*self._phase_after("dit"))
        if self.phase == "heads" and not stopped:
            stopped = self._train_heads()
            if not stopped:
                self.model.heads.load_state_dict(self.ema.model.heads.state_dict())
                self.model.heads_trained.fill_(True)
                self.ema.model.heads_trained.fill_(True)
                self._enter(*self._phase_after("heads"))
        if self.phase == "decoder" and not stopped:
            stopped = self._train_decoder()
            if not stopped:
                self.decoder_done = self.step
                self._enter("done", self.dit_done)
        if stopped:
            self.save()
        _barrier()
        result = {"phase": self.phase, "step": self.step, "elapsed_s": round(self.elapsed(), 1), "stopped_early": stopped}
        if self.world > 1:
            result["replicas_in_sync"] = self._check_sync()
        if self.writer:
            self.writer.close()
        return result

    def _phase_after(self, phase: str) -> tuple[str, int]:
        """The phase that follows `phase` and the step it starts at: each later phase runs only while it has steps
        to do, so a finished run given more steps of one phase trains just that phase."""
        if phase == "ae" and self.dit_done < self.tc.dit_steps:
            return "dit", self.dit_done
        # the heads read latents of real frames, not the dynamics model: trained once, they stay valid
        if phase in ("ae", "dit") and not bool(self.model.heads_trained):
            return "heads", 0
        if phase in ("ae", "dit", "heads") and self.decoder_done < self.tc.decoder_steps:
            return "decoder", self.decoder_done
        return "done", self.dit_done

    def _enter(self, phase: str, step: int) -> None:
        self.phase, self.step = phase, step
        self.opt = self._make_opt()
        if phase == "done":
            self.save()

    def _loop(self, prefix: str, total: int, base_lr: float, warmup: int, module: torch.nn.Module, batch: int,
              compute, show: str | None = None, on_step=None, frames_per_step: int | None = None) -> bool:
        """The optimisation loop every phase shares: LR schedule, step, EMA, logging, checkpoints, early stop.
        `compute()` returns (loss, stats) for one batch. True when this invocation stopped before `total`.
        With `TrainConfig.time_budget_s` the dynamics phase's `total` is refitted every 50 steps to the measured
        speed, so the schedule (warm-up, cosine decay) ends when the budget does, on any machine."""
        from tqdm import tqdm

        tc = self.tc
        bar = tqdm(total=total, initial=self.step, desc=prefix, disable=not self.progress)
        t0, seen, step0 = time.time(), 0, self.step
        try:
            while self.step < total:
                if prefix == "dit" and tc.time_budget_s > 0 and self.step - step0 >= 20 and self.step % 50 == 0:
                    total = self._fit_to_budget(total, (time.time() - t0) / (self.step - step0))
                    bar.total = total
                for g in self.opt.param_groups:
                    g["lr"] = _lr(self.step, total, base_lr, warmup)
                loss, stats = compute()
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), tc.grad_clip)
                self.opt.step()
                self.ema.update(self.model, self.step, module)
                self.step += 1
                seen += (frames_per_step or batch) * self.world
                bar.update(1)
                if self.step % tc.log_every == 0:
                    rate = seen / (time.time() - t0)
                    extra = {show: f"{stats[show]:.3f}"} if show else {}
                    bar.set_postfix(loss=f"{loss.item():.4f}", samples_s=f"{rate:.0f}", **extra)
                    self._log({**stats, f"{prefix}_loss": loss.item(), f"{prefix}_samples_per_s": rate}, self.step)
                if self.step % tc.checkpoint_every == 0:
                    self.save()
                if on_step is not None:
                    on_step()
                if self._should_stop():
                    return self.step < total
            return False
        finally:
            bar.close()

    def _fit_to_budget(self, total: int, s_per_step: float) -> int:
        """The dynamics phase's length that ends the run at `time_budget_s` at the measured seconds per step
        (the same on every rank: rank 0's figure is broadcast). Stored in the config, so a resume keeps it."""
        left = self.tc.time_budget_s - self.elapsed()
        new = torch.tensor(float(max(self.step + 1, self.step + left / max(s_per_step, 1e-6))))
        if dist.is_initialized():
            dist.broadcast(new, 0)
        self.tc.dit_steps = int(new.item())
        return self.tc.dit_steps

    def _train_ae(self) -> bool:
        src = FrameSource(self.ds, self.train_eps)
        net = self._ddp(self.model.ae)
        tc = self.tc

        def compute():
            x = _pixels(src.sample(tc.ae_batch, self.np_rng).to(self.device))
            with _autocast(self.device, self.bf16):
                return net(x)  # Autoencoder.forward is its loss, so DDP sees the whole step

        return self._loop("ae", tc.ae_steps, tc.ae_lr, tc.warmup, self.model.ae, tc.ae_batch, compute, show="ae_psnr")

    @torch.no_grad()
    def _finish_ae(self) -> None:
        """Freeze the (EMA) autoencoder, standardise its latents, encode the dataset once."""
        self.model.ae.load_state_dict(self.ema.model.ae.state_dict())
        src = FrameSource(self.ds, self.train_eps)
        rng = np.random.default_rng(self.tc.seed)
        frames = src.sample(min(2048, int(src.lengths.sum())), rng).to(self.device)
        z = torch.cat([self.model.ae.encode(_pixels(frames[i:i + 256])) for i in range(0, len(frames), 256)])
        self.model.latent_mean.copy_(z.mean(dim=(0, 2, 3)))
        self.model.latent_std.copy_(z.std(dim=(0, 2, 3)).clamp_min(1e-3))
        self.ema.model.load_state_dict(self.model.state_dict())
        self.phase, self.step = "dit", 0
        self.opt = self._make_opt()
        self._latent_cache()
        self.model.train()
        self.save()

    def _train_dit(self) -> bool:
        if self.model.cfg.generation == 2:
            return self._train_sequences()
        tc = self.tc
        cache = self._latent_cache()
        k1 = self.model.context + 1
        val_starts_lo = cache.offsets[self.val_eps[0]] if self.val_eps else cache.offsets[-1]
        starts = cache.windows(k1)
        starts = starts[starts < val_starts_lo]  # training windows only from training episodes
        if len(starts) == 0:
            raise ValueError("no training windows: the dataset is too small for this context length")
        dit = self._dynamics_net()

        def compute():
            pick = self.np_rng.choice(starts, tc.dit_batch)
            z, a, known, pitch = (t.to(self.device) for t in cache.batch(pick, k1))
            moved = cache.moved_last(pick, k1).to(self.device) if self.model.trains_on_pixel_prior else None
            with _autocast(self.device, self.bf16):
                loss = self.model.dynamics_loss(z, a, known, tc.ctx_aug_prob, tc.ctx_aug_max, self.noise_gen, net=dit,
                                                 sampler_level_prob=tc.sampler_level_prob, pitch=pitch,
                                                 pitch_drop=tc.pitch_drop, moved=moved)
            return loss, {"lr": self.opt.param_groups[0]["lr"]}

        return self._loop("dit", tc.dit_steps, tc.dit_lr, tc.warmup, self.model.dit, tc.dit_batch, compute,
                          on_step=self._sample_now)

    def _dynamics_net(self) -> torch.nn.Module:
        """The dynamics transformer as the loss calls it (DDP-wrapped, compiled when asked); the autoencoder frozen."""
        self.model.train()
        self.model.ae.requires_grad_(False)
        dit = self._ddp(self.model.dit)
        return torch.compile(dit) if self.tc.compile else dit

    def _sample_now(self) -> None:
        if self.step % self.tc.sample_every == 0 and self.rank == 0:
            self.sample_video()

    def _train_sequences(self) -> bool:
        """The space-time model: shortcut forcing on latent sequences, alternating short and long ones (the same
        frames per batch), so the model learns both many starts and rollouts longer than its context."""
        tc = self.tc
        cache = self._latent_cache()
        val_lo = cache.offsets[self.val_eps[0]] if self.val_eps else cache.offsets[-1]
        lengths = sorted({tc.seq_len, tc.long_seq})
        starts = {}
        for n in lengths:
            s = cache.windows(n)
            starts[n] = s[s + n <= val_lo]  # whole sequences from training episodes only
            if len(starts[n]) == 0:
                raise ValueError(f"no training sequence of {n} frames: the episodes are too short for seq_len/long_seq")
        frames_per_batch = tc.dit_batch * tc.seq_len
        dit = self._dynamics_net()

        def compute():
            n = lengths[self.step % len(lengths)]
            pick = self.np_rng.choice(starts[n], max(1, frames_per_batch // n))
            z, a, known, _ = (t.to(self.device) for t in cache.batch(pick, n))
            moved = cache.moved_seq(pick, n).to(self.device) if self.model.trains_on_pixel_prior else None
            inputs = prior = None
            if n == tc.seq_len and tc.self_forcing > 0 and self.np_rng.random() < tc.self_forcing:
                inputs, prior = self._own_dream(z, a, known, moved)
            with _autocast(self.device, self.bf16):
                loss, parts = self.model.sequence_loss(z, a, known, tc.bootstrap_share, tc.rollout_share, tc.context_min,
                                                       self.noise_gen, net=dit, moved=moved, inputs=inputs, prior=prior)
            return loss, {"lr": self.opt.param_groups[0]["lr"], **parts}

        return self._loop("dit", tc.dit_steps, tc.dit_lr, tc.warmup, self.model.dit, tc.dit_batch, compute,
                          on_step=self._sample_now, frames_per_step=frames_per_batch)

    @torch.no_grad()
    def _own_dream(self, z: torch.Tensor, a: torch.Tensor, known: torch.Tensor, moved: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self forcing: the model dreams the frames of real sequences z (B, L, ...) after their first
        `start_frames`, under the recorded actions, exactly as a dream does (its sampler, its context noise, the
        motion prior made from its own last frame). Returns those network inputs (the start frames real) and each
        frame's motion prior; the loss still targets the real frames, so the model learns to pull a drifting past
        back toward the game instead of compounding its own one-step error."""
        from worldsim.rollout import SpaceTimeDreamer

        m = self.model
        s = m.start_frames
        was_training = m.training
        m.eval().set_precision("bf16" if self.bf16 else "fp32")
        try:
            frames = m.decode(z[:, :s])
            seeds = [int(x) for x in self.np_rng.integers(0, 2**31 - 1, len(z))]
            dream = SpaceTimeDreamer(m, frames, a[:, 1:s], seeds=seeds)
            out, priors = z.clone(), None
            if moved is not None:
                priors = m.sequence_prior(moved, a, known)
            for t in range(s, z.shape[1]):
                dream.step(a[:, t])
                out[:, t] = dream.pending
                if priors is not None:
                    priors[:, t] = dream.pending_prior
        finally:
            m.set_precision("fp32")
            m.train(was_training)
        return out, priors

    def _train_heads(self) -> bool:
        """Reward/termination heads on (frame t, frame t+1, action t) of the real training episodes."""

        tc = self.tc
        cache = self._latent_cache()
        events, term = _outcomes(self.ds, cache, self.model.cfg.outcome_events)
        val_lo = cache.offsets[self.val_eps[0]] if self.val_eps else cache.offsets[-1]
        idx = np.flatnonzero(np.asarray(cache.known) > 0)
        idx = idx[idx < val_lo]
        outcomes = np.concatenate([events, term[:, None]], axis=1)  # (N, E + 1)
        strata = [idx[outcomes[idx, j] > 0] for j in range(outcomes.shape[1])]
        strata = [s for s in strata if len(s)] or [idx]

        def draw(rng: np.random.Generator) -> np.ndarray:
            """Half the batch uniform, the other half from each outcome's positives in turn."""
            half = tc.heads_batch // 2
            rare = [rng.choice(strata[i % len(strata)]) for i in range(tc.heads_batch - half)]
            return np.concatenate([rng.choice(idx, half), np.asarray(rare, np.int64)])

        # the log-odds the oversampling adds to each outcome, measured on the sampler, removed at prediction
        probe = np.concatenate([draw(np.random.default_rng(tc.seed + i)) for i in range(64)])
        eps = 0.5 / len(idx)
        logit = lambda p: np.log(p.clip(eps, 1 - eps) / (1 - p.clip(eps, 1 - eps)))  # noqa: E731
        p_real = outcomes[idx].mean(0)
        shift = np.where(p_real > 0, logit(outcomes[probe].mean(0)) - logit(p_real), 0.0)  # never seen: no shift
        self.model.heads.prior_shift.copy_(torch.from_numpy(shift).float())
        self.model.heads.train()
        heads = self._ddp(self.model.heads)

        def compute():
            pick = draw(self.np_rng)
            z = torch.from_numpy(cache.latents[np.stack([pick - 1, pick], 1)].astype(np.float32)).to(self.device)
            a = self.model.action_features(torch.from_numpy(np.asarray(cache.actions[pick])).to(self.device))
            logits, term_logit = heads(z[:, 0], z[:, 1], a)
            return outcome_loss(logits, term_logit, torch.from_numpy(events[pick]).to(self.device),
                                torch.from_numpy(term[pick]).to(self.device))

        return self._loop("heads", tc.heads_steps, tc.heads_lr, min(tc.warmup, tc.heads_steps // 10 + 1),
                          self.model.heads, tc.heads_batch, compute, show="heads_event_recall")

    def _train_decoder(self) -> bool:
        """Decoder fine-tuning (as GameNGen does): more reconstruction training for the decoder alone, on the latents
        the frozen encoder gave every training frame. The latents do not change, so the dynamics model, the heads
        and the latent cache stay valid, and every generated frame comes out sharper."""
        from worldsim.autoencoder import reconstruction_loss

        tc = self.tc
        cache = self._latent_cache()
        val_lo = int(cache.offsets[self.val_eps[0]]) if self.val_eps else int(cache.offsets[-1])
        slot_episode = json.loads((cache.root / "index.json").read_text())["episodes"]
        src = FrameSource(self.ds, self.train_eps)
        self.model.train()
        self.model.ae.encoder.requires_grad_(False)
        self.model.ae.decoder.requires_grad_(True)
        dec = self._ddp(self.model.ae.decoder)
        mean, std = self.model.latent_mean[:, None, None], self.model.latent_std[:, None, None]

        def compute():
            idx = np.sort(self.np_rng.integers(0, val_lo, tc.decoder_batch))
            slot = np.searchsorted(cache.offsets, idx, side="right") - 1
            frames = np.stack([src.frames(slot_episode[s])[i - cache.offsets[s]] for s, i in zip(slot, idx)])
            z = torch.from_numpy(cache.latents[idx].astype(np.float32)).to(self.device) * std + mean
            x = _pixels(torch.from_numpy(frames).to(self.device))
            with _autocast(self.device, self.bf16):
                y = dec(z)
            return reconstruction_loss(y, x, "decoder")

        return self._loop("decoder", tc.decoder_steps, tc.decoder_lr, min(tc.warmup, tc.decoder_steps // 10 + 1),
                          self.model.ae.decoder, tc.decoder_batch, compute, show="decoder_psnr")

    def _latent_cache(self) -> LatentCache:
        """The run's latent cache, rebuilt when the run was resumed on a machine without it."""
        cache_dir = self.out / "latents"
        # encoded at the autoencoder's training numerics (bf16 autocast where it trained so): ~2x faster on a CPU
        self.model.eval().set_precision("bf16" if self.bf16 else "fp32")
        try:
            if not LatentCache.exists(cache_dir):
                if self.rank == 0:
                    LatentCache.build(cache_dir, self.ds, self.model, list(range(len(self.ds))), progress=self.progress)
                _barrier()
            if self.model.trains_on_pixel_prior and not (cache_dir / "moved.f16").exists():
                if self.rank == 0:
                    LatentCache.write_pixel_prior(cache_dir, self.ds, self.model, progress=self.progress)
                _barrier()
        finally:
            self.model.set_precision("fp32")
        return LatentCache(cache_dir)

    @torch.no_grad()
    def sample_video(self, length: int = 60) -> Path | None:
        """An open-loop dream next to the real clip it started from (held-out episode when there is one)."""
        from worldsim.rollout import dream_episode
        from worldsim.video import write_mp4

        ep = self.ds.episode(self.val_eps[0] if self.val_eps else 0)
        n = min(length, len(ep))
        k = self.model.start_frames
        if n < k + 1:
            return None
        flat = self.model.codec.encode_batch({key: v[:n] for key, v in ep.actions.items()})
        dream = dream_episode(self.ema.model.eval(), ep.frames[: n + 1], flat, seed=0, pitch=ep.view_pitch()[: n + 1])
        real = ep.frames[k: n + 1]
        strip = np.concatenate([real, dream], axis=2)
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


def _outcome_events(ds: Dataset) -> tuple[str, ...]:
    """What the outcome heads learn from this dataset: its count columns where it records them, else the reward."""
    keys = ds.info.get("count_keys")
    return tuple(keys) if keys else ("reward",)


def _outcomes(ds: Dataset, cache: LatentCache, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per cached frame i: the events (N, E) of the transition that led into it (each count of `names` rose, or
    "reward": the reward was positive) and its termination (N,); zeros for first frames."""
    n = int(cache.offsets[-1])
    events, term = np.zeros((n, len(names)), np.float32), np.zeros(n, np.float32)
    keys = list(ds.info.get("count_keys") or [])
    for e, off in zip(json.loads((cache.root / "index.json").read_text())["episodes"], cache.offsets[:-1]):
        ep = ds.episode(e)
        rows = slice(off + 1, off + 1 + len(ep))
        events[rows] = episode_events(ep, names, keys)
        term[rows] = ep.terminations
    return events, term


def _pixels(frames: torch.Tensor) -> torch.Tensor:
    from worldsim.autoencoder import to_pixels

    return to_pixels(frames)


def _space_json(ds: Dataset) -> str:
    from worldsim.actions import space_to_json

    return space_to_json(ds.action_space)


def _dataset_info(ds: Dataset) -> dict[str, Any]:
    return {"path": str(ds.root), "episodes": len(ds), "steps": ds.total_steps, **{k: v for k, v in ds.info.items()}}


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
    6,000 on resume); only what `overrides` names changes."""
    from worldsim.checkpoint import read_config
    from worldsim.config import ModelConfig, Preset, TrainConfig, preset

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
