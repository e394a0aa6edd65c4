"""`worldsim play`: play the neural Minecraft (or the real game, or both side by side) in a pygame window.

Controls: WASD move, space jump, mouse look (grabbed; arrow keys too), left click attack, right click use,
1-9 hotbar, R reset, P pause, Tab HUD, F12 screenshot, F9 start/stop recording an mp4, Esc quit.
In side-by-side mode the real game (left) and the dream (right) get the same inputs: where they part is where
the model is wrong. With an agent (`worldsim play --agent treechop`) the agent plays instead of the keyboard: it
sees the real game's frame when the real game runs, else the dream's, and its actions go where the keys would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldsim.envs.actions import ActionCodec, restrict_action

MOUSE_DEG_PER_PIXEL = 0.15  # Minecraft's default sensitivity (VPT: 2400 px = 360 degrees)
ARROW_DEG_PER_TICK = 4.0


@dataclass
class PlayConfig:
    mode: str = "neural"  # neural | real | side-by-side
    checkpoint: str | None = None
    image: str | None = None
    scale: int = 8
    fps: int = 20
    seed: int = 0
    sampling_steps: int | None = None
    out_dir: str = "worldsim_captures"
    grab_mouse: bool = True
    compile: bool = False  # fuse the dream's network passes (`WorldModel.compile`): a minute's wait, faster steps


class PlaySession:
    """The game loop's state, separated from the window so tests can drive it with posted events."""

    def __init__(self, cfg: PlayConfig, agent_factory=None, agent_name: str = ""):
        """agent_factory(action_space, seed=...): builds the policy (`worldsim.agents.Policy`: reset(seed),
        act(observation, info)) that plays instead of the keyboard; agent_name: what the HUD calls it."""
        import gymnasium as gym
        import pygame

        import worldsim.envs  # noqa: F401

        if cfg.mode not in ("neural", "real", "side-by-side"):
            raise ValueError(f"mode must be neural, real or side-by-side, got {cfg.mode!r}")
        self.cfg, self.pg = cfg, pygame
        self.real = gym.make("worldsim/MinecraftIndev-v0") if cfg.mode != "neural" else None
        self.neural = (gym.make("worldsim/NeuralMinecraft-v0", checkpoint=cfg.checkpoint, sampling_steps=cfg.sampling_steps,
                                compile=cfg.compile) if cfg.mode != "real" else None)
        env = self.neural or self.real
        self.space = (self.real or self.neural).action_space  # the real game's keys when it plays too
        self.codec = ActionCodec(self.space)
        try:
            self.agent = agent_factory(self.space, seed=cfg.seed) if agent_factory is not None else None
        except Exception:
            for env in (self.real, self.neural):
                if env is not None:
                    env.close()
            raise
        pygame.init()
        self.panels = 2 if cfg.mode == "side-by-side" else 1
        h, w = env.observation_space.shape[:2]
        self.frame_hw = (h, w)
        self.screen = pygame.display.set_mode((w * cfg.scale * self.panels, h * cfg.scale))
        pygame.display.set_caption(f"worldsim — {cfg.mode}")
        if cfg.grab_mouse:
            pygame.event.set_grab(True)
            pygame.mouse.set_visible(False)
        self.font = pygame.font.Font(None, 22)
        self.held: set[str] = set()
        self.tapped: set[str] = set()  # pressed since the last tick: a tap shorter than a tick still counts once
        self.mouse = np.zeros(2, np.float32)
        self.paused = self.hud = False
        self.running = True
        self.recording: list[np.ndarray] | None = None
        self.step_count, self.fps_measured, self.last_action = 0, 0.0, self.codec.noop()
        self.agent_name, self.info = agent_name, {}
        self.reset()

    # ----- environment -----
    def reset(self) -> None:
        self.step_count = 0
        s = self.cfg.seed
        if self.real is not None and self.neural is None:
            self.frames = [self.real.reset(seed=s)[0]]
        if self.neural is not None:
            if self.real is not None:  # start the dream from the real game's first K frames
                from worldsim.envs.neural import start_from_env

                last, start = start_from_env(self.real, s, self.neural.unwrapped.context_length,
                                             self.neural.action_space)
                nf, _ = self.neural.reset(seed=s, options=start)
                self.frames = [last, nf]
            elif self.cfg.image:
                from PIL import Image

                img = np.asarray(Image.open(self.cfg.image).convert("RGB"))
                self.frames = [self.neural.reset(seed=s, options={"image": img})[0]]
            else:
                self.frames = [self.neural.reset(seed=s)[0]]
        if self.agent is not None:
            self.agent.reset(seed=s)
            self.info = {}


    def action(self) -> dict:
        """The action the keys, buttons and mouse currently say."""
        a = self.codec.noop()
        for key in self.held | self.tapped:
            if key in a:
                a[key] = np.int64(1)
        cam = self.mouse * MOUSE_DEG_PER_PIXEL
        cam[0] += ARROW_DEG_PER_TICK * (("arrow_down" in self.held) - ("arrow_up" in self.held))
        cam[1] += ARROW_DEG_PER_TICK * (("arrow_right" in self.held) - ("arrow_left" in self.held))
        a["camera"] = np.clip(cam, -180, 180).astype(np.float32)
        self.mouse[:] = 0
        self.tapped.clear()
        return a

    def tick(self) -> None:
        if self.paused:
            return
        a = self.action()
        if self.agent is not None:  # the agent plays; it sees the first panel (the real game when it runs)
            a = self.agent.act(self.frames[0], self.info)
        self.last_action = a
        t0 = time.perf_counter()
        frames = []
        if self.real is not None:
            obs, _, term, trunc, self.info = self.real.step(a)
            frames.append(obs)
        if self.neural is not None:
            # side by side the keys are the real game's: the dream gets those its action space has
            obs, _, term, trunc, info = self.neural.step(a if self.real is None else restrict_action(a, self.neural.action_space))
            frames.append(obs)
            if self.real is None:
                self.info = info
        self.frames = frames
        self.fps_measured = 1.0 / max(1e-6, time.perf_counter() - t0)
        self.step_count += 1
        if self.recording is not None:
            self.recording.append(self.composite())

    # ----- input -----
    KEYS = {"w": "forward", "s": "back", "a": "left", "d": "right", "space": "jump", "e": "inventory",
            "up": "arrow_up", "down": "arrow_down", "left": "arrow_left", "right": "arrow_right"}

    def handle(self, e) -> None:
        pg = self.pg
        if e.type == pg.QUIT:
            self.running = False
        elif e.type in (pg.KEYDOWN, pg.KEYUP):
            name = pg.key.name(e.key)
            down = e.type == pg.KEYDOWN
            if name in self.KEYS:
                (self.held.add if down else self.held.discard)(self.KEYS[name])
                if down:
                    self.tapped.add(self.KEYS[name])
            elif down and name.isdigit() and f"hotbar.{name}" in self.space.spaces:
                self.tapped.add(f"hotbar.{name}")  # a hotbar key selects once, it is not held
            elif down and name == "escape":
                self.running = False
            elif down and name == "r":
                self.reset()
            elif down and name == "p":
                self.paused = not self.paused
            elif down and name == "tab":
                self.hud = not self.hud
            elif down and name == "f12":
                self.screenshot()
            elif down and name == "f9":
                self.toggle_recording()
        elif e.type in (pg.MOUSEBUTTONDOWN, pg.MOUSEBUTTONUP) and e.button in (1, 3):
            key = "attack" if e.button == 1 else "use"
            (self.held.add if e.type == pg.MOUSEBUTTONDOWN else self.held.discard)(key)
            if e.type == pg.MOUSEBUTTONDOWN:
                self.tapped.add(key)
        elif e.type == pg.MOUSEMOTION:
            self.mouse += np.array([e.rel[1], e.rel[0]], np.float32)  # [pitch, yaw]: down and right positive

    # ----- output -----
    def composite(self) -> np.ndarray:
        return np.concatenate(self.frames, axis=1) if len(self.frames) > 1 else self.frames[0]

    def draw(self) -> None:
        pg, s = self.pg, self.cfg.scale
        img = self.composite()
        surf = pg.surfarray.make_surface(np.ascontiguousarray(img.swapaxes(0, 1)))
        self.screen.blit(pg.transform.scale(surf, (img.shape[1] * s, img.shape[0] * s)), (0, 0))
        if self.hud:
            model = Path(self.neural.unwrapped.checkpoint_path).name if self.neural is not None else "real game"
            steps = self.neural.unwrapped.sampling_steps if self.neural is not None else "-"
            lines = [f"{self.fps_measured:5.1f} FPS  step {self.step_count}", f"sampling steps {steps}",
                     f"model {model}", f"agent {self.agent_name}" if self.agent is not None else "",
                     "REC" if self.recording is not None else ""]
            for i, line in enumerate(lines):
                self.screen.blit(self.font.render(line, True, (255, 255, 0)), (6, 6 + 18 * i))
        pg.display.flip()

    def screenshot(self) -> Path:
        """The window as it is on screen (HUD included when shown)."""
        path = Path(self.cfg.out_dir) / f"screenshot_{time.strftime('%Y%m%d-%H%M%S')}_{self.step_count}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.pg.image.save(self.screen, str(path))
        return path

    def toggle_recording(self) -> Path | None:
        if self.recording is None:
            self.recording = []
            return None
        from worldsim.io.video import write_mp4

        frames, self.recording = self.recording, None
        if not frames:
            return None
        path = Path(self.cfg.out_dir) / f"recording_{time.strftime('%Y%m%d-%H%M%S')}.mp4"
        return write_mp4(path, frames, fps=20, scale=4)

    def close(self) -> None:
        if self.recording:
            self.toggle_recording()
        for env in (self.real, self.neural):
            if env is not None:
                env.close()
        self.pg.quit()


def play(cfg: PlayConfig, max_ticks: int | None = None, agent_factory=None, agent_name: str = "") -> PlaySession:
    """The window's loop. agent_factory(action_space, seed=...): the agent that plays instead of the keyboard."""
    session = PlaySession(cfg, agent_factory, agent_name)
    clock = session.pg.time.Clock()
    try:
        while session.running and (max_ticks is None or session.step_count < max_ticks):
            for e in session.pg.event.get():
                session.handle(e)
            session.tick()
            session.draw()
            clock.tick(cfg.fps)
    finally:
        session.close()
    return session
