"""The dynamics model: a space-time transformer over patches of latent frames.

Each latent frame (C, h, w) is cut into p x p patches -> N tokens. Two kinds of layers alternate:

- **space layers**: the N tokens of one frame attend to each other (what is where in this picture);
- **time layers** (every `time_every`-th layer, as Dreamer 4 does): each patch position attends to the same
  position in itself and the `context` frames before it, causally, with rotary positions in time, so only
  *relative* time matters and a model trained on 48-frame sequences runs for 10,000 frames.

Why factorised: joint attention over T frames costs (T*N)^2; space layers cost N^2 per frame and time layers
T per token, so a new frame costs one frame of work whatever the context length, once the past frames'
keys/values are kept. That is `KVCache`: a ring of the last `context` frames' time-layer keys/values per dream.
Space layers need no cache (they never look at other frames).

Every frame carries its own conditioning (Diffusion Forcing): its signal level tau, the step size d the
sampler will take from it (shortcut models) and the action that led into it. They modulate that frame's tokens
through adaptive RMS normalisation (adaLN-Zero, as DiT). The network predicts the clean frame (x-prediction):
`worldsim.model.shortcut` turns that into steps.

**Steering** (`DiTConfig.steer`): turning the camera moves the whole picture, so the new frame at patch p shows
what the last frame had at p + delta(action). Modulation by the action is per channel and cannot move anything
in space; with learned absolute positions the network also has no cheap way to look "one patch to the left".
So space layers use 2D rotary positions, and each head's queries sit at p + offset, the offset (rows, columns,
in patches) learnt from the frame's conditioning (zero at the start). A head that attends locally then reads
from where the action says the content came from: the model learns how far each key moves the picture instead
of being told. Steering alone did not learn it in 1,100 steps; with `ModelConfig.motion_prior` each frame is also
given the frame before it moved by the camera action (`worldsim.model.motion_prior`), and steering is left to what the
shift does not explain (parallax, the revealed strip read from the right place of the frames before).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from worldsim.model.config import DiTConfig


def fourier(s: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of a level s in [0, 1] (scaled like a 0..1000 timestep)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=s.device, dtype=torch.float32) / half)
    ang = s.float()[..., None] * 1000.0 * freqs
    return torch.cat([ang.cos(), ang.sin()], dim=-1)


class RMSNorm(nn.Module):
    """RMS normalisation written out, so it runs in whatever dtype autocast hands it (no fp32 round trip);
    `affine=False` when adaLN supplies the scale."""

    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return y if self.weight is None else y * self.weight.to(x.dtype)


SHORT = 4  # a call of at most this many frames attends written out (a dream's step), longer ones fused
EMPTY = -(2**40)  # the time stamp of a ring slot that holds no frame: further away than any window


class KVCache:
    """Keys/values of the last `size` frames of a batch of dreams, in every time layer (a ring buffer).

    Slot j of row b holds the frame with time stamp `times[b, j]` (EMPTY: none). Keys are stored already rotated
    by their absolute time (float64 angles, so exact for hours of frames): a query rotated by its own time then
    sees only the difference. Rows advance independently (a vector env resets one dream while others go on).
    The network only reads the ring (`past`); the caller writes the finished frames after the pass (`write`), so
    the pass itself is a pure function of its inputs (what `SpaceTimeTransformer.compile` needs)."""

    def __init__(self, batch: int, size: int, layers: int, device: torch.device | str = "cpu"):
        self.size, self.layers = size, layers
        self.times = torch.full((batch, size), EMPTY, dtype=torch.int64, device=device)
        self.k: list[torch.Tensor | None] = [None] * layers
        self.v: list[torch.Tensor | None] = [None] * layers

    @property
    def batch(self) -> int:
        return self.times.shape[0]

    def clear_rows(self, rows: torch.Tensor) -> None:
        """Forget everything rows `rows` saw (their dreams restart)."""
        self.times[rows] = EMPTY

    def past(self) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Every time layer's ring keys and values (B, N, H, size, hd), None before anything was written."""
        if self.k[0] is None:
            return None
        return list(zip(self.k, self.v))

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor, times: torch.Tensor) -> None:
        """Store the keys/values (B, N, H, F, hd) of F finished frames stamped `times` (B, F) into each row's ring."""
        b, f = times.shape
        rows = torch.arange(b, device=k.device)
        if self.k[layer] is None:
            shape = (b, *k.shape[1:3], self.size, k.shape[4])
            self.k[layer] = torch.zeros(shape, dtype=k.dtype, device=k.device)
            self.v[layer] = torch.zeros(shape, dtype=v.dtype, device=v.device)
        for j in range(f):
            slot = times[:, j] % self.size
            self.k[layer][rows, :, :, slot] = k[:, :, :, j].to(self.k[layer].dtype)
            self.v[layer][rows, :, :, slot] = v[:, :, :, j].to(self.v[layer].dtype)
        if layer == self.layers - 1:  # the stamps move once every layer has written
            for j in range(f):
                self.times[rows, times[:, j] % self.size] = times[:, j]

    def subset(self, rows: torch.Tensor) -> KVCache:
        """A copy holding only `rows` (for a call on part of the batch; `scatter` puts it back)."""
        out = KVCache(len(rows), self.size, self.layers, self.times.device)
        out.times = self.times[rows].clone()
        out.k = [None if k is None else k[rows] for k in self.k]
        out.v = [None if v is None else v[rows] for v in self.v]
        return out

    def scatter(self, rows: torch.Tensor, part: KVCache) -> None:
        self.times[rows] = part.times
        for i in range(self.layers):
            if part.k[i] is None:
                continue
            if self.k[i] is None:
                shape = (self.batch, *part.k[i].shape[1:])
                self.k[i] = torch.zeros(shape, dtype=part.k[i].dtype, device=part.k[i].device)
                self.v[i] = torch.zeros(shape, dtype=part.v[i].dtype, device=part.v[i].device)
            self.k[i][rows] = part.k[i]
            self.v[i][rows] = part.v[i]


