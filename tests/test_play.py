"""`worldsim play` driven by posted pygame events under SDL's dummy video driver."""

import os

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pygame  # noqa: E402

from worldsim.envs.play import MOUSE_DEG_PER_PIXEL, PlayConfig, PlaySession  # noqa: E402


def _post_and_tick(s: PlaySession, events=(), ticks=1):
    for e in events:
        pygame.event.post(e)
    for e in pygame.event.get():
        s.handle(e)
    for _ in range(ticks):
        s.tick()
        s.draw()


def key(k, down=True):
    return pygame.event.Event(pygame.KEYDOWN if down else pygame.KEYUP, key=k, mod=0, unicode="", scancode=0)


def test_real_mode_keys_mouse_screenshot_recording_quit(tmp_path):
    s = PlaySession(PlayConfig(mode="real", scale=2, out_dir=str(tmp_path), seed=3))
    try:
        game = s.real.unwrapped
        yaw0 = game._info["yaw"]
        start = game._info["pos"][[0, 2]]
        first = s.composite().copy()
        _post_and_tick(s, [key(pygame.K_w)], ticks=15)
        assert s.last_action["forward"] == 1
        facing = np.array([np.sin(np.radians(yaw0)), -np.cos(np.radians(yaw0))])
        assert (game._info["pos"][[0, 2]] - start) @ facing > 1.0  # W walked forward
        assert np.abs(s.composite().astype(int) - first.astype(int)).mean() > 2
        _post_and_tick(s, [key(pygame.K_w, down=False), pygame.event.Event(pygame.MOUSEMOTION, rel=(40, -10), pos=(0, 0), buttons=(0, 0, 0))])
        assert game._info["yaw"] == pytest.approx(yaw0 + 40 * MOUSE_DEG_PER_PIXEL, abs=1e-3)
        assert s.last_action["forward"] == 0 and s.last_action["camera"][0] == pytest.approx(-10 * MOUSE_DEG_PER_PIXEL)
        _post_and_tick(s, [key(pygame.K_3)])
        assert s.real.unwrapped._info["selected_slot"] == 2  # hotbar.3
        _post_and_tick(s, [key(pygame.K_e)])
        assert s.real.unwrapped._info["gui"] == "GuiInventory"  # E opens the inventory
        _post_and_tick(s, [key(pygame.K_e, down=False)])
        _post_and_tick(s, [key(pygame.K_e)])
        assert s.real.unwrapped._info["gui"] is None  # and closes it
        _post_and_tick(s, [key(pygame.K_e, down=False)])
        _post_and_tick(s, [key(pygame.K_e), key(pygame.K_e, down=False)])
        assert s.real.unwrapped._info["gui"] == "GuiInventory"  # a tap shorter than a tick still counts
        _post_and_tick(s)
        _post_and_tick(s, [key(pygame.K_e), key(pygame.K_e, down=False)])
        assert s.real.unwrapped._info["gui"] is None
        _post_and_tick(s, [pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=(0, 0))])
        assert s.last_action["attack"] == 1
        _post_and_tick(s, [key(pygame.K_F12), key(pygame.K_F9)], ticks=4)
        _post_and_tick(s, [key(pygame.K_F9), key(pygame.K_TAB), key(pygame.K_p)])
        assert s.hud and s.paused
        shots = list(tmp_path.glob("screenshot_*.png"))
        videos = list(tmp_path.glob("recording_*.mp4"))
        assert len(shots) == 1 and len(videos) == 1
        from PIL import Image

        assert Image.open(shots[0]).size == (64 * 2, 64 * 2)  # the window itself, at its scale
        from worldsim.io.video import read_mp4

        assert read_mp4(videos[0]).shape[0] == 4
        _post_and_tick(s, [key(pygame.K_ESCAPE)])
        assert not s.running
    finally:
        s.close()


