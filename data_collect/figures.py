"""Figures for the docs: the real game and the dream driven by the same scripted actions from the same frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCRIPTS = {
    "turn right": [{"camera": [0.0, 6.0]}] * 12,
    "walk forward": [{"forward": 1}] * 12,
    "look down, dig": [{"camera": [12.0, 0.0]}] * 4 + [{"attack": 1}] * 8,
}


def side_by_side(checkpoint: str | None, out: str, seed: int = 3, every: int = 2, sampling_steps: int | None = None) -> Path:
    """Rows of (real, dream) per script; every `every`-th frame; saved as a PNG strip. `sampling_steps`: network
    evaluations per dreamed frame (default: the checkpoint's)."""
    import gymnasium as gym
    from PIL import Image

    import envs  # noqa: F401
    from envs.neural import start_from_env
    from worldsim.report import strip

    real = gym.make("worldsim/MinecraftClassic-v0", zombies=0)
    dream = gym.make("worldsim/NeuralMinecraft-v0", checkpoint=checkpoint, sampling_steps=sampling_steps)
    codec = dream.unwrapped.model.codec
    k = dream.unwrapped.context_length
    rows = []
    for script in SCRIPTS.values():
        last, start = start_from_env(real, seed, k)
        dream.reset(seed=seed, options=start)
        r_frames, d_frames = [last], [last]
        for step in script:
            a = codec.noop()
            for key, v in step.items():
                a[key] = np.asarray(v, np.float32) if key == "camera" else np.int64(v)
            r_frames.append(real.step(a)[0])
            d_frames.append(dream.step(a)[0])
        rows += [np.stack(r_frames[::every]), np.stack(d_frames[::every])]
    real.close()
    dream.close()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip(rows, scale=2)).save(path)
    return path
