"""`worldsim/NeuralMinecraft-v0`: the world model behind the Gymnasium API, one env or a batched vector env.

Every observation after reset is rendered by the model from the agent's action. A dream starts from anything:
a real opening clip from the bank the checkpoint carries (default), any step of a recorded dataset (`starts=`,
optionally weighted toward the task's rewards: how world-model agents are trained), real footage passed in
`options`, or a single still image. Same seed, same options, same actions -> the same frames.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

import worldsim
from worldsim.envs.data_starts import DataStarts
from worldsim.envs.tasks import DreamReward
from worldsim.model.openings import load_openings
from worldsim.model.shortcut import step_index
from worldsim.sampling.sampler import Sampler


class StepTime(float):
    """Seconds the model took for a step. A measurement, not part of the env's state: two StepTimes compare
    equal, so determinism checks over `info` (gymnasium's check_env) hold while users still read the figure."""

    def __eq__(self, other):
        return True if isinstance(other, StepTime) else float.__eq__(self, other)

    __hash__ = float.__hash__


Start = tuple[np.ndarray, np.ndarray, float]  # frames (K, H, W, 3) uint8, flat actions (K-1, A), pitch at the last (NaN: unknown)


SETTLE = 60
"""Steps the real game stands still after a reset before a dream is started from it. A freshly loaded world is not
yet what a player sees: the renderer brightens its fog over the first ~40 ticks, so the reset frame is 15-22 dB
away from the same view 100 steps later (copying it scored 24.5 dB on a still hold). A dream started there is
scored against a change no action causes; from the settled world, copying the start is exact."""


def start_from_env(env: gym.Env, seed: int | None, k: int, dream_space: gym.spaces.Dict | None = None,
                   settle: int = SETTLE) -> tuple[np.ndarray, dict[str, Any]]:
    """Reset a real env, stand still for `settle` steps (`SETTLE`: the world settles), then k-1 more: its last frame
    and the `reset(options=...)` that starts a dream of the same place (K frames, the no-op actions between them in
    `dream_space`, default the env's; the view's pitch when the env reports it; standing still leaves the view where
    it was)."""
    from worldsim.model.actions import ActionCodec

    noop = ActionCodec(env.action_space).noop()
    obs, info = env.reset(seed=seed)
    for _ in range(settle):
        obs, _, _, _, step_info = env.step(noop)
        info = {**info, **step_info}
    frames = [obs] + [env.step(noop)[0] for _ in range(k - 1)]
    still = ActionCodec(dream_space).noop() if dream_space is not None else noop
    options: dict[str, Any] = {"frames": np.stack(frames), "actions": [still] * (k - 1)}
    if "pitch" in info:
        options["pitch"] = info["pitch"]
    return frames[-1], options


class NeuralContext:
    """Validates and prepares what a dream starts from: (K, H, W, 3) uint8 frames, (K-1, A) flat actions and the
    camera's pitch at the last frame in degrees (NaN: unknown)."""

    def __init__(self, model, bank: dict[str, np.ndarray] | None, data: DataStarts | None = None):
        self.model = model
        self.bank = bank
        self.data = data
        self.k = model.start_frames
        self.hw = model.cfg.frame_hw

    def from_options(self, options: dict | None, rng: np.random.Generator) -> Start:
        """options: 'frames' (+ 'actions') or 'image', each optionally with 'pitch' (the view's pitch at the last
        frame, degrees, positive looks down); none: a step of the env's dataset (`starts`), else an opening from
        the checkpoint's bank."""
        options = options or {}
        unknown = set(options) - {"frames", "actions", "image", "pitch"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; use 'frames' (+ 'actions') or 'image', and 'pitch'")
        if "pitch" in options and not ("frames" in options or "image" in options):
            raise ValueError("options['pitch'] belongs to options['frames'] or options['image']: an opening from the "
                             "bank carries its own")
        if "image" in options:
            if "frames" in options:
                raise ValueError("give either options['frames'] or options['image'], not both")
            frames, flat = self._from_image(options["image"])
        elif "frames" in options:
            frames, flat = self._from_frames(options["frames"], options.get("actions"))
        elif self.data is not None:
            return self.data.draw(rng)
        else:
            if self.bank is None:
                raise ValueError("this checkpoint carries no opening clips: pass options={'frames': ...} or {'image': ...}")
            i = int(rng.integers(len(self.bank["frames"])))
            pitch = float(self.bank["pitch"][i][-1]) if "pitch" in self.bank else float("nan")
            return self.bank["frames"][i], self.bank["actions"][i], pitch
        return frames, flat, self._pitch(options.get("pitch"), flat)

    def _pitch(self, last: Any, flat: np.ndarray) -> float:
        """The camera's pitch at the last start frame (degrees; NaN: unknown), checked against the game's range."""
        if last is None:
            return float("nan")
        try:
            last = float(last)
        except (TypeError, ValueError):
            raise ValueError(f"options['pitch'] must be a number of degrees, got {last!r}") from None
        limit = self.model.cfg.pitch_limit
        if not -limit <= last <= limit:
            raise ValueError(f"options['pitch'] must lie in [-{limit:g}, {limit:g}] degrees, got {last}")
        return last

    def _from_frames(self, frames: Any, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        f = np.asarray(frames)
        want = (self.k, *self.hw, 3)
        if f.dtype != np.uint8 or f.shape != want:
            raise ValueError(f"options['frames'] must be uint8 with shape {want} (K={self.k} frames), got {f.dtype} {f.shape}")
        if actions is None:
            raise ValueError(f"options['frames'] needs options['actions']: a list of {self.k - 1} action dicts "
                             "(actions[i] was taken at frames[i] and led to frames[i+1])")
        if len(actions) != self.k - 1:
            raise ValueError(f"options['actions'] must hold {self.k - 1} action dicts, got {len(actions)}")
        flat = np.stack([self.model.codec.encode(self.model.codec.validate(a)) for a in actions]) if self.k > 1 \
            else np.zeros((0, self.model.codec.dim), np.float32)
        return f, flat.astype(np.float32)

    def _from_image(self, image: Any) -> tuple[np.ndarray, np.ndarray]:
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
            raise ValueError(f"options['image'] must be a uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
        h, w = self.hw
        img = np.asarray(Image.fromarray(img[..., :3]).resize((w, h), Image.BOX))
        noop = self.model.codec.encode(self.model.codec.noop())
        # a still is what a player standing still sees: K identical frames joined by no-op actions
        return np.repeat(img[None], self.k, axis=0), np.repeat(noop[None], self.k - 1, axis=0)


def _data_starts(model, starts: str | None, task: str | None, start_weight: float, start_lead: int) -> DataStarts | None:
    """The env's dataset starts (None: the checkpoint's openings)."""
    if starts is None:
        if start_weight != 1.0:
            raise ValueError("start_weight weights a dataset's steps: give the dataset as starts=")
        return None
    return DataStarts(starts, model.codec, model.start_frames, model.cfg.frame_hw, task, start_weight, start_lead)


def _checked_steps(model, sampling_steps: int | None) -> int:
    """The sampler's steps per frame (None: the model's), refused at construction when the model cannot take them."""
    steps = model.cfg.sampler.steps if sampling_steps is None else sampling_steps
    try:
        step_index(int(steps), model.cfg.dit.step_levels)
    except (TypeError, ValueError) as e:
        raise ValueError(f"sampling_steps: {e}") from None
    return int(steps)


class NeuralMinecraftEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 20}

    def __init__(self, checkpoint: str | None = None, device: str = "auto", sampling_steps: int | None = None,
                 render_mode: str | None = None, precision: str = "auto", task: str | None = None,
                 starts: str | None = None, start_weight: float = 1.0, start_lead: int = 100, compile: bool = False):
        """checkpoint: a checkpoint or run folder (None: the shipped model); sampling_steps: network passes per
        frame, a power of two (None: the checkpoint's); precision: "auto" (whichever is measured faster here),
        "bf16" or "fp32"; compile: fuse the network's passes (`WorldModel.compile`: faster steps after a
        compilation of about a minute on the first one); task: whose reward the dream pays (`worldsim.envs.tasks`; None: +1 per block broken);
        starts: a dataset whose recorded steps dreams start from (`DataStarts`; None: the checkpoint's openings),
        a step within `start_lead` steps before the task's reward drawn `start_weight` times as often."""
        if render_mode not in (None, "rgb_array", "human"):
            raise ValueError(f"render_mode must be None, 'rgb_array' or 'human', got {render_mode!r}")
        self.model = worldsim.load(checkpoint, device, precision, compile)  # the env's own copy
        self.checkpoint_path = self.model.checkpoint_dir
        self.render_mode = render_mode
        self.sampling_steps = _checked_steps(self.model, sampling_steps)
        h, w = self.model.cfg.frame_hw
        self.observation_space = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.action_space = self.model.codec.space
        self.context_length = self.model.start_frames  # the frames a dream starts from (options['frames'])
        self._starts = NeuralContext(self.model, load_openings(self.checkpoint_path),
                                     _data_starts(self.model, starts, task, start_weight, start_lead))
        self._reward = DreamReward(self.model.cfg.outcome_events, task)
        self._sampler: Sampler | None = None
        self._frame: np.ndarray | None = None
        self._viewer = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        frames, actions, pitch = self._starts.from_options(options, self.np_random)
        self._sampler = Sampler(self.model, frames[None], actions[None], steps=self.sampling_steps,
                                seeds=[int(self.np_random.integers(0, 2**31 - 1))], pitch=np.array([pitch]))
        self._frame = np.array(frames[-1])
        self._steps = 0
        self._reward.reset()
        if self.render_mode == "human":
            self.render()
        return self._frame.copy(), {"context_length": self.context_length, **self._pitch_info()}

    def _pitch_info(self) -> dict[str, float]:
        """The camera's pitch the dream tracks (degrees, positive looks down), when its start told it."""
        p = float(self._sampler.pitch[0])
        return {"pitch": p} if np.isfinite(p) else {}

    def step(self, action: dict[str, Any]):
        if self._sampler is None:
            raise RuntimeError("call reset() before step()")
        flat = self.model.codec.encode(action, validate=True)  # the one conversion: dict -> flat vector
        t0 = time.perf_counter()
        out = self._sampler.step(flat[None])
        self._frame = out.frames[0]
        reward = self._reward.step(out.events[0])
        self._steps += 1
        info = {"step_time_s": StepTime(time.perf_counter() - t0), "step": self._steps,
                "reward_model": bool(self.model.heads_trained), **self._pitch_info()}
        if self.render_mode == "human":
            self.render()
        return self._frame.copy(), reward, bool(out.terminated[0]), False, info

    def render(self):
        if self._frame is None:
            return None
        if self.render_mode == "human":
            from worldsim.envs.viewer import Viewer

            if self._viewer is None:
                self._viewer = Viewer("worldsim — NeuralMinecraft", self._frame.shape[:2])
            self._viewer.show(self._frame)
            return None
        return self._frame.copy()

    def close(self):
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None


class NeuralMinecraftVectorEnv(gym.vector.VectorEnv):
    """N dreams advanced together in one `Sampler`: one batched model call per denoising step for all of them.

    Each dream keeps its own noise generator, so sub-env i of a vector env seeded s dreams what a single env seeded
    s + i dreams (up to the kernels' rounding at another batch size): the batch is never a source of randomness.
    Follows Gymnasium 1.x's default next-step autoreset: after a sub-env ends, the following `step` resets it
    (its action is ignored) and returns the first observation of its new dream. With
    `autoreset_mode=AutoresetMode.SAME_STEP` (what RL libraries such as Stable-Baselines3 expect) an ending
    sub-env is reset within the same `step`: its last frame goes to `info["final_obs"]` (mask `info["_final_obs"]`)
    and the returned observation is the first frame of its next dream.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20, "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, checkpoint: str | None = None, device: str = "auto",
                 sampling_steps: int | None = None, render_mode: str | None = None, max_episode_steps: int | None = None,
                 precision: str = "auto", autoreset_mode: gym.vector.AutoresetMode | str = gym.vector.AutoresetMode.NEXT_STEP,
                 task: str | None = None, starts: str | None = None, start_weight: float = 1.0, start_lead: int = 100,
                 compile: bool = False):
        """As `NeuralMinecraftEnv`'s arguments, and num_envs dreams; max_episode_steps: truncate each after so many."""
        mode = gym.vector.AutoresetMode(autoreset_mode)
        if mode not in (gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset_mode must be NEXT_STEP or SAME_STEP, got {mode}")
        self.autoreset_mode = mode
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.model = worldsim.load(checkpoint, device, precision, compile)  # the env's own copy
        self.checkpoint_path = self.model.checkpoint_dir
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.sampling_steps = _checked_steps(self.model, sampling_steps)
        self.max_episode_steps = max_episode_steps
        h, w = self.model.cfg.frame_hw
        self.single_observation_space = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.single_action_space = self.model.codec.space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.context_length = self.model.start_frames  # the frames a dream starts from (options['frames'])
        self._starts = NeuralContext(self.model, load_openings(self.checkpoint_path),
                                     _data_starts(self.model, starts, task, start_weight, start_lead))
        self._rngs: list[np.random.Generator] = [np.random.default_rng() for _ in range(num_envs)]
        self._rewards = [DreamReward(self.model.cfg.outcome_events, task) for _ in range(num_envs)]
        self._sampler: Sampler | None = None
        self._needs_reset = np.zeros(num_envs, bool)
        self._steps = np.zeros(num_envs, np.int64)
        self._frames: np.ndarray | None = None

    def _start(self, i: int, options: dict | None) -> Start:
        return self._starts.from_options(options, self._rngs[i])

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        elif seed is None:
            seeds = [None] * self.num_envs
        else:
            seeds = list(seed)
        for i, s in enumerate(seeds):  # each sub-env seeded exactly like a single env with that seed
            if s is not None:
                self._rngs[i], _ = gym.utils.seeding.np_random(s)
        starts = [self._start(i, options) for i in range(self.num_envs)]
        self._sampler = Sampler(self.model, np.stack([f for f, _, _ in starts]), np.stack([a for _, a, _ in starts]),
                                steps=self.sampling_steps, seeds=[int(r.integers(0, 2**31 - 1)) for r in self._rngs],
                                pitch=np.array([p for _, _, p in starts], np.float32))
        self._frames = np.stack([f[-1] for f, _, _ in starts])
        self._needs_reset[:] = False
        self._steps[:] = 0
        for r in self._rewards:
            r.reset()
        return self._frames.copy(), {"pitch": self._sampler.pitch.cpu().numpy()}

    def _restart(self, i: int, frames: np.ndarray) -> None:
        """A new dream for sub-env i (a start drawn from its own seed stream); its first frame into `frames`."""
        f, a, p = self._start(i, None)
        self._sampler.reset_rows([i], f[None], a[None], seeds=[int(self._rngs[i].integers(0, 2**31 - 1))],
                                 pitch=np.array([p], np.float32))
        frames[i] = f[-1]
        self._steps[i] = 0
        self._rewards[i].reset()

    def step(self, actions: dict[str, np.ndarray]):
        if self._sampler is None:
            raise RuntimeError("call reset() before step()")
        codec = self.model.codec
        flat = np.stack([codec.encode(codec.validate({k: v[i] for k, v in actions.items()})) for i in range(self.num_envs)])
        t0 = time.perf_counter()
        out = self._sampler.step(flat)
        frames = out.frames
        rewards = np.array([0.0 if self._needs_reset[i] else self._rewards[i].step(out.events[i])
                            for i in range(self.num_envs)])
        for i in np.flatnonzero(self._needs_reset):
            self._restart(i, frames)
        self._steps[~self._needs_reset] += 1
        terminated = out.terminated & ~self._needs_reset
        truncated = np.zeros(self.num_envs, bool)
        if self.max_episode_steps is not None:
            truncated = (self._steps >= self.max_episode_steps) & ~self._needs_reset
        info: dict[str, Any] = {"step_time_s": StepTime(time.perf_counter() - t0)}
        done = terminated | truncated
        if self.autoreset_mode == gym.vector.AutoresetMode.SAME_STEP:
            if done.any():
                info["final_obs"], info["_final_obs"] = frames.copy(), done.copy()
            for i in np.flatnonzero(done):
                self._restart(i, frames)
        else:
            self._needs_reset = done
        info["pitch"] = self._sampler.pitch.cpu().numpy()
        self._frames = frames
        return frames.copy(), rewards, terminated, truncated, info

    def render(self):
        return None if self._frames is None else self._frames.copy()
