"""Reward and termination heads: what happened on the transition frame t -> frame t+1 under action a_t.

A small conv net over the two latent frames plus the action (DIAMOND keeps a separate reward/termination model
too). The reward is predicted as its sign, -1 / 0 / +1, as DIAMOND does; that is exact for the classic game,
whose reward is +1 per broken block. Both events are rare (a block breaks on ~2% of steps, a fall off the world
ends ~0.02% of them), so the losses weight the rare classes up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OutcomeHeads(nn.Module):
    def __init__(self, latent_channels: int, action_dim: int, width: int = 64):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(2 * latent_channels, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.act = nn.Sequential(nn.Linear(action_dim, width), nn.SiLU())
        self.out = nn.Sequential(nn.Linear(4 * width + width, 2 * width), nn.SiLU(), nn.Linear(2 * width, 4))

    def forward(self, z_prev: torch.Tensor, z_next: torch.Tensor, action_feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> reward-sign logits (B, 3) for (-1, 0, +1) and a termination logit (B,)."""
        h = torch.cat([self.conv(torch.cat([z_prev, z_next], dim=1)), self.act(action_feats)], dim=-1)
        o = self.out(h)
        return o[:, :3], o[:, 3]

    @torch.no_grad()
    def predict(self, z_prev, z_next, action_feats) -> tuple[torch.Tensor, torch.Tensor]:
        """-> reward in {-1, 0, +1} (B,) and terminated (B,) bool."""
        logits, term = self(z_prev, z_next, action_feats)
        return (logits.argmax(-1) - 1).float(), term > 0


def outcome_loss(logits: torch.Tensor, term: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor,
                 reward_weights: torch.Tensor, term_pos_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Class-weighted cross-entropy on the reward sign + positively weighted BCE on termination."""
    target = (torch.sign(reward) + 1).long()
    lr = F.cross_entropy(logits.float(), target, weight=reward_weights)
    lt = F.binary_cross_entropy_with_logits(term.float(), terminated.float(),
                                            pos_weight=torch.tensor(term_pos_weight, device=term.device))
    with torch.no_grad():
        acc = (logits.argmax(-1) == target).float().mean().item()
    return lr + lt, {"heads_reward_loss": lr.item(), "heads_term_loss": lt.item(), "heads_reward_acc": acc}
