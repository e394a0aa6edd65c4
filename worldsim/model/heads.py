"""Outcome heads: what happened on the transition frame t -> frame t+1 under action a_t.

A small conv net over the two latent frames plus the action (DIAMOND keeps a separate reward/termination model
too). It predicts *events*, not a task's reward: for each count the real game reports (blocks broken, wood,
planks, a workbench, a wooden pickaxe in the inventory: `ModelConfig.outcome_events`) whether it rose on this
step, and whether the episode ended (death). A task's reward is then computed from those counts by the same
code as in the real game (`envs/indev/rewards.py`), so one model serves every task, staged ones included.
Datasets without counts train one event, "reward": the recorded reward was positive.

Every event is rare (a block breaks on ~2 % of steps, a log is picked up on far fewer, a death ends ~0.03 %), so
training draws half of each batch from the positives of each event in turn. That shifts the odds the heads
learn; `prior_shift` (the log of that shift, measured on the sampler) is subtracted at prediction, so an event
is predicted where it is more likely than not at the real game's rates: a dream pays no reward the game would not.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class OutcomeHeads(nn.Module):
    def __init__(self, latent_channels: int, action_dim: int, events: int, width: int = 64):
        super().__init__()
        self.events = events
        self.conv = nn.Sequential(
            nn.Conv2d(2 * latent_channels, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.act = nn.Sequential(nn.Linear(action_dim, width), nn.SiLU())
        self.out = nn.Sequential(nn.Linear(4 * width + width, 2 * width), nn.SiLU(), nn.Linear(2 * width, events + 1))
        self.register_buffer("prior_shift", torch.zeros(events + 1))  # log-odds added by oversampling (train.py)

    def forward(self, z_prev: torch.Tensor, z_next: torch.Tensor, action_feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> event logits (B, E) and a termination logit (B,)."""
        h = torch.cat([self.conv(torch.cat([z_prev, z_next], dim=1)), self.act(action_feats)], dim=-1)
        o = self.out(h)
        return o[:, :-1], o[:, -1]

    @torch.no_grad()
    def predict(self, z_prev, z_next, action_feats) -> tuple[torch.Tensor, torch.Tensor]:
        """-> events (B, E) in {0, 1} and terminated (B,) bool, at the real data's rates."""
        logits, term = self(z_prev, z_next, action_feats)
        return (logits > self.prior_shift[:-1]).float(), term > self.prior_shift[-1]


def outcome_loss(logits: torch.Tensor, term: torch.Tensor, events: torch.Tensor, terminated: torch.Tensor
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """BCE on every event (B, E) and on termination (B,), on batches that oversample the positives."""
    le = F.binary_cross_entropy_with_logits(logits.float(), events.float())
    lt = F.binary_cross_entropy_with_logits(term.float(), terminated.float())
    with torch.no_grad():
        hit = ((logits > 0) == (events > 0)).float()
        positive = events > 0
        recall = hit[positive].mean().item() if positive.any() else 1.0
    return le + lt, {"heads_event_loss": le.item(), "heads_term_loss": lt.item(), "heads_event_recall": recall,
                     "heads_event_acc": hit.mean().item()}


def episode_events(ep, names: tuple[str, ...], count_keys: list[str]) -> np.ndarray:
    """The events (T, E) of a recorded episode's T steps: each count of `names` (a column of `count_keys` in
    `infos["counts"]`) rose on that step, or "reward": the recorded reward was positive."""
    out = np.zeros((len(ep), len(names)), np.float32)
    for j, name in enumerate(names):
        if name == "reward":
            out[:, j] = ep.rewards > 0
        else:
            out[:, j] = np.diff(ep.infos["counts"][:, count_keys.index(name)]) > 0
    return out
