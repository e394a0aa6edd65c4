"""The latent cache: every frame of a dataset encoded once, read as latent sequences by the dynamics model.

Frames are read from the dataset's memory-mapped Arrow files (nothing is loaded whole). For the dynamics model
the frames are encoded once into a latent cache (float16 memmap), so each training step reads a few KB per window.
Windows never cross an episode boundary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from worldsim.data.dataset import Dataset
from worldsim.io.atomic import write_json_atomic
from worldsim.model.actions import ActionCodec

PRIOR_TURNS = ("action", "view", "rotation")
MOVED = {"action": "moved.f16", "view": "moved_view.f16", "rotation": "moved_rot.f16"}  # moved frames per kind of prior
BY_VIEW = ("view", "rotation")  # the priors moved by the view's recorded turn (turns.f32)
#: every file a cache may hold: what a warm start links from its source run
FILES = ("latents.f16", "actions.f32", "known.u8", *MOVED.values(), "turns.f32", "pitch.f32", "index.json")


class LatentCache:
    """Standardised latents of every frame plus, per frame, the flat action that led into it.

    Files in `root`: latents.f16 (N, C, h, w), actions.f32 (N, A), known.u8 (N,), index.json (episode offsets).
    Optional moved.f16 (N, C, h, w): for models trained on the pixel-space motion prior, each frame's previous
    frame moved in pixels by the frame's camera action and encoded (zeros for an episode's first frame). Or, for
    priors moved by the view's recorded turn (`TrainConfig.prior_turn` "view"), moved_view.f16 and turns.f32
    (N, 2): the [pitch, yaw] degrees the view turned into each frame; rotated by it (the rotation geometry,
    "rotation"), moved_rot.f16, turns.f32 and pitch.f32 (N,): the view's pitch at each frame (NaN: unknown).
    """

    def __init__(self, root: str | os.PathLike, prior_turn: str = "action"):
        """prior_turn: which moved frames the cache reads, those moved by the camera action ("action"), shifted by
        the view's recorded turn ("view") or rotated by it ("rotation")."""
        if prior_turn not in PRIOR_TURNS:
            raise ValueError(f"prior_turn must be one of {PRIOR_TURNS}, got {prior_turn!r}")
        self.root = Path(root)
        meta = json.loads((self.root / "index.json").read_text())
        self.offsets = np.array(meta["offsets"])  # episode e spans [offsets[e], offsets[e+1])
        self.episodes: list[int] = meta["episodes"]  # the dataset's episodes held, in order
        shape = tuple(meta["latent_shape"])
        n = int(self.offsets[-1])
        self.latents = np.memmap(self.root / "latents.f16", np.float16, "r", shape=(n, *shape))
        self.actions = np.memmap(self.root / "actions.f32", np.float32, "r", shape=(n, meta["action_dim"]))
        self.known = np.memmap(self.root / "known.u8", np.uint8, "r", shape=(n,))
        moved = self.root / MOVED[prior_turn]
        self.moved = np.memmap(moved, np.float16, "r", shape=(n, *shape)) if moved.exists() else None
        turns = self.root / "turns.f32"
        self.turns = np.memmap(turns, np.float32, "r", shape=(n, 2)) if prior_turn in BY_VIEW and turns.exists() else None
        pitch = self.root / "pitch.f32"
        self.pitch = np.memmap(pitch, np.float32, "r", shape=(n,)) if prior_turn == "rotation" and pitch.exists() else None
        self.prior_turn = prior_turn

    @staticmethod
    def exists(root: str | os.PathLike) -> bool:
        return (Path(root) / "index.json").exists()

    def prefix_of(self, ds: Dataset, episodes: list[int]) -> int:
        """How many of `episodes` (of `ds`) this cache holds already, as its own first episodes with the same
        lengths: a grown dataset's cache reuses their rows (the frozen autoencoder would encode them again to the
        same latents) and encodes only the new episodes."""
        held = self.episodes
        k = 0
        while (k < len(held) and k < len(episodes) and held[k] == episodes[k]
               and self.offsets[k + 1] - self.offsets[k] == ds.episode_length(episodes[k]) + 1):
            k += 1
        return k

    @staticmethod
    @torch.no_grad()
    def build(root: str | os.PathLike, ds: Dataset, model, episodes: list[int], batch: int = 256, progress: bool = True,
              reuse: LatentCache | None = None) -> LatentCache:
        """Encode `episodes` of `ds` into a cache at `root` (written aside, then moved in: a stop leaves the old
        cache or the new one). reuse: an older cache of the same autoencoder whose first episodes are copied,
        not encoded again (`prefix_of`)."""
        from tqdm import tqdm

        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        codec: ActionCodec = model.codec
        lengths = [ds.episode_length(e) + 1 for e in episodes]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        n = int(offsets[-1])
        c = model.cfg.ae.latent_channels
        lh, lw = model.cfg.latent_hw
        tmp = {name: root / f".{name}.tmp" for name in ("latents.f16", "actions.f32", "known.u8")}
        lat = np.memmap(tmp["latents.f16"], np.float16, "w+", shape=(n, c, lh, lw))
        act = np.memmap(tmp["actions.f32"], np.float32, "w+", shape=(n, codec.dim))
        known = np.memmap(tmp["known.u8"], np.uint8, "w+", shape=(n,))
        device = model.latent_mean.device
        kept = reuse.prefix_of(ds, episodes) if reuse is not None else 0
        if kept:
            end = int(offsets[kept])
            lat[:end], act[:end], known[:end] = reuse.latents[:end], reuse.actions[:end], reuse.known[:end]
        for e, off in tqdm(list(zip(episodes, offsets[:-1]))[kept:], desc="encode latents", disable=not progress):
            ep = ds.episode(e)
            for i in range(0, len(ep.frames), batch):
                frames = torch.from_numpy(np.array(ep.frames[i:i + batch])).to(device)
                lat[off + i: off + i + len(frames)] = model.encode(frames).cpu().numpy().astype(np.float16)
            flat = codec.encode_batch(ep.actions)
            act[off + 1: off + len(ep.frames)] = flat
            known[off + 1: off + len(ep.frames)] = 1
        for m in (lat, act, known):
            m.flush()
        for name, t in tmp.items():
            os.replace(t, root / name)
        write_json_atomic(root / "index.json", {"offsets": offsets.tolist(), "latent_shape": [c, lh, lw],
                                                "action_dim": codec.dim, "episodes": episodes})
        return LatentCache(root)

    @staticmethod
    @torch.no_grad()
    def write_pixel_prior(root: str | os.PathLike, ds: Dataset, model, batch: int = 256, progress: bool = True,
                          reuse: LatentCache | None = None, prior_turn: str = "action") -> Path:
        """moved.f16 for a cache of `ds` built with `model`'s autoencoder: per frame, `model.prior.moved` of the
        recorded frame before it under the action that led into it: one encoder pass per frame the camera moved (a
        frame it did not move is its own moved frame, already encoded in the cache, which must be built at the
        same precision). reuse: an older cache (opened for the same prior_turn) whose moved frames of its first
        episodes are copied (`build`). prior_turn "view": moved_view.f16, each frame moved by the turn its view
        made (the episode's recorded poses; the camera action where an episode has none), and those turns in
        turns.f32; "rotation": moved_rot.f16, the same turns made by a model of the rotation geometry, from each
        frame's recorded pitch (level where an episode has no poses)."""
        from tqdm import tqdm

        root = Path(root)
        cache = LatentCache(root)
        meta = json.loads((root / "index.json").read_text())
        name = MOVED[prior_turn]
        tmp = root / f".{name}.tmp"
        out = np.memmap(tmp, np.float16, "w+", shape=cache.latents.shape)  # a new file reads as zeros: each episode's first frame
        cam = model.prior.camera
        view_prior = prior_turn in BY_VIEW
        if (prior_turn == "rotation") != (model.prior.geometry == "rotation"):
            raise ValueError(f"moved frames for prior_turn {prior_turn!r} need a model of that geometry "
                             f"(ModelConfig.prior_geometry {model.prior.geometry!r})")
        turns = np.array(cache.actions[:, cam]) if view_prior else None  # [pitch, yaw]: the action's, or the view's below
        pitches = np.full(len(cache.latents), np.nan, np.float32) if prior_turn == "rotation" else None
        device = model.latent_mean.device
        spans = list(zip(meta["episodes"], cache.offsets[:-1], cache.offsets[1:]))
        usable = (reuse is not None and reuse.prior_turn == prior_turn and reuse.moved is not None
                  and (prior_turn == "action" or reuse.turns is not None)
                  and (prior_turn != "rotation" or reuse.pitch is not None))
        kept = reuse.prefix_of(ds, meta["episodes"]) if usable else 0
        if kept:
            end = cache.offsets[kept]
            out[:end] = reuse.moved[:end]
            if view_prior:
                turns[:end] = reuse.turns[:end]
            if pitches is not None:
                pitches[:end] = reuse.pitch[:end]
        for e, a, b in tqdm(spans[kept:], desc="encode moved frames", disable=not progress):
            ep = ds.episode(e)
            frames = ep.frames
            if len(frames) != b - a:
                raise ValueError(f"{ds.root}: episode {e} has {len(frames)} frames, {b - a} in cache {root}")
            view = ep.view_turns() if view_prior else None
            view_pitch = ep.view_pitch()  # of each frame (NaN: level, for the rotation)
            pitch = torch.from_numpy(view_pitch).to(device)
            if pitches is not None:
                pitches[a:b] = view_pitch
            if view is not None:
                turns[a + 1:b] = view
            for i in range(1, b - a, batch):
                j = min(i + batch, b - a)
                act = torch.from_numpy(np.array(cache.actions[a + i:a + j])).to(device)
                if view_prior:
                    act[:, cam] = torch.from_numpy(turns[a + i:a + j]).to(device)
                dy, dx = model.prior.pixel_shift(act)
                still = ((dy == 0) & (dx == 0)).cpu().numpy()
                out[a + i:a + j][still] = cache.latents[a + i - 1:a + j - 1][still]
                if (~still).any():
                    prev = torch.from_numpy(np.array(frames[i - 1:j - 1])[~still]).to(device)
                    rows = torch.from_numpy(~still).to(device)
                    moved = model.prior.moved(prev, act[rows], pitch[i - 1:j - 1][rows])
                    out[a + i:a + j][~still] = moved.cpu().numpy().astype(np.float16)
        out.flush()
        del out
        if view_prior:
            turns_tmp = root / ".turns.f32.tmp"
            turns.astype(np.float32).tofile(turns_tmp)
            os.replace(turns_tmp, root / "turns.f32")
        if pitches is not None:
            pitch_tmp = root / ".pitch.f32.tmp"
            pitches.tofile(pitch_tmp)
            os.replace(pitch_tmp, root / "pitch.f32")
        os.replace(tmp, root / name)
        return root / name

    def windows(self, frames: int) -> np.ndarray:
        """Start indices of every window of `frames` consecutive frames inside one episode."""
        starts = [np.arange(a, b - frames + 1) for a, b in zip(self.offsets[:-1], self.offsets[1:]) if b - a >= frames]
        if not starts:
            raise ValueError(f"no episode has {frames} frames: cannot train with context {frames - 1}")
        return np.concatenate(starts)

    def still_windows(self, frames: int, noop: np.ndarray) -> np.ndarray:
        """Start indices of the windows of `frames` frames inside one episode in which every action after the
        first frame is `noop` (flat: keys released, camera unmoved): the player stands still throughout."""
        still = np.all(np.asarray(self.actions) == np.asarray(noop, np.float32)[None], axis=1) & (np.asarray(self.known) > 0)
        count = np.concatenate([[0], np.cumsum(still)])
        w = self.windows(frames)
        return w[count[w + frames] - count[w + 1] == frames - 1]

    def walk_windows(self, frames: int, at: int, moving: list[slice]) -> np.ndarray:
        """Start indices of the windows of `frames` frames inside one episode whose actions into frames `at` and
        `at` + 1 both press a movement key (any of the flat slices `moving`): the player walks there, steadily
        (so frames `at`..`at`+1 show walking, not a stop's coasting)."""
        a = np.asarray(self.actions)
        walking = np.zeros(len(a), bool)
        for sl in moving:
            walking |= (a[:, sl] > 0.5).any(axis=1)
        walking &= np.asarray(self.known) > 0
        w = self.windows(frames)
        return w[walking[w + at] & walking[w + at + 1]]

    def batch(self, starts: np.ndarray, frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Windows from `starts`: latents (B, F, C, h, w), the actions leading into each frame (B, F, A), known (B, F)."""
        idx = starts[:, None] + np.arange(frames)[None]
        z = torch.from_numpy(self.latents[idx].astype(np.float32))
        a = torch.from_numpy(np.asarray(self.actions[idx]))
        k = torch.from_numpy(self.known[idx].astype(np.float32))
        return z, a, k

    def moved_seq(self, starts: np.ndarray, frames: int) -> torch.Tensor:
        """The pixel-moved latents (B, F, C, h, w) of every frame of each window (its motion prior, unfilled)."""
        if self.moved is None:
            raise ValueError(f"{self.root} has no {MOVED[self.prior_turn]}: build it with LatentCache.write_pixel_prior")
        idx = np.asarray(starts)[:, None] + np.arange(frames)[None]
        return torch.from_numpy(self.moved[idx].astype(np.float32))

    def view_pitch(self, starts: np.ndarray, frames: int) -> torch.Tensor | None:
        """The view's pitch (B, F) at every frame of each window (NaN: unknown), where the cache holds it (the
        rotation prior turns a dream's frames from it); None otherwise."""
        if self.pitch is None:
            return None
        idx = np.asarray(starts)[:, None] + np.arange(frames)[None]
        return torch.from_numpy(np.asarray(self.pitch[idx]))

    def prior_actions(self, starts: np.ndarray, frames: int, flat: torch.Tensor, camera: slice) -> torch.Tensor:
        """The actions (B, F, A) that moved each frame's prior: `flat` itself, or with the view's recorded turns
        in its camera entries when the cache reads priors moved by the view (so the strip the prior fills is the
        one its move revealed)."""
        if self.turns is None:
            return flat
        idx = np.asarray(starts)[:, None] + np.arange(frames)[None]
        out = flat.clone()
        out[..., camera] = torch.from_numpy(np.asarray(self.turns[idx])).to(flat.device, flat.dtype)
        return out
