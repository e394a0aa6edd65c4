"""A deterministic, headless, isolated driver for Minecraft rd-161348 (`minecraft-python`).

The upstream game is written as an interactive pyglet window: it reads the wall clock, draws from the global
`random` module, keeps zombies and particles in class-level sets and loads/saves `level.dat` in the current
directory. This driver owns the game objects itself and controls all four, so that one `ClassicGame` is a pure
function of (seed, actions): it advances exactly one 20 Hz tick per `step` and renders one frame off-screen.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
from dataclasses import dataclass

import numpy as np
import pyglet

pyglet.options["headless"] = True
pyglet.options["debug_gl"] = False
# pyglet's hidden shadow context stays alive for the whole process and every game's context shares objects with
# it. Upstream caches texture ids on a class (`Textures.idMap`); without the shadow context, closing the first
# game would delete those textures and every later game in the process would render untextured.

from mc.CompatibilityShims import gluPerspective  # noqa: E402
from mc.net.minecraft.character import Zombie as _zombie_module  # noqa: E402
from mc.net.minecraft.character.Vec3 import Vec3  # noqa: E402
from mc.net.minecraft.character.Zombie import Zombie  # noqa: E402
from mc.net.minecraft.level import Level as _level_module  # noqa: E402
from mc.net.minecraft.level import LevelRenderer as _renderer_module  # noqa: E402
from mc.net.minecraft.level.Frustum import Frustum  # noqa: E402
from mc.net.minecraft.level.Level import Level  # noqa: E402
from mc.net.minecraft.level.LevelRenderer import LevelRenderer  # noqa: E402
from mc.net.minecraft.level.Tesselator import tesselator  # noqa: E402
from mc.net.minecraft.level.tile.Tiles import tiles  # noqa: E402
from mc.net.minecraft.particle.ParticleEngine import ParticleEngine  # noqa: E402
from mc.net.minecraft.Player import Player  # noqa: E402
from mc.net.minecraft.Textures import Textures  # noqa: E402
from pyglet import gl  # noqa: E402

GAME_VERSION = "rd-161348"
TICKS_PER_SECOND = 20
#: Tile ids of the placeable blocks, in the order of the game's own number keys 1, 2, 3, 4, 6.
PLACEABLE_TILES = (1, 3, 4, 5, 6)  # stone, dirt, cobblestone, planks, sapling
#: Holding attack/use repeats the click every this many ticks (the stock game acts once per mouse press).
ATTACK_REPEAT_TICKS = 5
USE_REPEAT_TICKS = 4
REACH = 5.0  # blocks; the stock game's pick distance


class _NoLevelFile:
    """Stands in for `gzip` inside the Level module: the level is never loaded from or saved to the cwd."""

    @staticmethod
    def open(*_args, **_kwargs):
        raise FileNotFoundError("worldsim never reads or writes level.dat")


_level_module.gzip = _NoLevelFile
_GAME_TIME_MS = [0]  # the clock that animations read while a game renders; set from the game's tick counter
_renderer_module.getMillis = lambda: _GAME_TIME_MS[0]
_zombie_module.getNs = lambda: _GAME_TIME_MS[0] * 1_000_000


class _OrderedSet(dict):
    """The part of `set` the particle engine uses, iterated in insertion order so ticks never depend on ids."""

    def add(self, item) -> None:
        self[item] = None

    def remove(self, item) -> None:
        del self[item]

    def copy(self) -> list:
        return list(self)


@dataclass
class Controls:
    """What is held down during one tick. Camera is [Δpitch, Δyaw] in degrees (positive: down, right)."""

    forward: bool = False
    back: bool = False
    left: bool = False
    right: bool = False
    jump: bool = False
    attack: bool = False
    use: bool = False
    hotbar: int | None = None  # 0-based slot into PLACEABLE_TILES, or None to keep the selection
    pitch: float = 0.0
    yaw: float = 0.0


class ClassicGame:
    """One instance of the game with its own level, entities, random stream and off-screen GL context."""

    def __init__(self, size: int = 64, level_size: int = 256, zombies: int = 10, frustum_culling: bool = True):
        if size < 16 or size > 1024:
            raise ValueError(f"size must be between 16 and 1024 pixels, got {size}")
        if level_size % 16 or not 16 <= level_size <= 512:
            raise ValueError(f"level_size must be a multiple of 16 in [16, 512], got {level_size}")
        self.size = size
        self.level_size = level_size
        self.num_zombies = zombies
        self.frustum_culling = frustum_culling
        self._window = _make_offscreen_window(size)
        with contextlib.redirect_stdout(io.StringIO()):  # upstream prints each texture id it loads
            Textures.loadTexture("terrain.png", gl.GL_NEAREST)
            Textures.loadTexture("char.png", gl.GL_NEAREST)
        self._pixels = (gl.GLubyte * (size * size * 3))()
        self._rng = random.Random(0)
        self.level: Level | None = None
        self.tick_count = 0

    # ----- determinism: the game's modules draw from the global `random`; give them ours while they run -----
    @contextlib.contextmanager
    def _own_random(self):
        outside = random.getstate()
        random.setstate(self._rng.getstate())
        try:
            yield
        finally:
            self._rng.setstate(random.getstate())
            random.setstate(outside)

    def reset(self, seed: int) -> np.ndarray:
        """Generate a fresh level from `seed`, drop the player onto the ground, return the first frame."""
        self._rng = random.Random(seed)
        self._window.switch_to()
        self.close_level()
        with self._own_random(), contextlib.redirect_stdout(io.StringIO()):
            self.level = Level(self.level_size, self.level_size, 64)
            self.renderer = LevelRenderer(self.level)
            self.particles = ParticleEngine(self.level)
            self.particles.particles = _OrderedSet()  # upstream: one set on the class, iterated in address order
            self.player = Player(self.level)
            self.player.yRot = self.player.yRotO = random.random() * 360.0
            self.zombies = []
            centre = self.level_size / 2.0
            for _ in range(self.num_zombies):
                zombie = Zombie(self.level, centre, 0.0, centre)
                zombie.resetPos()
                self.zombies.append(zombie)
            self.frustum = Frustum()
            for _ in range(200):  # fall from the sky until standing on the ground
                self._tick_world()
                if self.player.onGround:
                    break
        self.tick_count = 0
        self.selected = 0
        self.hit = None
        self._held = {"attack": 0, "use": 0}
        self.blocks_broken = 0
        self.blocks_placed = 0
        return self.render()

    def close_level(self) -> None:
        """Free the current level's display lists (upstream never does; a long collection would leak them)."""
        if self.level is not None:
            self._window.switch_to()
            for chunk in self.renderer.chunks:
                gl.glDeleteLists(chunk.lists, 2)
            self.level = None

    def step(self, c: Controls) -> np.ndarray:
        """Apply one tick of input, advance the world one 20 Hz tick, render and return the frame."""
        if self.level is None:
            raise RuntimeError("ClassicGame.step() called before reset()")
        p = self.player
        old_pitch, old_yaw = p.xRot, p.yRot
        p.xRot = min(90.0, max(-90.0, p.xRot + float(c.pitch)))
        p.yRot = p.yRot + float(c.yaw)
        p.xRotO += p.xRot - old_pitch
        p.yRotO += p.yRot - old_yaw
        if c.hotbar is not None:
            self.selected = int(c.hotbar)
        p.upPressed, p.downPressed = bool(c.forward), bool(c.back)
        p.leftPressed, p.rightPressed = bool(c.left), bool(c.right)
        p.spacePressed = bool(c.jump)
        self._window.switch_to()
        with self._own_random():
            self.hit = self._pick()
            if self._fires("attack", c.attack, ATTACK_REPEAT_TICKS):
                self._break()
            if self._fires("use", c.use, USE_REPEAT_TICKS):
                self._place()
            self._tick_world()
        self.tick_count += 1
        return self.render()

    def _fires(self, name: str, held: bool, repeat: int) -> bool:
        """A click on press, then one every `repeat` ticks while held (the stock game needs a click each time)."""
        n = self._held[name] + 1 if held else 0
        self._held[name] = n
        return held and (n - 1) % repeat == 0

    def _tick_world(self) -> None:
        self.level.tick()
        self.particles.tick()
        for zombie in list(self.zombies):
            zombie.tick()
            if zombie.removed:
                self.zombies.remove(zombie)
        self.player.tick()

    def _pick(self):
        p = self.player
        eye = Vec3(p.x, p.y, p.z)
        yaw, pitch = math.radians(-p.yRot) + math.pi, math.radians(-p.xRot)
        d = Vec3(math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch))
        return self.level.clip(eye, Vec3(eye.x + d.x * REACH, eye.y + d.y * REACH, eye.z + d.z * REACH))

    def _break(self) -> None:
        h = self.hit
        if h is None:
            return
        old = tiles.tiles[self.level.getTile(h.x, h.y, h.z)]
        if self.level.setTile(h.x, h.y, h.z, 0):
            self.blocks_broken += 1
            if old is not None:
                old.destroy(self.level, h.x, h.y, h.z, self.particles)
            self.hit = self._pick()

    def _place(self) -> None:
        h = self.hit
        if h is None:
            return
        dx, dy, dz = ((0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1), (-1, 0, 0), (1, 0, 0))[h.f]
        x, y, z = h.x + dx, h.y + dy, h.z + dz
        bb = self.player.bb  # unlike the stock game, refuse to place a block inside the player
        if bb.x0 < x + 1 and bb.x1 > x and bb.y0 < y + 1 and bb.y1 > y and bb.z0 < z + 1 and bb.z1 > z:
            return
        if self.level.setTile(x, y, z, PLACEABLE_TILES[self.selected]):
            self.blocks_placed += 1
            self.hit = self._pick()

    # ----- rendering -----
    def render(self) -> np.ndarray:
        """Draw the current state (as the stock game does at partial tick 1.0) and read it back as RGB."""
        self._window.switch_to()
        _GAME_TIME_MS[0] = self.tick_count * 1000 // TICKS_PER_SECOND
        s = self.size
        gl.glViewport(0, 0, s, s)
        _setup_gl_state()
        gl.glClear(gl.GL_COLOR_BUFFER_BIT | gl.GL_DEPTH_BUFFER_BIT)
        p = self.player
        gl.glMatrixMode(gl.GL_PROJECTION)
        gl.glLoadIdentity()
        gluPerspective(70.0, 1.0, 0.05, 1000.0)
        gl.glMatrixMode(gl.GL_MODELVIEW)
        gl.glLoadIdentity()
        gl.glTranslatef(0.0, 0.0, -0.3)
        gl.glRotatef(p.xRot, 1.0, 0.0, 0.0)
        gl.glRotatef(p.yRot, 0.0, 1.0, 0.0)
        gl.glTranslatef(-p.x, -p.y, -p.z)
        gl.glEnable(gl.GL_CULL_FACE)
        self.frustum.calculateFrustum()
        visible = [c for c in self.renderer.chunks if not self.frustum_culling or self.frustum.isVisible(c.aabb)]
        for chunk in visible:  # build a chunk the first time it is seen and after every edit, before drawing it:
            if chunk.isDirty():  # no frame shows a half-built world or an edit one frame late (stock: 8 per frame)
                chunk.rebuild()
        for layer in (0, 1):
            _setup_fog(layer)
            gl.glEnable(gl.GL_FOG)
            gl.glEnable(gl.GL_TEXTURE_2D)
            gl.glBindTexture(gl.GL_TEXTURE_2D, Textures.loadTexture("terrain.png", gl.GL_NEAREST))
            for chunk in visible:
                chunk.render(layer)
            gl.glDisable(gl.GL_TEXTURE_2D)
            for zombie in self.zombies:
                if zombie.isLit() == (layer == 0) and self.frustum.isVisible(zombie.bb):
                    zombie.render(1.0)
            self.particles.render(p, 1.0, layer)
        gl.glDisable(gl.GL_LIGHTING)
        gl.glDisable(gl.GL_TEXTURE_2D)
        gl.glDisable(gl.GL_FOG)
        if self.hit is not None:
            gl.glDisable(gl.GL_ALPHA_TEST)
            self.renderer.renderHit(self.hit)
            gl.glEnable(gl.GL_ALPHA_TEST)
        self._draw_gui()
        gl.glFinish()
        gl.glReadPixels(0, 0, s, s, gl.GL_RGB, gl.GL_UNSIGNED_BYTE, self._pixels)
        return np.frombuffer(self._pixels, dtype=np.uint8).reshape(s, s, 3)[::-1].copy()

    def _draw_gui(self) -> None:
        """The selected block (top right) and the crosshair, on the stock game's 240-unit-high overlay."""
        w = h = 240
        gl.glClear(gl.GL_DEPTH_BUFFER_BIT)
        gl.glMatrixMode(gl.GL_PROJECTION)
        gl.glLoadIdentity()
        gl.glOrtho(0.0, w, h, 0.0, 100.0, 300.0)
        gl.glMatrixMode(gl.GL_MODELVIEW)
        gl.glLoadIdentity()
        gl.glTranslatef(0.0, 0.0, -200.0)
        gl.glPushMatrix()
        gl.glTranslatef(w - 16, 16.0, 0.0)
        gl.glScalef(16.0, 16.0, 16.0)
        gl.glRotatef(30.0, 1.0, 0.0, 0.0)
        gl.glRotatef(45.0, 0.0, 1.0, 0.0)
        gl.glTranslatef(-1.5, 0.5, -0.5)
        gl.glScalef(-1.0, -1.0, 1.0)
        gl.glBindTexture(gl.GL_TEXTURE_2D, Textures.loadTexture("terrain.png", gl.GL_NEAREST))
        gl.glEnable(gl.GL_TEXTURE_2D)
        t = tesselator
        t.init()
        tiles.tiles[PLACEABLE_TILES[self.selected]].render(t, self.level, 0, -2, 0, 0)
        t.flush()
        gl.glDisable(gl.GL_TEXTURE_2D)
        gl.glPopMatrix()
        wc, hc = w // 2, h // 2
        gl.glColor4f(1.0, 1.0, 1.0, 1.0)
        t.init()
        for x0, y0, x1, y1 in ((wc, hc - 4, wc + 1, hc + 5), (wc - 4, hc, wc + 5, hc + 1)):
            t.vertex(x1, y0, 0.0)
            t.vertex(x0, y0, 0.0)
            t.vertex(x0, y1, 0.0)
            t.vertex(x1, y1, 0.0)
        t.flush()

    def close(self) -> None:
        if self._window is not None:
            self.close_level()
        if self._window is not None:
            self._window.close()
            self._window = None


