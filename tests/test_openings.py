"""The bank of real openings a dream starts from (`worldsim.model.openings`): cut from settled stands, so a dream
reset and left alone stands where its user looks."""

from __future__ import annotations

import numpy as np


def test_openings_are_cut_from_stands_in_real_play(tmp_path):
    """From real `mix-walk` play (walks begun from a stand): every opening is a stand (no key, no turn, one
    picture); without `still`, random starts of the same play are not all stands."""
    from worldsim.data.dataset import Dataset
    from worldsim.data_collect.collect import CollectConfig, collect
    from worldsim.model.actions import ActionCodec
    from worldsim.model.openings import cut_openings

    collect(CollectConfig(episodes=1, steps=300, size=32, policy="mix-walk", out=str(tmp_path / "ds"), seed=4),
            progress=False)
    ds = Dataset(tmp_path / "ds")
    codec = ActionCodec(ds.action_space)
    bank = cut_openings(ds, codec, 4, n=6, seed=0)
    assert len(bank["frames"]) == 6 and bank["frames"].shape[1:] == (4, 32, 32, 3)
    assert (bank["actions"] == codec.encode(codec.noop())).all()
    steps = np.abs(np.diff(bank["frames"].astype(np.int16), axis=1)).mean(axis=(2, 3, 4))
    assert (steps < 0.5).all(), steps
    anywhere = cut_openings(ds, codec, 4, n=6, seed=0, still=False)
    assert not (anywhere["actions"] == codec.encode(codec.noop())).all()
