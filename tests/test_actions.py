import numpy as np
import pytest
from gymnasium.spaces import Box, Dict, Discrete

from worldsim.envs.actions import MINERL_KEYS, minerl_action_space
from worldsim.model.actions import ActionCodec, InvalidActionError, space_from_json


def test_minerl_space_has_the_24_keys_in_sorted_order():
    space = minerl_action_space()
    assert list(space.keys()) == sorted(MINERL_KEYS)
    assert len(space) == 24
    assert space["camera"].shape == (2,) and space["camera"].low[0] == -180 and space["camera"].high[0] == 180
    assert all(space[k] == Discrete(2) for k in space if k != "camera")


def test_flat_vector_roundtrip_keeps_fractional_camera():
    codec = ActionCodec(minerl_action_space())
    assert codec.dim == 25
    assert codec.names[codec.slices["camera"].start] == "camera[0]"
    a = codec.noop()
    a["forward"], a["attack"], a["camera"] = np.int64(1), np.int64(1), np.array([0.37, -1.25], np.float32)
    v = codec.encode(a)
    assert v.dtype == np.float32 and v.shape == (25,)
    assert v[codec.slices["forward"]][0] == 1.0
    back = codec.decode(v)
    for k in a:
        np.testing.assert_array_equal(back[k], a[k])


def test_multi_valued_discrete_is_one_hot_and_space_survives_json():
    space = Dict({"camera": Box(-180, 180, (2,), np.float32), "slot": Discrete(4, start=1)})
    codec = ActionCodec(space)
    assert codec.dim == 6
    v = codec.encode({"camera": np.zeros(2, np.float32), "slot": 3})
    assert v[2:].tolist() == [0, 0, 1, 0]
    assert codec.decode(v)["slot"] == 3
    assert space_from_json(codec.to_json()) == space


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.pop("forward"), "missing"),
    (lambda a: a.update(fly=1), "unknown"),
    (lambda a: a.update(camera=np.zeros(3, np.float32)), "shape"),
    (lambda a: a.update(camera=np.array([np.nan, 0], np.float32)), "finite"),
    (lambda a: a.update(camera=np.array([0, np.inf], np.float32)), "finite"),
    (lambda a: a.update(camera=np.array([0, 200], np.float32)), "outside"),
    (lambda a: a.update(forward=2), "out of range"),
    (lambda a: a.update(forward=0.5), "integer"),
])
def test_invalid_actions_raise_one_clear_error(mutate, message):
    codec = ActionCodec(minerl_action_space())
    a = codec.noop()
    mutate(a)
    with pytest.raises(InvalidActionError, match=message):
        codec.validate(a)


def test_non_dict_action_is_rejected():
    with pytest.raises(InvalidActionError, match="dict"):
        ActionCodec(minerl_action_space()).validate([0, 1])
