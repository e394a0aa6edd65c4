import numpy as np
import pytest


def noop(space) -> dict:
    from worldsim.model.actions import ActionCodec

    return ActionCodec(space).noop()


def act(space, **pressed) -> dict:
    """A no-op action with some keys changed, e.g. act(space, forward=1, camera=[0, 5])."""
    a = noop(space)
    for k, v in pressed.items():
        k = k.replace("hotbar_", "hotbar.")
        a[k] = np.asarray(v, np.float32) if k == "camera" else np.int64(v)
    return a


@pytest.fixture(autouse=True, scope="session")
def data_home(tmp_path_factory):
    """Tests never read or write the user's data home: a bare dataset or run name lands in a temporary one."""
    import os

    home = tmp_path_factory.mktemp("home")
    before = os.environ.get("WORLDSIM_HOME")
    os.environ["WORLDSIM_HOME"] = str(home)
    yield home
    if before is None:
        os.environ.pop("WORLDSIM_HOME", None)
    else:
        os.environ["WORLDSIM_HOME"] = before


@pytest.fixture
def indev():
    import gymnasium as gym

    import worldsim.envs  # noqa: F401

    made = []

    def make(**kw):
        env = gym.make("worldsim/MinecraftIndev-v0", **kw)
        made.append(env)
        return env

    yield make
    for e in made:
        e.close()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """A tiny world model really trained (a few steps) on real 32x32 rollouts: shared by the neural-env tests."""
    from worldsim.data_collect.collect import CollectConfig, collect
    from worldsim.training.trainer import train

    root = tmp_path_factory.mktemp("neural")
    collect(CollectConfig(episodes=2, steps=30, size=32, out=str(root / "ds"), seed=9), progress=False)
    train(str(root / "ds"), str(root / "run"), "tiny", progress=False, ae_steps=10, dit_steps=10, sample_every=10**6)
    return str(root / "run")