def test_side_by_side_and_neural_modes(tmp_path):
    from worldsim.data_collect.collect import CollectConfig, collect
    from worldsim.model.config import AutoencoderConfig, DiTConfig, ModelConfig
    from worldsim.training.config import TrainConfig
    from worldsim.training.trainer import Trainer

    collect(CollectConfig(episodes=2, steps=20, size=64, out=str(tmp_path / "ds"), seed=2), progress=False)
    cfg = ModelConfig(frame_size=64, context=4, start_frames=2, ae=AutoencoderConfig(channels=(8, 16, 16), latent_channels=4),
                      dit=DiTConfig(width=32, depth=2, heads=2, patch=4, action_hidden=32, step_levels=2))
    tc = TrainConfig(ae_steps=2, ae_batch=4, dit_steps=2, dit_batch=2, seq_len=4, long_seq=8, heads_steps=2,
                     heads_batch=8, warmup=1, checkpoint_every=100, sample_every=100, log_every=1)
    Trainer(str(tmp_path / "ds"), str(tmp_path / "run"), cfg, tc, progress=False).run()
    s = PlaySession(PlayConfig(mode="side-by-side", checkpoint=str(tmp_path / "run"), scale=2, out_dir=str(tmp_path)))
    try:
        assert s.composite().shape == (64, 128, 3)
        assert s.screen.get_size() == (256, 128)
        before = s.real.unwrapped._info["pos"].copy()
        _post_and_tick(s, [key(pygame.K_d)], ticks=3)
        assert s.last_action["right"] == 1 and s.step_count == 3
        moved = s.real.unwrapped._info["pos"] - before
        assert np.linalg.norm(moved[[0, 2]]) > 0.05  # the real game got the same key as the dream
    finally:
        s.close()
    img = tmp_path / "still.png"
    from PIL import Image

    Image.fromarray(np.full((100, 150, 3), 77, np.uint8)).save(img)
    s = PlaySession(PlayConfig(mode="neural", checkpoint=str(tmp_path / "run"), image=str(img), scale=2,
                               out_dir=str(tmp_path), sampling_steps=1))
    try:
        assert np.all(s.composite() == 77)
        assert s.neural.unwrapped.sampling_steps == 1
        _post_and_tick(s, [key(pygame.K_TAB), key(pygame.K_SPACE)], ticks=2)  # HUD on: it names the sampler settings
        assert s.hud and s.last_action["jump"] == 1 and s.composite().shape == (64, 64, 3)
    finally:
        s.close()


def test_an_agent_plays_instead_of_the_keyboard_and_starts_again_on_reset(tmp_path):
    """`play --agent NAME`: the agent's actions drive the game (it walks out of the hut with no key pressed),
    reset restarts it on the same seed, and the CLI builds the session from the name (real game by default)."""
    from functools import partial

    from worldsim.agents import make_policy

    calls = []

    def factory(space, seed=None):
        agent = make_policy("explore", space, seed=seed)
        act = agent.act
        agent.act = lambda obs, info=None: calls.append(info) or act(obs, info)
        return agent

    s = PlaySession(PlayConfig(mode="real", scale=2, out_dir=str(tmp_path), seed=2), agent_factory=factory,
                    agent_name="explore")
    try:
        start, spawn = s.real.unwrapped._info["pos"].copy(), s.composite().copy()
        _post_and_tick(s, [key(pygame.K_TAB)], ticks=40)
        assert len(calls) == 40 and calls[0] == {} and "pos" in calls[-1]  # the agent reads the game's info
        assert np.linalg.norm((s.real.unwrapped._info["pos"] - start)[[0, 2]]) > 1.0
        assert s.last_action["forward"] == 1 or np.abs(s.last_action["camera"]).sum() > 0
        s.draw()  # the HUD names the agent
        _post_and_tick(s, [key(pygame.K_r)], ticks=0)
        assert s.step_count == 0 and np.array_equal(s.composite(), spawn) and calls[-1] is not None
        _post_and_tick(s, ticks=1)
        assert calls[-1] == {}  # a new episode: the agent starts without the last one's info
    finally:
        s.close()
    with pytest.raises(ValueError, match="unknown policy"):
        PlaySession(PlayConfig(mode="real", scale=2, out_dir=str(tmp_path)), agent_factory=partial(make_policy, "nope"))
