"""Stable-Baselines3 sees a Gymnasium VectorEnv through this adapter.

SB3 has its own VecEnv API, older than Gymnasium 1.x's vector envs: `step` returns one `done` per env, an env that
ends is reset in the same call, and its last observation travels in `info["terminal_observation"]`. That is
Gymnasium's same-step autoreset, so the adapter only renames: it needs a VectorEnv in SAME_STEP mode (the neural
vector env offers it) and steps it with one batched call, the whole point of the neural vector env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv


class SB3VectorEnv(VecEnv):
    def __init__(self, env: gym.vector.VectorEnv):
        mode = env.metadata.get("autoreset_mode")
        if mode != gym.vector.AutoresetMode.SAME_STEP:
            raise ValueError(f"SB3VectorEnv needs a vector env with same-step autoreset, got {mode}")
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        seeds = list(self._seeds)
        obs, _ = self.env.reset(seed=seeds if any(s is not None for s in seeds) else None)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        dones = np.asarray(terminated) | np.asarray(truncated)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(reward, np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        raise NotImplementedError(f"a batched vector env has no per-env method {method_name!r}")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def get_images(self) -> list[np.ndarray]:
        frames = self.env.render()
        return [] if frames is None else list(frames)


def repeat_actions(venv, repeat: int):
    """An SB3 VecEnv whose every action is held for `repeat` env steps, rewards summed (`DiscreteActionSpec.repeat`).

    A sub-env that ends within the repeat reports its end (done, its terminal observation) at once; it is stepped on
    with the same action in its next episode for the rest of the repeat (a vector env steps all its envs), so its
    first observation comes up to repeat - 1 steps into that episode; rewards earned there are not counted."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class RepeatActions(VecEnvWrapper):
        def reset(self):
            return self.venv.reset()

        def step_async(self, actions: np.ndarray) -> None:
            self._held = actions
            self.venv.step_async(actions)

        def step_wait(self):
            total = np.zeros(self.num_envs, np.float32)
            ended = np.zeros(self.num_envs, bool)
            infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
            for j in range(repeat):
                if j:
                    self.venv.step_async(self._held)
                obs, reward, dones, step_infos = self.venv.step_wait()
                total += np.where(ended, 0.0, reward)
                for i in range(self.num_envs):
                    if not ended[i]:
                        infos[i] = step_infos[i]
                ended |= dones
            return obs, total, ended, infos

    return RepeatActions(venv)
