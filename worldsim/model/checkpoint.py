"""Checkpoints: one folder each, weights in safetensors, everything else JSON. No pickle is ever loaded.

    CKPT/model.safetensors   the model's (EMA) weights, what inference needs
    CKPT/config.json         {"format": ..., "model": ModelConfig, "dataset": {...}, "step": ..., ...}
    CKPT/train_state.safetensors + train_state.json   optional: raw weights, optimizer, RNG (for --resume)
    CKPT/raw.safetensors     optional: the raw (not averaged) dynamics weights, so a warm start loses nothing

A checkpoint folder is written under a temporary name and renamed into place, so it exists whole or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from worldsim.io.atomic import publish_mode, write_json_atomic
from worldsim.model.config import ModelConfig
from worldsim.model.world_model import WorldModel

FORMAT = "worldsim-checkpoint-1"
RAW_WEIGHTS = "raw.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated or does not match the model it is loaded into."""


def save_checkpoint(path: str | os.PathLike, model: WorldModel, extra: dict[str, Any] | None = None,
                    train_tensors: dict[str, torch.Tensor] | None = None, train_json: dict[str, Any] | None = None,
                    half: bool = False, raw: dict[str, torch.Tensor] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        publish_mode(tmp)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(tmp / "model.safetensors"))
        write_json_atomic(tmp / "config.json", {"format": FORMAT, "model": model.cfg.to_dict(), **(extra or {})})
        if raw is not None:
            save_file({k: v.detach().float().cpu().contiguous() for k, v in raw.items()}, str(tmp / RAW_WEIGHTS))
        if train_tensors is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in train_tensors.items()}, str(tmp / "train_state.safetensors"))
            write_json_atomic(tmp / "train_state.json", train_json or {})
        for f in tmp.iterdir():  # safetensors writes through a private temporary file: readable like any write
            publish_mode(f)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def save_derived(src: str | os.PathLike, path: str | os.PathLike, model: WorldModel, extra: dict[str, Any] | None = None,
                 half: bool = False, openings: dict | None = None, raw: bool = False) -> Path:
    """A checkpoint of `model` made from the one at `src` (fine-tuned or exported): it carries over what `src`
    records besides the model config (dataset, training, earlier notes; `extra` adds to them) and the opening
    clips (`openings` replaces them). raw: also the source's raw (not averaged) dynamics weights."""
    from worldsim.model.openings import load_openings, save_openings

    src = resolve(src)
    meta = {k: v for k, v in read_config(src).items() if k not in ("format", "model")}
    raw_state = raw_dynamics(src) if raw else None
    if raw and raw_state is None:
        raise CheckpointError(f"{src} holds no raw weights: export them from a run's checkpoint (or an export made "
                              "with them)")
    out = save_checkpoint(path, model, extra={**meta, **(extra or {})}, half=half, raw=raw_state)
    bank = openings if openings is not None else load_openings(src)
    if bank is not None:
        save_openings(out, bank)
    return out


def raw_dynamics(path: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """The raw (not averaged) dynamics weights a checkpoint holds: its `RAW_WEIGHTS`, or those of its training
    state; None when it holds neither."""
    path = resolve(path)
    if (path / RAW_WEIGHTS).exists():
        return _load_tensors(path / RAW_WEIGHTS)
    if (path / "train_state.safetensors").exists():
        tensors, _ = load_train_state(path)
        return {k[6:]: v for k, v in tensors.items() if k.startswith("model.dit.")}
    return None


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    path = resolve(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise CheckpointError(f"{cfg_file} not found: not a worldsim checkpoint")
    try:
        meta = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_file} is corrupt: {e}") from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_file}: unknown checkpoint format {meta.get('format')!r} (expected {FORMAT})")
    return meta


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint folder, or a run folder (-> its latest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    latest = path / "latest.json"
    if latest.exists() and not (path / "config.json").exists():
        try:
            return path / json.loads(latest.read_text())["checkpoint"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{latest} is corrupt: {e}") from e
    return path


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    if not file.exists():
        raise CheckpointError(f"{file} not found")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{file} is corrupt or truncated: {e}") from e


#: The model the package ships: what `load(None)`, the neural env and `worldsim play` dream with by default.
DEFAULT_CHECKPOINT = Path(__file__).parents[1] / "assets" / "default"


def load(path: str | os.PathLike | None = None, device: str | torch.device = "cpu", precision: str = "fp32",
         compile: bool = False) -> WorldModel:
    """The one way a trained WorldModel is rebuilt: from a checkpoint folder, a run folder (its latest
    checkpoint) or None (the shipped model), with no other file. device "auto": CUDA where there is one;
    precision: inference numerics (`WorldModel.set_precision`); under bf16 the model is for inference only, its
    matmul weights stored in bf16 (`WorldModel.cast_for_inference`); compile: fuse the dream steps
    (`WorldModel.compile`; "auto" precision then measures the compiled passes)."""
    if path is None and not (DEFAULT_CHECKPOINT / "config.json").exists():
        raise FileNotFoundError(f"no default checkpoint is shipped in {DEFAULT_CHECKPOINT}: pass a checkpoint "
                                "(a folder written by `worldsim train` or `worldsim export`)")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    path = resolve(DEFAULT_CHECKPOINT if path is None else path)
    meta = read_config(path)
    try:
        cfg = ModelConfig.from_dict(meta["model"])
        model = WorldModel(cfg)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path / 'config.json'}: invalid model config ({e})") from e
    state = _load_tensors(path / "model.safetensors")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{path / 'model.safetensors'} does not match its config: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}, wrong shape {wrong[:5]}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.checkpoint_meta, model.checkpoint_dir = meta, path
    model = model.to(device).eval()
    if compile:
        model.compile()
    return model.set_precision(precision).cast_for_inference()


def load_train_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = resolve(path)
    tensors = _load_tensors(path / "train_state.safetensors")
    try:
        info = json.loads((path / "train_state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path / 'train_state.json'} is missing or corrupt: {e}") from e
    return tensors, info


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as safetensors-ready tensors (`opt.<param id>.<name>`) + JSON: resumable, never pickled."""
    sd = opt.state_dict()
    tensors = {f"opt.{pid}.{k}": v for pid, st in sd["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    return tensors, {"param_groups": sd["param_groups"]}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})