def rotation_tables(ang: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Angles (..., m) of m pairs of channels -> what `rotate` multiplies by, in `dtype`: each pair's cosine twice
    and its sine signed (-sin, sin)."""
    cos, sin = ang.cos().to(dtype), ang.sin().to(dtype)
    return cos.repeat_interleave(2, -1), torch.stack([-sin, sin], -1).flatten(-2)


def rotate(x: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x (..., 2m) with each pair of channels (2i, 2i+1) rotated by its angle: x * cos + swap(x) * (-sin, sin).
    The same products and sums, so the same rounding in any dtype, as x1 cos - x2 sin, x1 sin + x2 cos written
    out on strided halves, in half the elementwise passes (a dreamed frame makes 32 rotations)."""
    cos, sin = tables
    return x * cos + x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2) * sin


def time_angles(times: torch.Tensor, hd: int) -> torch.Tensor:
    """The rotary angles (B, 1, 1, F, hd/2) of frames stamped `times` (B, F), float64: exact for hours of frames."""
    freqs = torch.exp(-math.log(1000.0) * torch.arange(0, hd, 2, dtype=torch.float64, device=times.device) / hd)
    return (times.double()[..., None] * freqs)[:, None, None]


def space_angles(pos: torch.Tensor, hd: int) -> torch.Tensor:
    """The rotary angles (..., hd/2) of 2D positions pos (..., 2) (rows, columns; fractional allowed): the first
    half of each head's pairs turn with the row, the second with the column, frequencies pi down to pi/64 per
    patch (a local kernel is sharp and the grid stays unambiguous)."""
    n = hd // 4  # frequencies per axis
    freqs = math.pi * torch.exp(-math.log(64.0) * torch.arange(n, dtype=torch.float32, device=pos.device) / max(1, n))
    return (pos.float()[..., :, None] * freqs).flatten(-2)  # rows' angles then columns'


