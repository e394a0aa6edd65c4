"""The dynamics model: a diffusion transformer over spacetime patches of K+1 latent frames.

Each latent frame (C, h, w) is cut into p x p patches -> h*w/p^2 tokens. All tokens of all frames attend to each
other under a *block-causal* mask: a frame sees itself and earlier frames, never later ones. Every frame carries
its own conditioning vector (Diffusion Forcing): the embedding of its own noise level plus the embedding of the
action that led into it. The vector modulates that frame's tokens through adaptive LayerNorm (adaLN-Zero, as in
DiT), so a frame being generated at high noise and a context frame at low noise share one sequence.

Because attention is causal in time, the context frames' keys/values do not depend on the frame being generated:
`first_step` computes them together with the first denoising step, once per generated frame, and `forward_new`
then costs one frame per further step (`context_cache` gives them alone).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldsim.config import DiTConfig
from worldsim.layers import RMSNorm, fourier

Cache = list[tuple[torch.Tensor, torch.Tensor]]


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.q_norm = RMSNorm(width // heads)  # QK-norm: keeps attention logits bounded in bf16
        self.k_norm = RMSNorm(width // heads)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, tokens_per_frame: int, mask: torch.Tensor | None = None,
                prefix: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x: (B, F*N, D); cond: (B, F, D) per frame. Returns the new x and this block's (k, v) for x's tokens."""
        b, length, d = x.shape
        mod = self.ada(F.silu(cond)).repeat_interleave(tokens_per_frame, dim=1)  # (B, F*N, 6D)
        sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=-1)
        h = self.norm1(x) * (1 + sc1) + sh1
        q, k, v = self.qkv(h).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        kv = (k, v)
        if prefix is not None:
            k = torch.cat([prefix[0], k], dim=2)
            v = torch.cat([prefix[1], v], dim=2)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + g1 * self.proj(a.transpose(1, 2).reshape(b, length, d))
        h = self.norm2(x) * (1 + sc2) + sh2
        x = x + g2 * self.mlp(h)
        return x, kv


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig, latent_channels: int, latent_hw: tuple[int, int], frames: int, action_dim: int,
                 in_channels: int | None = None):
        """in_channels: channels per input frame, when frames carry more than their latent (the motion prior)."""
        super().__init__()
        self.cfg = cfg
        self.c = latent_channels
        self.p = cfg.patch
        self.gh, self.gw = latent_hw[0] // cfg.patch, latent_hw[1] // cfg.patch
        self.tokens_per_frame = self.gh * self.gw
        self.frames = frames
        d = cfg.width
        self.patch_in = nn.Linear((in_channels or latent_channels) * cfg.patch**2, d)
        self.pos_space = nn.Parameter(torch.randn(1, 1, self.tokens_per_frame, d) * 0.02)
        self.pos_time = nn.Parameter(torch.randn(1, frames, 1, d) * 0.02)
        self.noise_mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.action_mlp = nn.Sequential(nn.Linear(action_dim, cfg.action_hidden), nn.SiLU(),
                                        nn.Linear(cfg.action_hidden, d))
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(d, 2 * d)
        self.patch_out = nn.Linear(d, latent_channels * cfg.patch**2)
        for lin in (self.ada_out, self.patch_out):  # start as the zero function: training begins stable
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    # ----- tokens <-> latents -----
    def _tokens(self, z: torch.Tensor, t0: int) -> torch.Tensor:
        """(B, F, C, h, w) -> (B, F*N, D) with space and time position embeddings (frames start at slot t0)."""
        b, f, c, h, w = z.shape
        p = self.p
        x = z.reshape(b, f, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(b, f, self.tokens_per_frame, c * p * p)
        x = self.patch_in(x) + self.pos_space + self.pos_time[:, t0:t0 + f]
        return x.reshape(b, f * self.tokens_per_frame, -1)

    def _latents(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, f = cond.shape[:2]
        shift, scale = self.ada_out(F.silu(cond)).repeat_interleave(self.tokens_per_frame, dim=1).chunk(2, dim=-1)
        x = self.patch_out(self.norm_out(x) * (1 + scale) + shift)
        p = self.p
        x = x.reshape(b, f, self.gh, self.gw, self.c, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, f, self.c, self.gh * p, self.gw * p)

    def _cond(self, s: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.noise_mlp(fourier(s, 256).to(actions.dtype)) + self.action_mlp(actions)

    def _mask(self, f: int, device) -> torch.Tensor:
        frame = torch.arange(f, device=device).repeat_interleave(self.tokens_per_frame)
        return frame[None, :] <= frame[:, None]  # query frame may see key frames up to itself

    # ----- training: all frames at once -----
    def forward(self, z: torch.Tensor, s: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z: (B, F, C_in, h, w) noisy latents (+ prior channels); s: (B, F) noise levels; actions: (B, F, A).
        Returns the velocity (B, F, C, h, w)."""
        f = z.shape[1]
        x = self._tokens(z, 0)
        cond = self._cond(s, actions)
        mask = self._mask(f, z.device)
        for blk in self.blocks:
            x, _ = blk(x, cond, self.tokens_per_frame, mask=mask)
        return self._latents(x, cond)

    # ----- rollout: context once, then one frame per denoising step -----
    def _cached_pass(self, z: torch.Tensor, s: torch.Tensor, actions: torch.Tensor, keep: int
                     ) -> tuple[torch.Tensor, torch.Tensor, Cache]:
        """All F frames through the blocks under the block-causal mask; returns the tokens, the conditioning and
        the keys/values of the first `keep` frames (exactly what those frames alone would give: causal mask)."""
        x = self._tokens(z, 0)
        cond = self._cond(s, actions)
        mask = self._mask(z.shape[1], z.device)
        n = keep * self.tokens_per_frame
        cache: Cache = []
        for blk in self.blocks:
            x, (key, val) = blk(x, cond, self.tokens_per_frame, mask=mask)
            cache.append((key[:, :, :n], val[:, :, :n]))
        return x, cond, cache

    def context_cache(self, z: torch.Tensor, s: torch.Tensor, actions: torch.Tensor) -> Cache:
        """Keys/values of the K context frames, in every block."""
        return self._cached_pass(z, s, actions, z.shape[1])[2]

    def first_step(self, z_ctx: torch.Tensor, s_ctx: torch.Tensor, a_ctx: torch.Tensor, z: torch.Tensor,
                   s: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, Cache]:
        """`context_cache` and the first `forward_new` in one pass over K+1 frames (fewer, larger matmuls): the
        block-causal mask keeps the context's keys/values exactly what `context_cache` would compute.
        Returns the new frame's velocity (B, C, h, w) and the context's cache."""
        k = z_ctx.shape[1]
        x, cond, cache = self._cached_pass(torch.cat([z_ctx, z[:, None].to(z_ctx.dtype)], dim=1),
                                           torch.cat([s_ctx, s[:, None]], dim=1),
                                           torch.cat([a_ctx, actions[:, None]], dim=1), keep=k)
        return self._latents(x[:, k * self.tokens_per_frame:], cond[:, k:])[:, 0], cache

    def forward_new(self, z: torch.Tensor, s: torch.Tensor, actions: torch.Tensor, cache: Cache) -> torch.Tensor:
        """The frame after the cached context: z (B, C, h, w), s (B,), actions (B, A) -> velocity (B, C, h, w)."""
        t0 = cache[0][0].shape[2] // self.tokens_per_frame
        x = self._tokens(z[:, None], t0)
        cond = self._cond(s[:, None], actions[:, None])
        for blk, kv in zip(self.blocks, cache):
            x, _ = blk(x, cond, self.tokens_per_frame, prefix=kv)
        return self._latents(x, cond)[:, 0]
