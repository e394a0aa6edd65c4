"""Open-loop evaluation on held-out real episodes: dreamed frames vs the real ones, per horizon step.

For each clip: the model starts from K real frames (and the K-1 real actions between them), replays the clip's
real actions open-loop for H steps, and each dreamed frame is compared with the real frame at the same step.
Four baselines share the table: copy-last-frame (the last real context frame repeated), camera-shift (that
frame moved in pixels as the clip's camera actions turn the view, at the model's pixels per degree: what a
picture that only follows the camera scores) and action-blind (the same model and context, every action
replaced by the no-op): a model that does not beat the first two is not predicting, one that does not beat the
third is not using the actions. The fourth, walk-blind (every movement key released, the camera and the rest kept), says
whether walking is among the actions it uses: the camera's effect is large and easy, walking's is small in the
open and large in a hut, so the action-blind gap alone can hide a model that ignores the walking keys.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from worldsim.data.dataset import Dataset
from worldsim.evaluation.idm import InverseDynamics, idm_scores
from worldsim.evaluation.motion import camera_response, frame_shift
from worldsim.model.actions import MOVEMENT_KEYS
from worldsim.model.world_model import WorldModel
from worldsim.sampling.sampler import Sampler

MAX_PSNR = 60.0  # identical frames (a still view renders identically) score this, not infinity, so means stay finite


def frame_metrics(pred: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame PSNR (at most `MAX_PSNR`) and SSIM of uint8 (N, H, W, 3) frames (torchmetrics)."""
    p = torch.from_numpy(np.asarray(pred)).permute(0, 3, 1, 2).float() / 255.0
    r = torch.from_numpy(np.asarray(real)).permute(0, 3, 1, 2).float() / 255.0
    psnr = peak_signal_noise_ratio(p, r, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(p, r, data_range=1.0, reduction="none")
    return psnr.clamp(max=MAX_PSNR).numpy(), ssim.numpy()


def clips(ds: Dataset, episodes: list[int], k: int, horizon: int, stride: int) -> list[tuple[int, int]]:
    """(episode, start) pairs: each clip needs k context frames + horizon future frames inside one episode."""
    out = []
    for e in episodes:
        n = ds.episode_length(e) + 1
        out += [(e, s) for s in range(0, n - k - horizon + 1, stride)]
    return out


def clip_batch(model: WorldModel, eps: dict, group: list[tuple[int, int]], horizon: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For (episode, start) clips of loaded episodes `eps`: the start frames (B, k, H, W, 3), the real frames of
    the `horizon` steps after them, the flat actions (B, k - 1 + horizon, A) from the first start frame on, and the
    view's pitch at the last start frame (B,) (NaN without poses); k = the model's start frames."""
    k = model.start_frames
    ctx = np.stack([eps[e].frames[s:s + k] for e, s in group])
    real = np.stack([eps[e].frames[s + k:s + k + horizon] for e, s in group])
    flat = np.stack([model.codec.encode_batch({a: v[s:s + k - 1 + horizon] for a, v in eps[e].actions.items()})
                     for e, s in group])
    pitch = np.array([eps[e].view_pitch()[s + k - 1] for e, s in group], np.float32)
    return ctx, real, flat, pitch


@torch.no_grad()
def evaluate(model: WorldModel, ds: Dataset, horizon: int = 16, episodes: list[int] | None = None, stride: int = 100,
             steps: int | None = None, seed: int = 0, batch: int = 16, progress: bool = True,
             idm: InverseDynamics | None = None) -> dict[str, Any]:
    """PSNR/SSIM per horizon step for the model, copy-last-frame, action-blind and walk-blind, mean and 95% interval; with an
    `idm`, its key F1 / camera error on the real consecutive pairs and on the dreamed ones (same clips, actions);
    with a camera in the action space, how many pixels per degree of turn real and dreamed frames move
    (`worldsim.evaluation.motion`); with an attack key, whether pressing it on the steps that broke a block shows the break
    (`key_response`)."""
    from tqdm import tqdm

    k = model.start_frames
    episodes = list(range(len(ds))) if episodes is None else episodes
    todo = clips(ds, episodes, k, horizon, stride)
    if not todo:
        raise ValueError(f"no clip of {k}+{horizon} frames in the chosen episodes of {ds.root}")
    noop = model.codec.encode(model.codec.noop())
    moves = [model.codec.slices[key] for key in MOVEMENT_KEYS if key in model.codec.space.spaces]
    baselines = (("copy_last", "action_blind") + (("camera_shift",) if any(model.cfg.camera_px_per_deg) else ())
                 + (("walk_blind",) if moves else ()))
    scores: dict[str, list[np.ndarray]] = {f"{n}_{m}": [] for n in ("model", *baselines) for m in ("psnr", "ssim")}
    examples = []
    idm_preds: dict[str, list] = {"real": [], "dream": [], "actions": []}
    cam = model.codec.slices.get("camera") if "camera" in model.codec.space.spaces else None
    shifts: dict[str, list] = {"real": [], "dream": [], "action_blind": [], "camera": [], "valid": []}
    detail: dict[str, list[np.ndarray]] = {"real": [], "dream": []}
    levels: dict[str, list[np.ndarray]] = {"brightness": [], "contrast": []}
    for i in tqdm(range(0, len(todo), batch), desc="evaluate", disable=not progress):
        group = todo[i:i + batch]
        eps = {e: ds.episode(e) for e, _ in group}
        ctx, real, flat, pitch = clip_batch(model, eps, group, horizon)
        runs = [("model", flat[:, k - 1:]), ("action_blind", np.broadcast_to(noop, flat[:, k - 1:].shape))]
        if moves:
            still = flat[:, k - 1:].copy()
            for sl in moves:
                still[..., sl] = noop[sl]
            runs.append(("walk_blind", still))
        for name, acts in runs:
            d = Sampler(model, ctx, flat[:, : k - 1], steps=steps, seeds=[seed + i + j for j in range(len(group))],
                        pitch=pitch)
            dream = np.stack([d.step(acts[:, h]).frames for h in range(horizon)], axis=1)
            if cam is not None and name != "walk_blind":  # how far each dreamed frame moved, against the turn
                shifts["dream" if name == "model" else name].append(_shifts(ctx, dream))
                if name == "model":
                    shifts["real"].append(_shifts(ctx, real))
                    shifts["camera"].append(flat[:, k - 1:, cam].reshape(-1, 2))
                    shifts["valid"].append(np.concatenate([_turned_as_told(eps[e], s + k - 1, horizon)
                                                           for e, s in group]))
            if name == "model":
                detail["real"].append(sharpness(real))
                for key, ratio in zip(("brightness", "contrast"), level_ratios(dream, real)):
                    levels[key].append(ratio)
                detail["dream"].append(sharpness(dream))
            if name == "model" and len(examples) < 4:
                examples += [(ctx[j], real[j], dream[j], group[j]) for j in range(min(4 - len(examples), len(group)))]
            if name == "model" and idm is not None:
                for key, seq in (("real", real), ("dream", dream)):
                    idm_preds[key].append(idm.predict(*_pairs(ctx, seq)))
                idm_preds["actions"].append(acts.reshape(-1, acts.shape[-1]))
            _collect(scores, name, dream, real)
        _collect(scores, "copy_last", np.repeat(ctx[:, -1:], horizon, axis=1), real)
        if "camera_shift" in baselines:
            _collect(scores, "camera_shift", camera_shift(ctx[:, -1], flat[:, k - 1:, cam], model.cfg.camera_px_per_deg), real)
    table = {}
    for key, rows in scores.items():
        a = np.stack(rows)  # (clips, horizon)
        mean = a.mean(0)
        half = 1.96 * a.std(0, ddof=1) / math.sqrt(len(a)) if len(a) > 1 else np.zeros_like(mean)
        table[key] = {"mean": mean.round(4).tolist(), "ci95": half.round(4).tolist()}
    out = {"clips": len(todo), "episodes": episodes, "horizon": horizon, "context": k,
           "sampling_steps": steps or model.cfg.sampler.steps,
           "metrics": table, "_examples": examples}
    real_d, dream_d = (np.concatenate(detail[n]).mean(0) for n in ("real", "dream"))  # per horizon step
    # where a dream darkens or flattens: its brightness and contrast over the real frame's, per horizon step
    out["levels"] = {k: np.median(np.concatenate(v), axis=0).round(4).tolist() for k, v in levels.items()}
    out["sharpness"] = {"real": round(float(real_d.mean()), 3), "dream": round(float(dream_d.mean()), 3),
                        "dream_over_real": round(float(dream_d.mean() / max(real_d.mean(), 1e-9)), 4),
                        "dream_over_real_per_step": (dream_d / np.maximum(real_d, 1e-9)).round(4).tolist()}
    if cam is not None:
        camera, valid = (np.concatenate(shifts.pop(n)) for n in ("camera", "valid"))
        out["camera_response"] = camera_response({n: np.concatenate(v) for n, v in shifts.items()}, camera, valid)
    if idm is not None:
        flat_all = np.concatenate(idm_preds["actions"])
        out["idm"] = {key: idm_scores(idm, np.concatenate([p[0] for p in idm_preds[key]]),
                                      np.concatenate([p[1] for p in idm_preds[key]]), flat_all) for key in ("real", "dream")}
        out["idm"]["dream_over_real_key_f1"] = round(out["idm"]["dream"]["key_f1"] / max(out["idm"]["real"]["key_f1"], 1e-9), 4)
    brk = key_response(model, ds, episodes, "attack", steps=steps, seed=seed)
    if brk is not None:
        out["break_response"] = brk
    return out


def level_ratios(dream: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brightness (mean grey) and contrast (spatial std of grey) of dreamed frames over the real ones, (B, H) each,
    for (B, H, h, w, 3) uint8 frames: 1 is right, < 1 darker or flatter."""
    def stats(x):
        g = x.astype(np.float32).mean(-1).reshape(*x.shape[:2], -1)
        return g.mean(-1), g.std(-1)

    (db, dc), (rb, rc) = stats(dream), stats(real)
    return db / np.maximum(rb, 1e-3), dc / np.maximum(rc, 1e-3)


def sharpness(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference between neighbouring pixels (grey levels, both axes) of each frame of (B, H, h, w, 3)
    uint8 frames -> (B, H). Why: PSNR rewards a blurred guess when the future is uncertain, so a model can gain dB
    while its frames lose their texture; this says how much of the real frames' fine detail a dream keeps."""
    g = frames.astype(np.float32).mean(-1)
    return np.abs(np.diff(g, axis=-1)).mean((-2, -1)) + np.abs(np.diff(g, axis=-2)).mean((-2, -1))


def _pairs(ctx: np.ndarray, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of seq (B, H, ...) with the frame before it, the one its action was taken at (the last context
    frame for the first): two (B*H, ...) arrays."""
    prev = np.concatenate([ctx[:, -1:], seq[:, :-1]], axis=1)
    return prev.reshape(-1, *prev.shape[2:]), seq.reshape(-1, *seq.shape[2:])


def _turned_as_told(ep, start: int, n: int, tolerance: float = 0.5) -> np.ndarray:
    """(n,) bool for the steps start..start+n-1 of an episode: did the view turn as the camera action said (within
    `tolerance` degrees)? Not with a GUI open (the camera moves a cursor) nor against the pitch clamp; there the real
    frame does not move and no model should move it. All True where the episode records no pose."""
    turns = ep.view_turns()
    if turns is None:
        return np.ones(n, bool)
    told = np.asarray(ep.actions["camera"], np.float64)[start:start + n]
    return (np.abs(turns[start:start + n] - told) < tolerance).all(1)


def _shifts(ctx: np.ndarray, seq: np.ndarray) -> np.ndarray:
    return frame_shift(*_pairs(ctx, seq))


def camera_shift(last: np.ndarray, camera: np.ndarray, px_per_deg: tuple[float, float]) -> np.ndarray:
    """The camera-shift baseline: frames (B, H, W, 3) moved by the summed camera actions (B, T, 2) (pitch, yaw
    degrees) at `px_per_deg` (down, right), the edge repeated where the view reveals something new -> (B, T, H, W, 3)."""
    from worldsim.model.motion_prior import shift

    b, t = camera.shape[:2]
    turned = np.cumsum(camera.astype(np.float64), axis=1)
    x = torch.from_numpy(np.repeat(last[:, None], t, axis=1).reshape(b * t, *last.shape[1:])).permute(0, 3, 1, 2).float()
    dy = torch.from_numpy(turned[..., 0].reshape(-1) * px_per_deg[0]).float()
    dx = torch.from_numpy(turned[..., 1].reshape(-1) * px_per_deg[1]).float()
    out = shift(x, dy, dx, fill="edge").round().clamp(0, 255).to(torch.uint8)
    return out.permute(0, 2, 3, 1).reshape(b, t, *last.shape[1:]).numpy()


def _collect(scores, name: str, pred: np.ndarray, real: np.ndarray) -> None:
    b, h = real.shape[:2]
    psnr, ssim = frame_metrics(pred.reshape(b * h, *pred.shape[2:]), real.reshape(b * h, *real.shape[2:]))
    scores[f"{name}_psnr"] += list(psnr.reshape(b, h))
    scores[f"{name}_ssim"] += list(ssim.reshape(b, h))


@torch.no_grad()
def autoencoder_psnr(model: WorldModel, ds: Dataset, episodes: list[int], frames_per_episode: int = 64, seed: int = 0) -> float:
    """Mean reconstruction PSNR (dB) of held-out frames through encode -> decode (uint8 both ends)."""
    rng = np.random.default_rng(seed)
    vals = []
    for e in episodes:
        f = ds.episode(e).frames
        idx = np.sort(rng.choice(len(f), min(frames_per_episode, len(f)), replace=False))
        x = torch.from_numpy(np.array(f[idx]))
        rec = model.decode(model.encode(x)).numpy()
        vals.append(frame_metrics(rec, f[idx])[0])
    return float(np.concatenate(vals).mean())


@torch.no_grad()
def key_response(model: WorldModel, ds: Dataset, episodes: list[int], key: str = "attack", steps: int | None = None,
                 seed: int = 0, batch: int = 32, crop: float = 0.25) -> dict[str, Any] | None:
    """Does pressing `key` do in the dream what it did in the game? At every step where the key was pressed and the
    episode paid a reward (the classic game pays one per block broken: the block under the crosshair vanished), the
    model predicts the next frame twice from the real context, with the real action and with the key released,
    on the same noise. Scored on the centre crop (`crop` of each side, where the crosshair's block is) against the
    real next frame: a model that renders the break is closer there with the key pressed. None when the action
    space has no such key or the episodes hold no such step. `_examples`: a few events as (frame before, real
    frame after, dream pressed, dream released)."""
    if key not in model.codec.slices:
        return None
    k = model.start_frames
    events, opened = [], {}
    for e in episodes:
        ep = opened[e] = ds.episode(e)
        pressed = np.asarray(ep.actions[key]).reshape(len(ep.rewards), -1).any(axis=1)
        events += [(e, t) for t in np.flatnonzero(pressed & (np.asarray(ep.rewards) > 0)) if t >= k - 1]
    if not events:
        return None
    h, w = model.cfg.frame_hw
    ch, cw = max(1, round(h * crop)), max(1, round(w * crop))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    sl = model.codec.slices[key]

    def crop_of(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x[:, y0:y0 + ch, x0:x0 + cw])

    psnr: dict[str, list[np.ndarray]] = {"pressed": [], "released": [], "copy_last": []}
    examples = []
    for i in range(0, len(events), batch):
        group = events[i:i + batch]
        ctx = np.stack([opened[e].frames[t - k + 1:t + 1] for e, t in group])
        real = np.stack([opened[e].frames[t + 1] for e, t in group])
        flat = np.stack([model.codec.encode_batch({a: v[t - k + 1:t + 1] for a, v in opened[e].actions.items()}) for e, t in group])
        released = flat[:, -1].copy()
        released[:, sl] = 0.0
        # both versions in one batched model call, each pair of rows on the same noise (the same seeds)
        seeds = [seed + i + j for j in range(len(group))]
        both = Sampler(model, np.concatenate([ctx, ctx]), np.concatenate([flat[:, :k - 1]] * 2), steps=steps,
                       seeds=seeds + seeds).step(np.concatenate([flat[:, -1], released])).frames
        dreams = {"pressed": both[:len(group)], "released": both[len(group):]}
        for name, frames in dreams.items():
            psnr[name].append(frame_metrics(crop_of(frames), crop_of(real))[0])
        psnr["copy_last"].append(frame_metrics(crop_of(ctx[:, -1]), crop_of(real))[0])
        examples += [(ctx[j, -1], real[j], dreams["pressed"][j], dreams["released"][j])
                     for j in range(min(len(group), 6 - len(examples)))]
    p = {n: np.concatenate(v) for n, v in psnr.items()}
    return {"key": key, "events": len(events), "crop": [ch, cw],
            "centre_psnr": {n: round(float(v.mean()), 3) for n, v in p.items()},
            "gain_db": round(float((p["pressed"] - p["released"]).mean()), 3),
            "share_closer_when_pressed": round(float((p["pressed"] > p["released"]).mean()), 3), "_examples": examples}


@torch.no_grad()
def outcome_scores(model: WorldModel, ds: Dataset, episodes: list[int], batch: int = 256) -> dict[str, Any]:
    """How well the outcome heads read the real game's events off real frame pairs: per event of
    `cfg.outcome_events`, the held-out steps where it happened, those predicted, precision and recall. What a
    dream pays a task rests on them."""
    from worldsim.model.heads import episode_events

    names, keys = tuple(model.cfg.outcome_events), list(ds.info.get("count_keys") or [])
    true, pred = [], []
    for e in episodes:
        ep = ds.episode(e)
        z = torch.cat([model.encode(torch.from_numpy(np.array(ep.frames[i:i + batch]))) for i in range(0, len(ep.frames), batch)])
        flat = torch.from_numpy(model.codec.encode_batch(ep.actions)).to(z.device)
        pred.append(model.outcome(z[:-1], z[1:], model.codec.features(flat))[0].cpu().numpy())
        true.append(episode_events(ep, names, keys))
    t, p = np.concatenate(true) > 0, np.concatenate(pred) > 0
    out: dict[str, Any] = {"steps": int(len(t))}
    for j, name in enumerate(names):
        tp = int((t[:, j] & p[:, j]).sum())
        out[name] = {"events": int(t[:, j].sum()), "predicted": int(p[:, j].sum()), "true_positives": tp,
                     "precision": tp / p[:, j].sum() if p[:, j].any() else None,
                     "recall": tp / t[:, j].sum() if t[:, j].any() else None}
    return out
