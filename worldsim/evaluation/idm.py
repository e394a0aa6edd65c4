"""Inverse dynamics (IDM): two consecutive frames -> the action taken between them. The controllability meter.

PSNR says a dream looks like the real clip; it does not say the dream did what the action asked. MineWorld's
answer: train an IDM on real footage only, then ask it which action leads from one dreamed frame to the next.
If the dream follows the actions, the IDM reads them back from dreamed pairs about as well as from real ones.
Keys are binary classifications (F1), the camera a regression on the signed log of degrees (error in degrees).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium.spaces import Box, Discrete
from torch import nn

from worldsim.data.dataset import Dataset, FrameSource
from worldsim.io.atomic import temp_sibling, write_json_atomic
from worldsim.model.actions import ActionCodec, space_from_json, space_to_json


def _slog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def _unslog(y: torch.Tensor) -> torch.Tensor:
    return torch.sign(y) * torch.expm1(y.abs())


class InverseDynamics(nn.Module):
    """Both frames and their difference stacked as 9 channels -> 4 stride-2 convolutions -> key logits + camera."""

    def __init__(self, codec: ActionCodec, width: int = 32):
        super().__init__()
        self.codec = codec
        self.keys = [k for k, s in codec.space.spaces.items() if isinstance(s, Discrete) and s.n == 2]
        self.boxes = [k for k, s in codec.space.spaces.items() if isinstance(s, Box)]
        self.n_box = sum(codec.slices[k].stop - codec.slices[k].start for k in self.boxes)
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(9, w, 4, 2, 1), nn.GELU(), nn.Conv2d(w, 2 * w, 4, 2, 1), nn.GELU(),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.GELU(), nn.Conv2d(4 * w, 4 * w, 4, 2, 1), nn.GELU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16 * w, 256), nn.GELU(),
            nn.Linear(256, len(self.keys) + self.n_box))

    def forward(self, prev: torch.Tensor, nxt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, H, W, 3) pairs -> key logits (B, n_keys), camera in signed-log degrees (B, n_box)."""
        a = prev.permute(0, 3, 1, 2).float() / 127.5 - 1
        b = nxt.permute(0, 3, 1, 2).float() / 127.5 - 1
        out = self.net(torch.cat([a, b, b - a], dim=1))
        return out[:, :len(self.keys)], out[:, len(self.keys):]

    def targets(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = torch.stack([flat[:, self.codec.slices[k].start] for k in self.keys], dim=1)
        box = torch.cat([flat[:, self.codec.slices[k]] for k in self.boxes], dim=1) if self.boxes else flat[:, :0]
        return keys, _slog(box)

    @torch.no_grad()
    def predict(self, prev: np.ndarray, nxt: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Pressed keys (N, n_keys) bool and camera degrees (N, n_box)."""
        self.eval()
        keys, box = [], []
        for i in range(0, len(prev), batch):
            k, c = self(torch.from_numpy(np.array(prev[i:i + batch])), torch.from_numpy(np.array(nxt[i:i + batch])))
            keys.append((k > 0).numpy())
            box.append(_unslog(c).numpy())
        return np.concatenate(keys), np.concatenate(box)


class _Pairs(FrameSource):
    """Random (frame t, frame t+1, flat action t) triples: FrameSource's kept-open episodes, plus each episode's
    actions encoded once."""

    def __init__(self, ds: Dataset, episodes: list[int], codec: ActionCodec):
        super().__init__(ds, episodes)
        self.codec = codec
        self.transitions = self.lengths - 1
        self._actions: dict[int, np.ndarray] = {}

    def actions(self, e: int) -> np.ndarray:
        if e not in self._actions:
            self._actions[e] = self.codec.encode_batch(self.ds.episode(e).actions).astype(np.float32)
        return self._actions[e]

    def sample_pairs(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        eps = rng.choice(len(self.episodes), size=n, p=self.transitions / self.transitions.sum())
        prev, nxt, flat = [], [], []
        for i in eps:
            e = self.episodes[i]
            t = int(rng.integers(self.transitions[i]))
            prev.append(self.frames(e)[t])
            nxt.append(self.frames(e)[t + 1])
            flat.append(self.actions(e)[t])
        return np.stack(prev), np.stack(nxt), np.stack(flat)


def train_idm(ds: Dataset, episodes: list[int], codec: ActionCodec, steps: int = 2000, batch: int = 128,
              lr: float = 1e-3, seed: int = 0, progress: bool = True) -> InverseDynamics:
    """Fit an IDM on real (frame t, frame t+1, action t) triples of `episodes` (never the evaluation ones)."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    idm = InverseDynamics(codec)
    pairs = _Pairs(ds, episodes, codec)
    opt = torch.optim.AdamW(idm.parameters(), lr=lr, weight_decay=0.01)
    idm.train()
    bar = tqdm(range(steps), desc="idm", disable=not progress)
    for step in bar:
        prev, nxt, flat = pairs.sample_pairs(batch, rng)
        key_t, box_t = idm.targets(torch.from_numpy(flat))
        key_p, box_p = idm(torch.from_numpy(prev), torch.from_numpy(nxt))
        loss = F.binary_cross_entropy_with_logits(key_p, key_t) + F.smooth_l1_loss(box_p, box_t)
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return idm.eval()


def save_idm(idm: InverseDynamics, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path / "idm.safetensors")
    save_file({k: v.contiguous() for k, v in idm.state_dict().items()}, str(tmp))
    tmp.replace(path / "idm.safetensors")
    write_json_atomic(path / "idm.json", {"action_space": space_to_json(idm.codec.space), **(info or {})})
    return path


def load_idm(path: str | Path) -> InverseDynamics:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        meta = json.loads((path / "idm.json").read_text())
        idm = InverseDynamics(ActionCodec(space_from_json(meta["action_space"])))
        idm.load_state_dict(load_file(str(path / "idm.safetensors")))
    except (OSError, KeyError, json.JSONDecodeError, SafetensorError, RuntimeError) as e:
        raise ValueError(f"{path}: not a readable inverse-dynamics model ({e})") from e
    return idm.eval()


def idm_scores(idm: InverseDynamics, keys_pred: np.ndarray, cam_pred: np.ndarray, flat: np.ndarray) -> dict[str, Any]:
    """Key F1 (micro over all keys, and per key) and camera mean absolute error (degrees) against true actions."""
    key_t, box_t = idm.targets(torch.from_numpy(np.asarray(flat, np.float32)))
    key_t = key_t.numpy() > 0.5
    cam_t = _unslog(box_t).numpy()

    def f1(p: np.ndarray, t: np.ndarray) -> float:
        tp, fp, fn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum()
        return float(2 * tp / max(2 * tp + fp + fn, 1))

    per_key = {k: round(f1(keys_pred[:, i], key_t[:, i]), 4) for i, k in enumerate(idm.keys) if key_t[:, i].any()}
    return {"key_f1": round(f1(keys_pred, key_t), 4), "key_f1_per_key": per_key,
            "camera_mae_deg": round(float(np.abs(cam_pred - cam_t).mean()), 4) if cam_t.size else None,
            "pairs": int(len(flat))}
