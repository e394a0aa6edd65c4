"""Pack a latent cache into small folders for a machine that takes tens of MB per transfer, and unpack it there.

Why: a lent GPU comes for minutes, behind a transfer limit (64 MiB per call here, the code included), on a machine
that cannot render the classic game. The frames do not fit (1.4 GB for 112k frames; even H.264 at 34 dB needs
175 MB: the game's textures under a camera that turns on 97 % of steps hardly compress), but the dynamics model
needs only the cache, and the cache's float16 latents compress to 8 bits with an error far below anything the
model resolves:

    python tools/pack_latents.py pack --latents runs/ft/latents --out runs/pack --part-mb 36
    # each runs/pack/part_K folder travels on its own; on the far side, gathered into one folder:
    python tools/pack_latents.py unpack --pack /tmp/pack --out /tmp/latents \
        --checkpoint worldsim/assets/default --device cuda

Latents are companded (u = asinh(z), z in units of the latent's std) and quantised to 256 levels over the range
of u, then zlib-compressed in chunks of frames; actions, known flags and pitch travel exactly. `pack` reports the
round-trip error. `unpack --checkpoint` also writes `moved.f16` for a model that trains on the pixel-space prior,
from the latents themselves, decoded (`LatentCache.write_pixel_prior(ds=None)`): the recorded frames are not
there, and a rollout moves decoded frames too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout too (no `pip install`)

from worldsim.atomic import write_bytes_atomic, write_json_atomic  # noqa: E402
from worldsim.data import LatentCache  # noqa: E402

FORMAT = 1
MANIFEST = "pack.json"
CHUNK_FRAMES = 4096
EXACT = (("actions.f32", np.float32), ("known.u8", np.uint8), ("pitch.f32", np.float32))


def quantise(z: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Latents -> uint8 codes: asinh companding (fine steps near zero, where most values are), 256 levels."""
    u = np.arcsinh(z.astype(np.float32))
    return np.clip(np.rint((u - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def dequantise(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.sinh(q.astype(np.float32) / 255 * (hi - lo) + lo)


def pack(latents: str | os.PathLike, out: str | os.PathLike, part_mb: float, chunk: int = CHUNK_FRAMES) -> dict:
    """Writes `out/part_0`, `out/part_1`, ... each at most `part_mb` MB (the manifest and exact arrays in part_0)."""
    cache = LatentCache(latents)
    root = Path(cache.root)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out} is not empty")
    lat = cache.latents
    lo, hi = (float(np.arcsinh(np.float32(v))) for v in (min(lat.min(), 0), max(lat.max(), 0)))  # asinh is monotone
    parts: list[list[dict]] = [[]]
    first = out / "part_0"
    first.mkdir(parents=True)
    exact = {}
    for name, dtype in EXACT:
        src = root / name
        arr = np.fromfile(src, dtype) if src.exists() else np.full(len(lat), np.nan, np.float32)
        data = zlib.compress(arr.astype(dtype).tobytes(), 6)
        write_bytes_atomic(first / f"{name}.z", data)
        exact[name] = len(data)
    size = sum(exact.values())
    sq_err, n_vals = 0.0, 0
    for i in range(0, len(lat), chunk):
        z = np.asarray(lat[i:i + chunk], np.float32)
        q = quantise(z, lo, hi)
        sq_err += float(((dequantise(q, lo, hi) - z) ** 2).sum())
        n_vals += z.size
        data = zlib.compress(q.tobytes(), 6)
        if size + len(data) > part_mb * 1e6 and parts[-1]:
            parts.append([])
            size = 0
        folder = out / f"part_{len(parts) - 1}"
        folder.mkdir(exist_ok=True)
        name = f"latents_{i:08d}.z"
        write_bytes_atomic(folder / name, data)
        parts[-1].append({"file": name, "part": len(parts) - 1, "start": i, "frames": len(z), "bytes": len(data)})
        size += len(data)
    manifest = {"format": FORMAT, "index": json.loads((root / "index.json").read_text()), "frames": len(lat),
                "lo": lo, "hi": hi, "rms_error": (sq_err / n_vals) ** 0.5, "exact": exact,
                "chunks": [c for p in parts for c in p], "parts": len(parts)}
    write_json_atomic(first / MANIFEST, manifest)
    return manifest


def unpack(pack_dir: str | os.PathLike, out: str | os.PathLike) -> LatentCache:
    """A latent cache in `out` from a pack's parts gathered in one folder (or a pack's folder of part_K)."""
    src = Path(pack_dir)
    folders = sorted(p for p in src.glob("part_*") if p.is_dir()) or [src]
    files = {f.name: f for d in folders for f in d.iterdir()}
    if MANIFEST not in files:
        raise FileNotFoundError(f"{src}: no {MANIFEST} (is part_0 of the pack there?)")
    manifest = json.loads(files[MANIFEST].read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{files[MANIFEST]}: pack format {manifest.get('format')}, this tool reads {FORMAT}")
    missing = [c["file"] for c in manifest["chunks"] if c["file"] not in files]
    missing += [f"{n}.z" for n, _ in EXACT if f"{n}.z" not in files]
    if missing:
        raise FileNotFoundError(f"{src}: the pack lacks {len(missing)} file(s), e.g. {missing[:3]}: copy every part_K there")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index = manifest["index"]
    n = manifest["frames"]
    tmp = out / ".latents.f16.tmp"
    lat = np.memmap(tmp, np.float16, "w+", shape=(n, *index["latent_shape"]))
    for c in manifest["chunks"]:
        q = np.frombuffer(zlib.decompress(files[c["file"]].read_bytes()), np.uint8)
        lat[c["start"]:c["start"] + c["frames"]] = dequantise(q, manifest["lo"], manifest["hi"]).reshape(c["frames"], *index["latent_shape"])
    lat.flush()
    del lat
    os.replace(tmp, out / "latents.f16")
    for name, dtype in EXACT:
        arr = np.frombuffer(zlib.decompress(files[f"{name}.z"].read_bytes()), dtype)
        write_bytes_atomic(out / name, arr.tobytes())
    write_json_atomic(out / "index.json", index)
    return LatentCache(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("pack")
    k.add_argument("--latents", required=True, help="a latent cache folder (worldsim train's runs/NAME/latents)")
    k.add_argument("--out", required=True)
    k.add_argument("--part-mb", type=float, default=36.0, help="largest part folder, MB")
    k.add_argument("--chunk-frames", type=int, default=CHUNK_FRAMES, help="frames per compressed chunk")
    u = sub.add_parser("unpack")
    u.add_argument("--pack", required=True, help="a folder holding the pack's files (all parts gathered) or its part_K folders")
    u.add_argument("--out", required=True)
    u.add_argument("--checkpoint", help="also write moved.f16 with this checkpoint, if its model trains on the pixel prior")
    u.add_argument("--device")
    a = p.parse_args(argv)
    if a.cmd == "pack":
        m = pack(a.latents, a.out, a.part_mb, a.chunk_frames)
        sizes = [sum(c["bytes"] for c in m["chunks"] if c["part"] == i) for i in range(m["parts"])]
        print(f"packed {m['frames']} frames into {m['parts']} part(s) of {', '.join(f'{s / 1e6:.1f}' for s in sizes)} MB; "
              f"latent round-trip error {m['rms_error']:.4f} std (rms)")
        return 0
    cache = unpack(a.pack, a.out)
    print(f"unpacked {len(cache.latents)} frames into {a.out}")
    if a.checkpoint:
        import worldsim
        from worldsim.checkpoint import resolve

        model = worldsim.load(resolve(a.checkpoint), device=a.device or "cpu").eval().set_precision("fp32")
        if model.trains_on_pixel_prior:
            LatentCache.write_pixel_prior(a.out, None, model, batch=1024)
            print(f"wrote {a.out}/moved.f16 from the decoded latents")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
