import numpy as np
import pytest


def noop(space) -> dict:
    from worldsim.actions import ActionCodec

    return ActionCodec(space).noop()


def act(space, **pressed) -> dict:
    """A no-op action with some keys changed, e.g. act(space, forward=1, camera=[0, 5])."""
    a = noop(space)
    for k, v in pressed.items():
        k = k.replace("hotbar_", "hotbar.")
        a[k] = np.asarray(v, np.float32) if k == "camera" else np.int64(v)
    return a


@pytest.fixture
def classic():
    import gymnasium as gym

    import envs  # noqa: F401

    made = []

    def make(**kw):
        env = gym.make("worldsim/MinecraftClassic-v0", **kw)
        made.append(env)
        return env

    yield make
    for e in made:
        e.close()
