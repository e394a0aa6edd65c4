"""Minecraft Indev 0.31 (`minecraft-python==0.31.20100130`) driven headless: one game, one level, one process.

Upstream, `Minecraft` is itself a pyglet window whose `run()` loop reads the wall clock, seeds every Java-style
`Random()` from it, plays sound and grabs the mouse. This driver builds the objects `run()` would build, then
advances exactly one 20 Hz tick per `step` and renders one frame off-screen. The game is patched from outside
(a subclass, replaced module attributes), never copied.

Why one process per level: the game keeps state no reset reaches — a C-level global random stream (particles,
animated textures, mobs), a level generator that trusts `malloc` to return zeroed memory (a second level in one
process is corrupt), and tick lists ordered by object address. A fresh process with a fixed clock, a fixed hash
seed and no address randomisation (see `envs/indev/process.py`) makes a game a pure function of (seed, actions).
"""

from __future__ import annotations

import math
import os
import sys
import time as _real_time
import types
from dataclasses import dataclass, field

import numpy as np

GAME_VERSION = "Indev 0.31 (minecraft-python 0.31.20100130)"
TICKS_PER_SECOND = 20
LEVEL_TYPES = ("inland", "island", "floating", "flat")
THEMES = ("normal", "hell")
LEVEL_SIZES = (128, 256, 512)
#: The GUI (HUD, inventory, workbench) is laid out in a square of this many GUI pixels that covers the frame,
#: so the 176-pixel inventory fits in a 64-pixel frame as it fits in the stock game's window.
GUI_PIXELS = 192
#: Stock mouse sensitivity: `Entity.turn` rotates 0.15° per mouse count.
DEGREES_PER_COUNT = 0.15
#: With a GUI open, the camera action moves the cursor by this many GUI pixels per degree (as MineRL moves it).
CURSOR_PIXELS_PER_DEGREE = 1.0


class _GameClock(types.ModuleType):
    """Stands in for `time` inside the game: `Random()` seeds from `perf_counter_ns`, which here counts calls."""

    def __init__(self, seed: int):
        super().__init__("time")
        self._calls = 0
        self._seed = int(seed)

    def perf_counter_ns(self) -> int:
        self._calls += 1
        return (self._seed * 1_000_003 + self._calls * 7919) & (2**62 - 1)

    def time(self) -> float:
        return 1_264_809_600.0  # 30 January 2010, the version's date: level creation times are fixed

    def __getattr__(self, name: str):
        return getattr(_real_time, name)


_BOOTED: dict = {}


