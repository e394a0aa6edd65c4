"""`worldsim bench hold`: its measures on frames whose answer is known, and a whole run on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worldsim.bench.hold import _score, contrast, hold_bench, levels, overlap


def test_the_measures_score_the_truth_perfectly_and_a_flat_picture_as_collapsed():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (2, 60, 16, 16, 3), dtype=np.uint8)
    ctx = truth[:, :1]
    same, _ = _score("still", ctx, truth, truth.copy(), [60, 60], 20, ceiling=truth.copy())
    assert same["model_db"] == 60.0 and same["autoencoder_db"] == 60.0
    noisy = np.clip(truth.astype(int) + rng.integers(-20, 21, truth.shape), 0, 255).astype(np.uint8)
    assert _score("still", ctx, truth, truth.copy(), [60, 60], 20, ceiling=noisy)[0]["autoencoder_db"] < 30
    flat = np.full_like(truth, 128)
    play, _ = _score("play", ctx, truth, flat, [60, 60], 20)
    assert play["contrast_max" if "contrast_max" in play else "contrast_mean"] < 0.01
    assert play["colour_overlap_mean"] < 0.05 and play["dream_std_min"] == 0.0
    frozen, _ = _score("turn90", truth[:, :1], truth, np.broadcast_to(truth[:, :1], truth.shape), [60, 60], 20)
    assert frozen["dream_vs_start_away_db"] == 60.0 and frozen["real_vs_start_away_db"] < 20  # it never turned
    good, _ = _score("play", ctx, truth, truth.copy(), [60, 60], 20)
    assert good["colour_overlap_min"] == 1.0 and good["contrast_min"] == 1.0
    assert overlap(truth[0], truth[1]) > 0.8 and contrast(flat[0]) == 0.0
    same = levels(truth, truth, [60, 60], 50)
    assert same["brightness"] == [1.0, 1.0] and same["contrast"] == [1.0, 1.0] and same["within_0.8_1.25"]
    dark = levels((truth * 0.5).astype(np.uint8), truth, [60, 30], 50)  # the second start's game ended at 30
    assert dark["starts"] == 1 and 0.45 < dark["brightness"][0] < 0.55 and not dark["within_0.8_1.25"]
    assert levels(flat, truth, [60, 60], 50)["contrast_median"] < 0.01


def test_hold_bench_runs_every_scenario_against_the_real_game(tiny_ckpt, tmp_path):
    cache = tmp_path / "real.npz"
    report = hold_bench(tiny_ckpt, seeds=2, still_steps=6, play_steps=40, random_steps=30, window=20, out=str(tmp_path),
                        progress=False, real_cache=str(cache), long_steps=24)
    again = hold_bench(tiny_ckpt, seeds=2, still_steps=6, play_steps=40, random_steps=30, window=20, progress=False,
                       real_cache=str(cache), long_steps=24)  # the same real frames from the cache: the same figures
    assert again["play"] == report["play"] and again["still"] == report["still"]
    # a cache written before a scenario existed: that scenario is played, added, and scores as it did
    np.savez_compressed(cache, **{k: v for k, v in np.load(cache).items() if not k.startswith("spin_")})
    third = hold_bench(tiny_ckpt, seeds=2, still_steps=6, play_steps=40, random_steps=30, window=20, progress=False,
                       real_cache=str(cache), long_steps=24)
    assert third["spin"] == report["spin"] and "spin_truth" in np.load(cache)
    for name in ("still", "turn90", "turn180", "look"):
        r = report[name]
        assert r["steps"] > 0 and 0 < r["model_db"] <= 60 and len(r["model_db_curve"]) == r["steps"]
        assert 0 < r["autoencoder_db"] <= 60 and len(r["autoencoder_db_curve"]) == r["steps"]
    still = report["still"]  # the figure is the curve's last ten steps, and the curve is copy-last's PSNR throughout
    assert still["copy_last_db"] == pytest.approx(np.mean(still["copy_last_db_curve"][-10:]), abs=0.01)
    assert len(still["copy_last_db_curve"]) == still["steps"] == 6
    for name in ("stand", "walk", "spin", "random"):  # where the dream goes dark or washes out, against the same real run
        lv = report[name]["levels"]
        assert [x["step"] for x in lv] == [24 if name != "random" else 30] and lv[0]["starts"] >= 1
        assert all(0 < b < 10 for b in lv[0]["brightness"] + lv[0]["contrast"])
    assert len(report["turn180"]["model_db_curve"]) == 36
    mv = report["walk"]["moved"]  # walking leaves the start's picture in the real game (view bobbing, the way ahead)
    assert mv["steps"] == [3, 10] and len(mv["dream_db"]) == 2 and all(0 < x <= 60 for x in mv["dream_db"])
    assert max(mv["real_db"]) < 40
    for name in ("turn90", "turn180", "look"):  # the far point of the turn: the real view is not the start's there
        r = report[name]
        assert 0 <= r["away_step"] < r["steps"] and r["real_vs_start_away_db"] <= r["copy_start_db"]
    for name in ("play", "random"):
        r = report[name]
        assert r["windows"] >= 1 and 0 <= r["colour_overlap_min"] <= 1 and 0 < r["real_overlap_min"] <= 1
    assert json.loads((tmp_path / "hold.json").read_text())["seeds"] == [0, 1]
    assert (tmp_path / "hold.png").stat().st_size > 10_000
    from PIL import Image

    assert Image.open(tmp_path / "hold_frames.png").size[1] > 12 * 32  # a real and a dreamed row per scenario


def test_the_scaling_curve_draws_each_lineage_from_the_training_log(tmp_path):
    """The curve (`worldsim curve`) reads the log's rows and writes a PNG; a run restarted from the shipped model
    (another "lineage") is drawn as a line of its own, not joined to the run it replaces."""
    import json

    from PIL import Image

    from worldsim.evaluation.curve import plot_curve

    def row(cpu, h1, lineage=None):
        r = {"cpu_hours": cpu, "psnr": {h: h1 - int(h) / 4 for h in ("1", "4", "8", "16")},
             "copy_last": {h: 27.0 - int(h) / 4 for h in ("1", "4", "8", "16")}, "brightness_1000": 1.5,
             "contrast_1000": 1.2}
        return r if lineage is None else {**r, "lineage": lineage}

    log = tmp_path / "log.json"
    log.write_text(json.dumps([row(2.1, 21.0), row(8.0, 23.0), row(14.9, 25.0), row(4.1, 22.0, "restart")]))
    out = plot_curve(log, tmp_path / "curve.png")
    assert Image.open(out).size[0] > 500
    log.write_text("[]")
    with pytest.raises(ValueError, match="no rows"):
        plot_curve(log, tmp_path / "empty.png")


def test_a_bench_refuses_a_folder_for_its_json_before_measuring(tmp_path, capsys):
    from worldsim.cli import main

    with pytest.raises(SystemExit) as e:  # at parse time: no model loaded, no game played, nothing to lose
        main(["bench", "hold", "--out", str(tmp_path)])
    assert e.value.code == 2 and "is a folder" in capsys.readouterr().err