def _make_offscreen_window(size: int):
    display = pyglet.canvas.get_display()
    screen = display.get_default_screen()
    template = gl.Config(double_buffer=False, red_size=8, green_size=8, blue_size=8, alpha_size=8, depth_size=24)
    try:
        config = screen.get_best_config(template)
    except pyglet.window.NoSuchConfigException as e:
        raise RuntimeError("no 8-bit RGBA + 24-bit depth OpenGL config: is Mesa (libegl1-mesa) installed?") from e
    return pyglet.window.Window(width=size, height=size, visible=False, config=config)


def _setup_gl_state() -> None:
    gl.glEnable(gl.GL_TEXTURE_2D)
    gl.glShadeModel(gl.GL_SMOOTH)
    gl.glClearColor(0.5, 0.8, 1.0, 0.0)
    gl.glClearDepth(1.0)
    gl.glEnable(gl.GL_DEPTH_TEST)
    gl.glDepthFunc(gl.GL_LEQUAL)
    gl.glEnable(gl.GL_ALPHA_TEST)
    gl.glAlphaFunc(gl.GL_GREATER, 0.0)


_FOG = {0: (0.001, 16710650), 1: (0.06, 920330)}


def _setup_fog(layer: int) -> None:
    """The stock game's two passes: lit surfaces with thin daylight fog, shadowed ones with dark dense fog."""
    density, rgb = _FOG[layer]
    colour = (gl.GLfloat * 4)((rgb >> 16 & 255) / 255.0, (rgb >> 8 & 255) / 255.0, (rgb & 255) / 255.0, 1.0)
    gl.glFogi(gl.GL_FOG_MODE, gl.GL_VIEWPORT_BIT)
    gl.glFogf(gl.GL_FOG_DENSITY, density)
    gl.glFogfv(gl.GL_FOG_COLOR, colour)
    if layer == 0:
        gl.glDisable(gl.GL_LIGHTING)
    else:
        gl.glEnable(gl.GL_LIGHTING)
        gl.glEnable(gl.GL_COLOR_MATERIAL)
        gl.glLightModelfv(gl.GL_LIGHT_MODEL_AMBIENT, (gl.GLfloat * 4)(0.6, 0.6, 0.6, 1.0))