def boot(seed: int) -> types.SimpleNamespace:
    """Import the game under a fixed clock (once per process: the game's global random stream seeds at import)."""
    if _BOOTED:
        if _BOOTED["seed"] != seed:
            raise RuntimeError("one Indev game per process: this process already booted with another seed")
        return _BOOTED["ns"]
    import pyglet

    pyglet.options["headless"] = True
    pyglet.options["debug_gl"] = False
    pyglet.options["audio"] = ("silent",)
    import pyglet.media

    pyglet.media.get_audio_driver()  # the silent driver, chosen before the game asks for OpenAL
    clock = _GameClock(seed)
    outside = sys.modules["time"]
    sys.modules["time"] = clock  # JavaUtils' module-level generator seeds itself while it is imported
    try:
        import mc.JavaUtils as java_utils
    finally:
        sys.modules["time"] = outside
    java_utils.time = clock
    from mc.net.minecraft.client import Minecraft as minecraft_module

    minecraft_module.time = clock
    minecraft_module.GuiGameOver = _game_over_screen(minecraft_module.GuiGameOver)
    from mc.net.minecraft.client.effect.EffectRenderer import EffectRenderer
    from mc.net.minecraft.client.GameSettings import GameSettings
    from mc.net.minecraft.client.gui import ScaledResolution as scaled_module
    from mc.net.minecraft.client.gui.container.GuiInventory import GuiInventory
    from mc.net.minecraft.client.gui.FontRenderer import FontRenderer
    from mc.net.minecraft.client.gui.GuiIngame import GuiIngame
    from mc.net.minecraft.client.OpenGlCapsChecker import OpenGlCapsChecker
    from mc.net.minecraft.client.player.MovementInput import MovementInput
    from mc.net.minecraft.client.render import RenderGlobal as render_global_module
    from mc.net.minecraft.client.render.RenderEngine import RenderEngine
    from mc.net.minecraft.client.render.RenderGlobal import RenderGlobal
    from mc.net.minecraft.client.render.texture.TextureFlamesFX import TextureFlamesFX
    from mc.net.minecraft.client.render.texture.TextureGearsFX import TextureGearsFX
    from mc.net.minecraft.client.render.texture.TextureWaterFlowFX import TextureWaterFlowFX
    from mc.net.minecraft.game.item.Items import items
    from mc.net.minecraft.game.level.block.Blocks import blocks
    from pyglet import gl

    resources = os.path.join(os.path.dirname(java_utils.__file__), "resources")
    pyglet.resource.path = [resources]
    pyglet.resource.reindex()
    _install_gui_resolution(scaled_module.ScaledResolution)
    render_global_module.cmp_to_key = _sort_key
    from mc.net.minecraft.client.render import EntityRenderer as entity_renderer_module

    entity_renderer_module.RenderBlocks = _drawn_when_inside(entity_renderer_module.RenderBlocks)
    ns = types.SimpleNamespace(
        Minecraft=minecraft_module.Minecraft, EffectRenderer=EffectRenderer, GuiInventory=GuiInventory,
        FontRenderer=FontRenderer, GuiIngame=GuiIngame, GameSettings=GameSettings,
        OpenGlCapsChecker=OpenGlCapsChecker, MovementInput=MovementInput, RenderEngine=RenderEngine,
        RenderGlobal=RenderGlobal, render_global_module=render_global_module, texture_fx=(
            TextureWaterFlowFX, lambda: TextureFlamesFX(0), lambda: TextureFlamesFX(1),
            lambda: TextureGearsFX(0), lambda: TextureGearsFX(1)),
        items=items, blocks=blocks, gl=gl, pyglet=pyglet, names=_item_names(blocks, items))
    ns.ids = {name: i for i, name in ns.names.items()}
    _BOOTED.update(seed=seed, ns=ns)
    return ns


def _install_gui_resolution(original: type) -> None:
    """Lay every GUI out in GUI_PIXELS × GUI_PIXELS whatever the frame size (upstream: one GUI pixel per pixel)."""

    class GuiResolution(original):
        def __init__(self, width, height):
            scale = GUI_PIXELS / max(1, min(width, height))
            self._w, self._h = round(width * scale), round(height * scale)

        def getScaledWidth(self):
            return self._w

        def getScaledHeight(self):
            return self._h

    for module in list(sys.modules.values()):
        if module is not None and getattr(module, "__name__", "").startswith("mc.") \
                and getattr(module, "ScaledResolution", None) is original:
            module.ScaledResolution = GuiResolution
    sys.modules["mc.net.minecraft.client.gui.ScaledResolution"].ScaledResolution = GuiResolution


def _sort_key(compare):
    """`functools.cmp_to_key` for the world renderer's two chunk sorts, as key functions computing each chunk's
    distance once. Why: the comparators (a Python call and two distances per comparison) were a third of the
    frame time; the keys order chunks the same way (the comparators never say "equal"; ties keep their order)."""
    import functools

    sorter = getattr(compare, "__self__", None)
    kind = type(sorter).__name__
    if kind == "RenderSorter":  # chunks to rebuild: the visible last, nearer later (built from the end)
        player = sorter._RenderSorter__player
        return lambda chunk: (bool(chunk.isInFrustum), -chunk.distanceToEntitySquared(player))
    if kind == "EntitySorter":  # chunks to draw: nearest first
        player = sorter._EntitySorter__player
        return lambda chunk: chunk.distanceToEntitySquared(player)
    return functools.cmp_to_key(compare)


