"""`worldsim eval`: open-loop dreams against held-out real episodes, with the baselines, the controllability
measure (an inverse-dynamics model) and the report (`worldsim.evaluation.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from worldsim.cli.options import add_command, add_world_model, dataset


def _eval(a: argparse.Namespace) -> int:
    import worldsim
    from worldsim.data.dataset import Dataset
    from worldsim.evaluation.evaluate import autoencoder_psnr, evaluate, outcome_scores
    from worldsim.evaluation.report import summary, write_report

    model = worldsim.load(a.checkpoint, precision=a.precision)
    ds = Dataset(a.data)
    episodes = list(range(min(a.episodes, len(ds)))) if a.episodes else list(range(len(ds)))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    idm = None if a.no_idm else _idm_for(a, model, out)
    result = evaluate(model, ds, horizon=a.horizon, episodes=episodes, stride=a.stride, steps=a.sampling_steps,
                      progress=not a.quiet, idm=idm)
    examples = result.pop("_examples")
    breaks = result["break_response"].pop("_examples") if "break_response" in result else []
    result["autoencoder_psnr_db"] = round(autoencoder_psnr(model, ds, episodes), 3)
    if bool(model.heads_trained):
        result["outcomes"] = outcome_scores(model, ds, episodes)
    result["checkpoint"] = str(a.checkpoint)
    result["data"] = str(a.data)
    write_report(out, result, examples, breaks)
    print("\n".join(summary(result) + result["verdict"]))
    print(f"autoencoder PSNR {result['autoencoder_psnr_db']} dB; report in {out}")
    return 0


def _idm_for(a: argparse.Namespace, model, out: Path):
    """The inverse-dynamics model of the controllability measure: --idm if it exists, else trained on real data."""
    from worldsim.data.dataset import Dataset
    from worldsim.evaluation.idm import load_idm, save_idm, train_idm
    from worldsim.model.checkpoint import read_config, resolve

    path = Path(a.idm) if a.idm else out / "idm"
    if (path / "idm.json").exists():
        return load_idm(path)
    data = a.idm_data or read_config(resolve(a.checkpoint)).get("dataset", {}).get("path")
    if not data or not Path(data).exists():
        raise ValueError(f"the IDM needs real training episodes: pass --idm-data (the checkpoint names {data!r})")
    ds = Dataset(data)
    idm = train_idm(ds, list(range(len(ds))), model.codec, steps=a.idm_steps, progress=not a.quiet)
    save_idm(idm, path, {"data": str(data), "steps": a.idm_steps})
    return idm


def _curve(a: argparse.Namespace) -> int:
    from worldsim.evaluation.curve import plot_curve

    print(f"wrote {plot_curve(a.log, a.out)}")
    return 0


def register(sub) -> None:
    c = add_command(sub, "curve", "plot the training log's rows (held-out PSNR, brightness, contrast) against CPU-hours",
                    _curve)
    c.add_argument("--log", default="docs/training_log.json", help="the training log (a JSON list of rows)")
    c.add_argument("--out", default="docs/training_curve.png", help="the PNG to write")

    e = add_command(sub, "eval", "open-loop dreams vs held-out real episodes (PSNR/SSIM over horizon, baselines, IDM)",
                    _eval)
    add_world_model(e, required=True, checkpoint_help="world-model checkpoint or run folder")
    e.add_argument("--data", type=dataset, required=True, help="held-out real dataset (seeds never used in training)")
    e.add_argument("--horizon", type=int, default=16, help="dreamed steps per clip")
    e.add_argument("--episodes", type=int, default=0, help="use the first N episodes (0: all)")
    e.add_argument("--stride", type=int, default=100, help="frames between clip starts within an episode")
    e.add_argument("--out", required=True, help="report folder")
    e.add_argument("--idm", help="inverse-dynamics model folder: used if it exists, else trained and saved there "
                                 "(default OUT/idm)")
    e.add_argument("--idm-data", type=dataset, help="real episodes to train the IDM on (default: the checkpoint's training data)")
    e.add_argument("--idm-steps", type=int, default=2000)
    e.add_argument("--no-idm", action="store_true", help="skip the controllability measure")
    e.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="inference numerics (auto: whichever is measured faster here)")
    e.add_argument("--quiet", action="store_true")
