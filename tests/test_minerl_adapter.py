"""The MineRL adapter, driven by an object that follows MineRL 1.0's documented (old gym) API."""

import gymnasium as gym
import numpy as np
import pytest

import worldsim.envs  # noqa: F401
from tests.conftest import act
from worldsim.envs.actions import MINERL_KEYS
from worldsim.envs.minerl_adapter import MineRLEnv


class DocumentedMineRL:
    """MineRL 1.0's contract: reset() -> {'pov': (360, 640, 3) uint8}; step(dict of 24 keys) -> obs, r, done, info."""

    def __init__(self, env_id):
        self.env_id = env_id
        self.received = []
        self.t = 0

    def seed(self, s):
        self.seed_value = s

    def _obs(self):
        pov = np.zeros((360, 640, 3), np.uint8)
        pov[:, : 320] = 200  # left half bright
        pov[:180, :, 2] = 10 * self.t
        return {"pov": pov, "inventory": {"dirt": 0}}

    def reset(self):
        self.t = 0
        return self._obs()

    def step(self, action):
        assert set(action) == set(MINERL_KEYS)
        assert action["camera"].dtype == np.float32 and action["camera"].shape == (2,)
        self.received.append(action)
        self.t += 1
        return self._obs(), 1.5, self.t >= 3, {"TimeLimit.truncated": False}

    def close(self):
        self.closed = True


def test_adapter_converts_api_frames_and_actions():
    env = MineRLEnv("MineRLTreechop-v0", size=64, make_backend=DocumentedMineRL)
    obs, info = env.reset(seed=4)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert env._backend.seed_value == 4
    assert obs[:, :31, 0].mean() > 190 and obs[:, 33:, 0].mean() < 10  # squashed, not cropped
    a = act(env.action_space, forward=1, attack=1, camera=[0.25, -1.5])
    obs, r, term, trunc, info = env.step(a)
    sent = env._backend.received[-1]
    assert sent["forward"] == 1 and sent["attack"] == 1 and sent["jump"] == 0
    np.testing.assert_allclose(sent["camera"], [0.25, -1.5])
    assert r == 1.5 and not term and not trunc
    env.step(a)
    _, _, term, trunc, _ = env.step(a)
    assert term and not trunc
    with pytest.raises(ValueError, match="camera"):
        env.step(act(env.action_space, camera=[0, 500]))
    env.close()


def test_without_minerl_the_error_says_how_to_install():
    with pytest.raises(ImportError, match="JDK 8"):
        gym.make("worldsim/MineRL-MineRLBasaltFindCave-v0")