def _game_over_screen(original: type) -> type:
    """The game-over screen upstream adds two buttons, then disables a third it never made (IndexError): the game
    died on the tick after every death. The two buttons are in place when it fails, so the screen is complete."""

    class GameOver(original):
        def setWorldAndResolution(self, minecraft, width, height):
            try:
                super().setWorldAndResolution(minecraft, width, height)
            except IndexError:
                pass

    return GameOver


def _drawn_when_inside(render_blocks: type) -> type:
    """The game's view from inside a solid block queues the surrounding blocks' faces on the shared tessellator
    but never starts or draws them, so the next draw in the frame fails ("OMG ALREADY VERTICES!") and the game
    dies whenever the eye enters a block (a jump under a ledge, a step into sand). Draw each of those blocks."""

    class DrawnInside:
        def __init__(self, tessellator, world):
            self._tessellator, self._blocks = tessellator, render_blocks(tessellator, world)

        def renderBlockAllFaces(self, block, x: int, y: int, z: int) -> None:
            self._tessellator.startDrawingQuads()
            self._blocks.renderBlockAllFaces(block, x, y, z)
            self._tessellator.draw()

    return DrawnInside


def _item_names(blocks, items) -> dict[int, str]:
    """Item id → the attribute name the game gives it (`wood`, `planks`, `pickaxeWood`, ...)."""
    names: dict[int, str] = {}
    for name, value in vars(blocks).items():
        block_id = getattr(value, "blockID", None)
        if isinstance(block_id, int) and block_id > 0:
            names.setdefault(block_id, name)
    for name, value in vars(items).items():
        item_id = getattr(value, "shiftedIndex", None)
        if isinstance(item_id, int):
            names.setdefault(item_id, name)
    return names


@dataclass
class LevelSpec:
    """What the game's own "New level" screen asks: size, type and theme."""

    size: int = 128
    type: str = "inland"
    theme: str = "normal"

    def __post_init__(self):
        if self.size not in LEVEL_SIZES:
            raise ValueError(f"level size must be one of {LEVEL_SIZES}, got {self.size}")
        if self.type not in LEVEL_TYPES:
            raise ValueError(f"level type must be one of {LEVEL_TYPES}, got {self.type!r}")
        if self.theme not in THEMES:
            raise ValueError(f"level theme must be one of {THEMES}, got {self.theme!r}")


@dataclass
class Controls:
    """What is held during one tick. `camera` is [Δpitch, Δyaw] degrees (positive: look down, turn right)."""

    forward: bool = False
    back: bool = False
    left: bool = False
    right: bool = False
    jump: bool = False
    attack: bool = False
    use: bool = False
    inventory: bool = False
    hotbar: int = -1  # 0-based slot, -1 keeps the selection
    camera: tuple[float, float] = field(default=(0.0, 0.0))