def rope2d(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., hd) by 2D positions pos (..., 2) (`space_angles`)."""
    return rotate_2d(x, rotation_tables(space_angles(pos, x.shape[-1]), x.dtype))


def rotate_2d(x: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x (..., hd) rotated by 2D positions' `rotation_tables`; channels past 4 * (hd // 4) stay as they are."""
    hd = x.shape[-1]
    m = 4 * (hd // 4)
    return rotate(x, tables) if m == hd else torch.cat([rotate(x[..., :m], tables), x[..., m:]], dim=-1)


class Rotary:
    """The rotary tables of one forward pass, made once at first use (in the dtype the layer's queries have) and
    shared by every layer: the frames' times for the time layers, the patch grid for the space layers' keys.
    Only a steering query's positions differ per layer."""

    def __init__(self, times: torch.Tensor, grid: torch.Tensor, hd: int):
        self.times, self.grid, self.hd = times, grid, hd
        self._made: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def time(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if ("time", dtype) not in self._made:
            self._made["time", dtype] = rotation_tables(time_angles(self.times, self.hd), dtype)
        return self._made["time", dtype]

    def keys(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Tables (N, 1, hd) of the patch grid (every head alike)."""
        if ("keys", dtype) not in self._made:
            self._made["keys", dtype] = rotation_tables(space_angles(self.grid[:, None], self.hd), dtype)
        return self._made["keys", dtype]


class Block(nn.Module):
    """One attention layer (space or time) and a SwiGLU MLP, both modulated by each frame's conditioning."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, time: bool, steer: bool = False):
        super().__init__()
        self.heads, self.time = heads, time
        self.norm1 = RMSNorm(width, affine=False)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_norm = RMSNorm(width // heads)  # QK-norm: bounded attention logits in bf16
        self.k_norm = RMSNorm(width // heads)
        self.proj = nn.Linear(width, width)
        self.norm2 = RMSNorm(width, affine=False)
        hidden = int(width * mlp_ratio)
        self.up = nn.Linear(width, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, width)
        self.ada = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)
        # space layers that steer: each head's query offset (rows, columns) from the frame's conditioning
        self.steer = nn.Linear(width, 2 * heads) if steer and not time else None
        if self.steer is not None:
            nn.init.zeros_(self.steer.weight)
            nn.init.zeros_(self.steer.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor, rot: Rotary,
                past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """x (B, F, N, D), cond (B, F, D), rot the frames' rotary tables. A time layer attends, under `mask`
        (B, 1, 1, F, T), to the cached frames' keys/values `past` (B, N, H, T - F, hd; None: none) and to x's own,
        and also returns x's keys/values (B, N, H, F, hd) for the caller to cache; a space layer returns None."""
        b, f, n, d = x.shape
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(F.silu(cond))[:, :, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + sc1) + sh1
        q, k, v = self.qkv(h).view(b, f, n, 3, self.heads, d // self.heads).unbind(3)  # (B, F, N, H, hd)
        q, k = self.q_norm(q), self.k_norm(k)
        kv = None
        if self.time:
            a, kv = self._time_attention(q, k, v, mask, rot, past)
        else:  # each frame on its own: (B*F, H, N, hd)
            if self.steer is not None:
                offset = self.steer(F.silu(cond)).view(b, f, 1, self.heads, 2)
                q, k = rope2d(q, rot.grid[:, None] + offset), rotate_2d(k, rot.keys(k.dtype))
            q, k, v = (t.reshape(b * f, n, self.heads, -1).transpose(1, 2) for t in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, f, n, d)
        x = x + g1 * self.proj(a)
        u, gate = self.up(self.norm2(x) * (1 + sc2) + sh2).chunk(2, dim=-1)
        return x + g2 * self.down(F.silu(gate) * u), kv

    def _time_attention(self, q, k, v, mask, rot, past):
        b, f, n, hh, hd = q.shape
        q, k, v = (t.permute(0, 2, 3, 1, 4) for t in (q, k, v))  # (B, N, H, F, hd)
        q, k = rotate(q, rot.time(q.dtype)), rotate(k, rot.time(k.dtype))
        if past is None and f > SHORT:  # training's sequences: the fused kernel
            out = F.scaled_dot_product_attention(
                q.reshape(b * n, hh, f, hd), k.reshape(b * n, hh, f, hd), v.reshape(b * n, hh, f, hd),
                attn_mask=mask.expand(b, n, 1, f, f).reshape(b * n, 1, f, f))
        else:
            # written out: the CPU's fused kernel is tuned for long queries and took 3x as long on a dream step's
            # 1-2 queries per sequence (at 32 dreams, 30 ms a layer against 10); the mask broadcasts instead of
            # being copied per patch. The cached frames and the call's own are scored apart and softmaxed
            # together, so the ring is read where it lies (no copy of it per call).
            scores = q @ k.transpose(-1, -2)
            if past is not None:
                scores = torch.cat([q @ past[0].to(q.dtype).transpose(-1, -2), scores], dim=-1)
            weights = (scores.float() * hd**-0.5).masked_fill(~mask, float("-inf")).softmax(-1).to(q.dtype)
            if past is None:
                out = weights @ v
            else:
                t = past[1].shape[3]
                out = weights[..., :t] @ past[1].to(q.dtype) + weights[..., t:] @ v
        return out.reshape(b, n, hh, f, hd).permute(0, 3, 1, 2, 4).reshape(b, f, n, hh * hd), (k, v)


class SpaceTimeTransformer(nn.Module):
    """Noisy latent frames + per-frame (signal level, step size, action features) -> predicted clean frames."""

    def __init__(self, cfg: DiTConfig, latent_channels: int, latent_hw: tuple[int, int], context: int, cond_dim: int,
                 prior: bool = False):
        """prior: each input frame also carries its motion prior, latent_channels more channels after the noisy
        frame's (`ModelConfig.motion_prior`)."""
        super().__init__()
        self.cfg, self.c, self.p, self.context = cfg, latent_channels, cfg.patch, context
        self.c_in = latent_channels * (2 if prior else 1)
        self.gh, self.gw = latent_hw[0] // cfg.patch, latent_hw[1] // cfg.patch
        self.tokens_per_frame = self.gh * self.gw
        d = cfg.width
        self.patch_in = nn.Linear(self.c_in * cfg.patch**2, d)
        self.pos_space = nn.Parameter(torch.randn(1, 1, self.tokens_per_frame, d) * 0.02)
        self.level_mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.step_embed = nn.Embedding(cfg.step_levels + 1, d)  # d = 2^-i for i = 0..step_levels
        self.action_mlp = nn.Sequential(nn.Linear(cond_dim, cfg.action_hidden), nn.SiLU(), nn.Linear(cfg.action_hidden, d))
        every = max(1, cfg.time_every)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, time=(i % every == every - 1), steer=cfg.steer)
                                    for i in range(cfg.depth))
        rows, cols = torch.meshgrid(torch.arange(self.gh), torch.arange(self.gw), indexing="ij")
        self.register_buffer("grid", torch.stack([rows, cols], -1).reshape(-1, 2).float(), persistent=False)
        self.time_layers = [i for i, blk in enumerate(self.blocks) if blk.time]
        if not self.time_layers:
            raise ValueError("DiTConfig: a space-time model needs at least one time layer (time_every <= depth)")
        self.norm_out = RMSNorm(d, affine=False)
        self.ada_out = nn.Linear(d, 2 * d)
        self.patch_out = nn.Linear(d, latent_channels * cfg.patch**2)
        # with extra input channels (the motion prior): a skip from them to the prediction, its weight per channel
        # learnt from each frame's conditioning (noise level, step, action), zero at the start. Through the
        # network alone the prior's zero-initialised input weights grew slowly (500 steps: a thirteenth of the
        # frame's) and the dream ignored it; one weight per channel sees the whole frame's gradient.
        self.prior_gate = nn.Linear(d, latent_channels) if prior else None
        self.compiled, self._fn = False, None  # `compile`: on, and the compiled network once first used
        outs = (self.ada_out, self.patch_out) + ((self.prior_gate,) if self.prior_gate is not None else ())
        for lin in outs:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def new_cache(self, batch: int, device: torch.device | str) -> KVCache:
        return KVCache(batch, self.context, len(self.time_layers), device)

    def forward(self, z: torch.Tensor, level: torch.Tensor, step: torch.Tensor, feats: torch.Tensor,
                times: torch.Tensor | None = None, cache: KVCache | None = None, write: int = 0) -> torch.Tensor:
        """z (B, F, C_in, h, w) noisy latents at signal levels `level` (B, F) in [0, 1] (1: clean), with the motion
        prior's channels after them when the model has one, step-size indices `step` (B, F) (d = 2^-step),
        conditioning features (B, F, A) -> predicted clean latents (B, F, C, h, w).
        times (B, F): the frames' time stamps (default 0..F-1). With `cache`, time layers also attend to the
        cached frames, and the first `write` frames are added to the cache after the pass."""
        b, f = z.shape[:2]
        if times is None:
            times = torch.arange(f, device=z.device).expand(b, f)
        past = None if cache is None else cache.past()
        # which key frames each frame sees: itself and the `context` before it (the same in every time layer)
        key_times = times if past is None else torch.cat([cache.times, times], dim=1)
        gap = times[:, :, None] - key_times[:, None, :]  # (B, F, T)
        mask = ((gap >= 0) & (gap <= self.context))[:, None, None]  # (B, 1, 1, F, T): every patch, every head
        run = self.denoise
        if self.compiled and f <= 2 and not torch.is_grad_enabled():
            if self._fn is None:
                # every model and batch size is a graph of the one function: allow more than the default 8
                torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
                self._fn = torch.compile(self.denoise, dynamic=False)
            run = self._fn
        x, kvs = run(z, level, step, feats, times, mask, past)
        if cache is not None and write:
            for layer, (k, v) in enumerate(kvs):
                cache.write(layer, k[:, :, :, :write], v[:, :, :, :write], times[:, :write])
        return x

    def compile(self) -> None:
        """Run a dream's steps (inference calls of 1 or 2 frames) through `torch.compile` from now on; the ring's
        bookkeeping, training and long calls stay eager. Why: a dreamed frame at batch 1 is some 3,000 small
        operations, and fused a pass takes about half the time on the CPU. Each new input shape (batch size,
        frames per call) compiles once, on its first call (about a minute; later processes reuse it)."""
        self.compiled = True

    def __getstate__(self) -> dict:
        """A copy compiles its own network (a compiled function is bound to the module it was made from)."""
        return {**self.__dict__, "_fn": None}

    def denoise(self, z: torch.Tensor, level: torch.Tensor, step: torch.Tensor, feats: torch.Tensor,
                times: torch.Tensor, mask: torch.Tensor, past: list[tuple[torch.Tensor, torch.Tensor]] | None
                ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """The network as a pure function (`forward` without the cache's bookkeeping): the predicted clean
        latents and every time layer's keys/values of the input frames (B, N, H, F, hd)."""
        b, f, c_in, h, w = z.shape
        c, p = self.c, self.p
        x = z.reshape(b, f, c_in, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(b, f, self.tokens_per_frame, c_in * p * p)
        x = self.patch_in(x) + self.pos_space
        cond = (self.level_mlp(fourier(level, 256).to(x.dtype)) + self.step_embed(step)
                + self.action_mlp(feats.to(x.dtype)))
        rot = Rotary(times, self.grid, self.cfg.width // self.cfg.heads)
        kvs = []
        for blk in self.blocks:
            x, kv = blk(x, cond, mask, rot, None if past is None or not blk.time else past[len(kvs)])
            if kv is not None:
                kvs.append(kv)
        shift, scale = self.ada_out(F.silu(cond))[:, :, None].chunk(2, dim=-1)
        x = self.patch_out(self.norm_out(x) * (1 + scale) + shift)
        x = x.reshape(b, f, self.gh, self.gw, c, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        x = x.reshape(b, f, c, self.gh * p, self.gw * p)
        if self.prior_gate is not None:
            gate = self.prior_gate(F.silu(cond))[..., None, None]  # (B, F, C, 1, 1)
            x = x + gate * z[:, :, c:].to(x.dtype)
        return x, kvs
