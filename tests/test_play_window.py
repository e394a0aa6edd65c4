"""`worldsim play` in a real window: every mode under an X server (Xvfb), the game's OpenGL in its own process."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

_WINDOW = """
import sys
import numpy as np
import pygame
from worldsim.envs.play import PlayConfig, PlaySession

out = sys.argv[1]
for mode in ("real", "neural", "side-by-side"):
    s = PlaySession(PlayConfig(mode=mode, scale=2, out_dir=f"{out}/{mode}", seed=1))
    assert pygame.display.get_driver() == "x11", pygame.display.get_driver()
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_w, mod=0, unicode="w", scancode=0))
    for _ in range(10):
        for e in pygame.event.get():
            s.handle(e)
        s.tick()
        s.draw()
    assert s.last_action["forward"] == 1
    print(mode, s.screenshot())
    s.close()
"""


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (apt install xvfb; .ci/run installs it)")
def test_every_play_mode_runs_in_a_real_x_window(tmp_path):
    display = f":{100 + os.getpid() % 500}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):  # wait for the server's socket
            if Path(f"/tmp/.X11-unix/X{display[1:]}").exists():
                break
            time.sleep(0.1)
        env = {**os.environ, "DISPLAY": display, "SDL_VIDEODRIVER": "x11", "SDL_AUDIODRIVER": "dummy"}
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run([sys.executable, "-c", _WINDOW, str(tmp_path)], cwd=root, env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
    finally:
        xvfb.terminate()
        xvfb.wait()
    from PIL import Image

    for mode, panels in (("real", 1), ("neural", 1), ("side-by-side", 2)):
        shots = list((tmp_path / mode).glob("screenshot_*.png"))
        assert len(shots) == 1, mode
        img = np.asarray(Image.open(shots[0]).convert("RGB"))
        assert img.shape == (128, 128 * panels, 3)
        for p in range(panels):  # every panel shows a picture, not a blank window
            assert img[:, 128 * p:128 * (p + 1)].std() > 10, (mode, p)
