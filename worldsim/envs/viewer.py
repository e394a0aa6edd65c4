"""A minimal pygame window that shows frames scaled up (used by render_mode='human')."""

from __future__ import annotations

import numpy as np


class Viewer:
    def __init__(self, title: str, hw: tuple[int, int], scale: int = 8):
        import pygame

        self.pg = pygame
        pygame.init()
        self.size = (hw[1] * scale, hw[0] * scale)
        self.screen = pygame.display.set_mode(self.size)
        pygame.display.set_caption(title)

    def show(self, frame: np.ndarray) -> None:
        surf = self.pg.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
        self.screen.blit(self.pg.transform.scale(surf, self.size), (0, 0))
        self.pg.display.flip()
        self.pg.event.pump()

    def close(self) -> None:
        self.pg.display.quit()