class IndevGame:
    """The game of this process: a generated level, the survival player in it, an off-screen frame."""

    def __init__(self, seed: int, size: int = 64, level: LevelSpec | None = None):
        if not 16 <= size <= 1024:
            raise ValueError(f"size must be between 16 and 1024 pixels, got {size}")
        self.size = size
        self.level = level or LevelSpec()
        g = self._g = boot(seed)
        gl = g.gl
        self.mc = _make_client(g, size)
        gl.glEnable(gl.GL_TEXTURE_2D)
        gl.glShadeModel(gl.GL_SMOOTH)
        gl.glClearDepth(1.0)
        gl.glEnable(gl.GL_DEPTH_TEST)
        gl.glDepthFunc(gl.GL_LEQUAL)
        gl.glEnable(gl.GL_ALPHA_TEST)
        gl.glAlphaFunc(gl.GL_GREATER, 0.0)
        gl.glCullFace(gl.GL_BACK)
        mc = self.mc
        mc._Minecraft__glCapabilities = g.OpenGlCapsChecker()
        mc.options = g.GameSettings(mc, os.devnull + "-worldsim-no-options")  # never read, never written
        engine = mc.renderEngine = g.RenderEngine(mc.options)
        engine.registerTextureFX(mc._Minecraft__textureLavaFX)
        engine.registerTextureFX(mc._Minecraft__textureWaterFX)
        for make in g.texture_fx:
            engine.registerTextureFX(make())
        mc.fontRenderer = g.FontRenderer(mc.options, "default.png", engine)
        chunks = (self.level.size // 8) ** 2 * (64 // 8)
        g.render_global_module.gl = _DisplayListBudget(gl, 3 * chunks + 2)
        mc.renderGlobal = g.RenderGlobal(mc, engine)
        g.render_global_module.gl = gl
        mc.generateNewLevel(LEVEL_SIZES.index(self.level.size), 0, LEVEL_TYPES.index(self.level.type),
                            THEMES.index(self.level.theme))
        mc.effectRenderer = g.EffectRenderer(mc.theWorld, engine)
        mc.ingameGUI = g.GuiIngame(mc)
        self.blocks_broken = 0
        self._log, self._log_tick = None, None  # the nearest log and the tick it was looked up (None: look again)
        self._count_breaks(mc.playerController)
        self.input = _held_keys(g.MovementInput)
        mc.thePlayer.movementInput = self.input
        self.cursor = [GUI_PIXELS / 2, GUI_PIXELS / 2]
        self._held = {"attack": False, "use": False, "inventory": False}
        self._pixels = (gl.GLubyte * (size * size * 3))()
        self.ticks = 0
        self.render()

    # ----- one tick -----
    def step(self, c: Controls) -> None:
        mc, p, pyglet = self.mc, self.mc.thePlayer, self._g.pyglet
        mouse = pyglet.window.mouse
        screen = mc.currentScreen
        if c.inventory and not self._held["inventory"]:
            mc.on_key_press(mc.options.keyBindInventory.keyCode, 0)
            if mc.currentScreen is not screen:
                self.cursor = [GUI_PIXELS / 2, GUI_PIXELS / 2]
            screen = mc.currentScreen
        dpitch, dyaw = (float(x) for x in c.camera)
        if screen is None:
            if c.hotbar >= 0:
                p.inventory.currentItem = int(c.hotbar)
            self.input.hold(c.forward, c.back, c.left, c.right, c.jump)
            if dpitch or dyaw:
                p.turn(dyaw / DEGREES_PER_COUNT, -dpitch / DEGREES_PER_COUNT)
        else:
            self.input.hold(False, False, False, False, False)
            k = CURSOR_PIXELS_PER_DEGREE
            self.cursor = [min(GUI_PIXELS - 1.0, max(0.0, self.cursor[0] + dyaw * k)),
                           min(GUI_PIXELS - 1.0, max(0.0, self.cursor[1] + dpitch * k))]
        self._place_mouse()
        for name, button in (("attack", mouse.LEFT), ("use", mouse.RIGHT)):
            held = bool(getattr(c, name))
            if held and not self._held[name]:
                mc.on_mouse_press(int(mc.mouseX), int(mc.mouseY), button, 0)
            mc.msh[button] = held
            self._held[name] = held
        self._held["inventory"] = bool(c.inventory)
        mc._Minecraft__ticksRan += 1
        mc._Minecraft__runTick()
        self.ticks += 1

    def _count_breaks(self, controller) -> None:
        removed = controller.sendBlockRemoved

        def counted(x, y, z):
            changed = removed(x, y, z)
            if changed:
                self.blocks_broken += 1
            return changed

        controller.sendBlockRemoved = counted

    def _place_mouse(self) -> None:
        """The window-pixel position the game's GUI code turns back into the GUI cursor."""
        mc = self.mc
        mc.mouseX = self.cursor[0] * mc.width / GUI_PIXELS
        mc.mouseY = (GUI_PIXELS - 1 - self.cursor[1]) * mc.height / GUI_PIXELS

    def render(self) -> np.ndarray:
        """Draw the world, the HUD and any open GUI (with the cursor) and read the frame back, top row first."""
        mc, gl, s = self.mc, self._g.gl, self.size
        gl.glEnable(gl.GL_TEXTURE_2D)
        mc.playerController.setPartialTime(1.0)
        mc.entityRenderer.updateCameraAndRender(1.0)
        gl.glReadPixels(0, 0, s, s, gl.GL_RGB, gl.GL_UNSIGNED_BYTE, self._pixels)
        frame = np.frombuffer(self._pixels, np.uint8).reshape(s, s, 3)[::-1].copy()
        if mc.currentScreen is not None:
            _draw_cursor(frame, self.cursor[0] * s / GUI_PIXELS, self.cursor[1] * s / GUI_PIXELS)
        return frame

    # ----- state -----
    def inventory_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for stack in self.mc.thePlayer.inventory.mainInventory:
            if stack is not None and stack.stackSize > 0:
                name = self._g.names.get(stack.itemID, f"item{stack.itemID}")
                counts[name] = counts.get(name, 0) + int(stack.stackSize)
        return counts

    def _target(self) -> list | None:
        """[x, y, z, block name] under the crosshair within reach (as of the last frame), or None."""
        hit = self.mc.objectMouseOver
        if hit is None or hit.typeOfHit != 0:
            return None
        return [int(hit.blockX), int(hit.blockY), int(hit.blockZ), self.block_at(hit.blockX, hit.blockY, hit.blockZ)]

    def _nearest_log(self, reach: int = 10, every: int = 10) -> list[int] | None:
        """[x, y, z] of the closest log within `reach` blocks across and a few up or down, looked up every `every`
        ticks (a scan of ~3,000 blocks): what a scripted player that chops trees walks to (worldsim.agents.explore)."""
        if self._log_tick is not None and self.ticks - self._log_tick < every:
            return self._log
        self._log_tick = self.ticks
        p, world, wood = self.mc.thePlayer, self.mc.theWorld, self._g.ids["wood"]
        px, py, pz = (int(np.floor(v)) for v in (p.posX, p.posY, p.posZ))
        best, self._log = None, None
        for y in range(py - 3, py + 4):
            for x in range(px - reach, px + reach + 1):
                for z in range(pz - reach, pz + reach + 1):
                    if world.getBlockId(x, y, z) == wood:
                        d = (x - px) ** 2 + (z - pz) ** 2 + 4 * (y - py) ** 2  # prefer logs at eye height
                        if best is None or d < best:
                            best, self._log = d, [x, y, z]
        return self._log

    def _stack(self, stack) -> list | None:
        """[name, count] of an item stack, None for an empty slot."""
        if stack is None or stack.stackSize <= 0:
            return None
        return [self._g.names.get(stack.itemID, f"item{stack.itemID}"), int(stack.stackSize)]

    def info(self) -> dict:
        p, mc = self.mc.thePlayer, self.mc
        screen = mc.currentScreen
        return {
            "pos": [float(p.posX), float(p.posY), float(p.posZ)],
            "pitch": float(p.rotationPitch),
            "yaw": float(p.rotationYaw),
            "health": int(p.health),
            "dead": bool(p.health <= 0),
            "on_ground": bool(p.onGround),
            "in_water": bool(p.handleWaterMovement()),
            "selected_slot": int(p.inventory.currentItem),
            "inventory": self.inventory_counts(),
            "hotbar": [self._stack(s) for s in p.inventory.mainInventory[:9]],
            "cursor_item": self._stack(getattr(screen, "_GuiContainer__itemStack", None)),
            "blocks_broken": self.blocks_broken,
            "target": self._target(),
            "nearest_log": self._nearest_log(),
            "gui": None if screen is None else type(screen).__name__,
            "cursor": [float(x) for x in self.cursor],
            "tick": self.ticks,
        }

    def block_at(self, x: int, y: int, z: int) -> str:
        block = self.mc.theWorld.getBlockId(int(x), int(y), int(z))
        return "air" if block == 0 else self._g.names.get(block, f"block{block}")

    # ----- commands (as MineRL's chat commands /tp, /setblock, /give): for tests, evaluations and task set-ups -----
    def teleport(self, x: float, y: float, z: float, pitch: float | None = None, yaw: float | None = None) -> None:
        p = self.mc.thePlayer
        p.setPosition(float(x), float(y), float(z))
        p.prevPosX, p.prevPosY, p.prevPosZ = p.posX, p.posY, p.posZ
        p.motionX = p.motionY = p.motionZ = 0.0
        if pitch is not None:
            p.rotationPitch = p.prevRotationPitch = float(pitch)
        if yaw is not None:
            p.rotationYaw = p.prevRotationYaw = float(yaw)
        self._log_tick = None  # moved: look for the nearest log again

    def set_block(self, x: int, y: int, z: int, name: str) -> None:
        self.mc.theWorld.setBlockWithNotify(int(x), int(y), int(z), 0 if name == "air" else self._id(name))
        self._log_tick = None

    def give(self, name: str, count: int = 1) -> None:
        from mc.net.minecraft.game.item.ItemStack import ItemStack

        self.mc.thePlayer.inventory.addItemStackToInventory(ItemStack(self._id(name), int(count)))

    def _id(self, name: str) -> int:
        if name not in self._g.ids:
            raise ValueError(f"unknown block or item {name!r}")
        return self._g.ids[name]


def _make_client(g, size: int):
    """The game's window class with the parts that need a desktop turned off (mouse grab, sound, loading screen)."""

    class HeadlessMinecraft(g.Minecraft):
        VERSION_STRING = ""  # the "0.31" the HUD draws in the corner: text a world model should not have to learn

        def set_exclusive_mouse(self, exclusive=True):
            pass

        def set_mouse_position(self, x, y):
            pass

    mc = HeadlessMinecraft(False, False, width=size, height=size, visible=False)
    mc.running = True
    mc.isGamePaused = False
    mc.ingameFocus = True
    mc.msh = g.pyglet.window.mouse.MouseStateHandler()
    mc.ksh = g.pyglet.window.key.KeyStateHandler()
    mc.sndManager = _Silence()
    mc.loadingScreen = _Silence()
    return mc


class _Silence:
    """Answers every call with nothing: the sound manager and the loading screen of a game nobody watches."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _DisplayListBudget:
    """`pyglet.gl` for the world renderer, which reserves 6.3 M display lists; the level needs `lists`."""

    def __init__(self, gl, lists: int):
        self._gl, self._lists = gl, lists

    def glGenLists(self, n: int) -> int:
        return self._gl.glGenLists(min(int(n), self._lists))

    def __getattr__(self, name):
        return getattr(self._gl, name)


def _held_keys(base: type):
    class HeldKeys(base):
        """The player's movement input, set from the action instead of the keyboard."""

        def __init__(self):
            super().__init__()
            self._keys = (False,) * 5

        def hold(self, forward, back, left, right, jump) -> None:
            self._keys = (bool(forward), bool(back), bool(left), bool(right), bool(jump))

        def resetKeyState(self):
            self._keys = (False,) * 5

        def checkKeyForMovementInput(self, symbol, state):
            pass

        def updatePlayerMoveState(self):
            forward, back, left, right, jump = self._keys
            self.moveForward = float(back) - float(forward)
            self.moveStrafe = float(right) - float(left)
            self.jump = jump

    return HeldKeys()


def _draw_cursor(frame: np.ndarray, x: float, y: float) -> None:
    """A small arrow at the cursor (the stock game leaves it to the desktop), white with a dark edge."""
    h, w = frame.shape[:2]
    scale = max(1, round(w / 64))
    cx, cy = int(math.floor(x)), int(math.floor(y))
    for dy in range(4 * scale):
        for dx in range(dy // 2 + 1):
            px, py = cx + dx, cy + dy
            if 0 <= px < w and 0 <= py < h:
                edge = dx == dy // 2 or dy == 4 * scale - 1
                frame[py, px] = (40, 40, 40) if edge else (255, 255, 255)
