import numpy as np
import pytest

from worldsim.agents import ExploreAgent, RandomAgent, make_policy
from worldsim.envs.actions import minerl_action_space
from worldsim.envs.indev.env import INDEV_KEYS
from worldsim.model.actions import ActionCodec


def _run(agent, n):
    return [agent.act(np.zeros((64, 64, 3), np.uint8)) for _ in range(n)]


def test_policies_emit_valid_actions_and_are_seeded():
    space = minerl_action_space(INDEV_KEYS)
    codec = ActionCodec(space)
    for name in ("explore", "random", "mix"):
        a = _run(make_policy(name, space, seed=3), 300)
        b = _run(make_policy(name, space, seed=3), 300)
        for x, y in zip(a, b):
            codec.validate(x)
            assert all(np.array_equal(x[k], y[k]) for k in x)


def test_explore_moves_like_a_player_not_like_noise():
    space = minerl_action_space(INDEV_KEYS)
    acts = _run(ExploreAgent(space, seed=0), 20000)
    fwd = np.array([a["forward"] for a in acts])
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, fwd, 0])))[::2]  # lengths of forward-held streaks
    assert runs.max() >= 40 and np.median(runs) >= 5  # sustained walking
    # with the inventory open the camera moves the cursor, not the view (the key toggles it before the camera acts)
    gui = np.cumsum([a["inventory"] for a in acts]) % 2 == 1
    assert 0.01 < gui.mean() < 0.2  # it opens the inventory now and then, and closes it again
    cam = np.array([a["camera"] for a in acts])[~gui]
    yaw = cam[:, 1]
    # smooth turns: consecutive yaw rates are strongly correlated (uniform noise would give ~0)
    assert np.corrcoef(yaw[:-1], yaw[1:])[0, 1] > 0.6
    pitch = np.cumsum(cam[:, 0])
    assert pitch.min() >= -70.01 and pitch.max() <= 70.01  # sane pitch
    assert pitch.min() < -30 and pitch.max() > 30  # but looks both up and down
    for key in space:
        if key != "camera":
            assert np.mean([a[key] for a in acts]) > 0.002, key  # every key is pressed often enough to learn
    still = np.array([not any(a[k] for k in a if k != "camera") for a in acts])
    assert 0.05 < still.mean() < 0.6  # stands still sometimes


def test_random_agent_is_uniform_noise():
    space = minerl_action_space(INDEV_KEYS)
    acts = _run(RandomAgent(space, seed=0), 4000)
    assert abs(np.mean([a["forward"] for a in acts]) - 0.5) < 0.05
    yaw = np.array([a["camera"][1] for a in acts])
    assert abs(np.corrcoef(yaw[:-1], yaw[1:])[0, 1]) < 0.1


def test_the_mix_idles_presses_random_keys_and_turns_away_and_back():
    from worldsim.agents.mix import MODES, MixAgent

    space = minerl_action_space(INDEV_KEYS)
    agent = MixAgent(space, seed=1)
    acts, modes = [], []
    for _ in range(30000):
        acts.append(agent.act(None))
        modes.append(agent.mode)
    modes = np.array(modes)
    share = {m: float((modes == m).mean()) for m in MODES}
    assert 0.35 < share["explore"] < 0.65 and all(share[m] > 0.1 for m in MODES if m != "walk"), share
    assert share["walk"] == 0  # walks are policy `mix-walk`'s: the first campaign data must stay as it was
    cam = np.array([a["camera"] for a in acts], np.float64)
    keys = np.array([[a[k] for k in a if k != "camera"] for a in acts])
    idle = modes == "idle"
    assert (cam[idle] == 0).all() and (keys[idle] == 0).all()  # true idling: nothing pressed, camera exactly still
    rnd = modes == "random"
    assert np.abs(cam[rnd]).max() > 150 and 0.4 < keys[rnd].mean() < 0.6  # as action_space.sample() draws
    sweep = modes == "sweep"  # each sweep comes back where it started: its camera moves sum to zero
    edges = np.flatnonzero(np.diff(np.r_[0, sweep.astype(int), 0]))
    sums = [cam[a:b].sum(axis=0) for a, b in zip(edges[::2], edges[1::2])]
    assert len(sums) > 20 and np.allclose(sums, 0, atol=1e-3)
    assert max(np.abs(np.cumsum(cam[a:b, 1])).max() for a, b in zip(edges[::2], edges[1::2])) >= 179
    assert (keys[sweep] == 0).all()

    # episodes begin at the spawn: in about 60 % of them idle / random / sweep segments come before the first walk out
    firsts, lingered = [], 0
    for seed in range(200):
        agent.reset(seed=seed)
        seen = []
        while not seen or seen[-1] != "explore":
            agent.act(None)
            seen.append(agent.mode)
        lingered += len(seen) > 1
        firsts.append(seen[0])
    assert 0.5 < lingered / 200 < 0.7 and {"idle", "random", "sweep", "explore"} <= set(firsts)


def test_the_spawn_heavy_mix_lingers_four_to_eight_segments_before_walking_out():
    """`mix-spawn` (the campaign's second data part): every episode first stands, turns and presses keys at the
    spawn for 4-8 segments, a few hundred steps, and then plays the usual mix."""
    from worldsim.agents import make_policy

    agent = make_policy("mix-spawn", minerl_action_space(INDEV_KEYS), seed=0)
    segments, steps = [], []
    for seed in range(100):
        agent.reset(seed=seed)
        n, t = 0, 0
        while True:
            starts = agent.left <= 0  # this action opens a new segment
            agent.act(None)
            if agent.mode == "explore":
                break
            n, t = n + starts, t + 1
        segments.append(n)
        steps.append(t)
    assert min(segments) == 4 and max(segments) == 8, sorted(set(segments))
    assert 150 < np.median(steps) < 400, np.median(steps)


def test_the_walking_mix_stands_and_then_walks_in_the_real_game(indev):
    """`mix-walk`: half of its segments are walks begun from a stand: keys released and the view exactly still for
    20-60 steps, then movement keys held every step. In the real game the player stays put while standing and has
    moved when the walk ends (the transitions a dream needs in order to start walking when told)."""
    from worldsim.agents.mix import MODES

    space = minerl_action_space(INDEV_KEYS)
    agent = make_policy("mix-walk", space, seed=0)
    modes, acts, opens = [], [], []
    for _ in range(20000):
        opens.append(agent.left <= 0)  # this action opens a new segment
        acts.append(agent.act(None))
        modes.append(agent.mode)
    modes, opens = np.array(modes), np.flatnonzero(opens).tolist() + [len(modes)]
    share = {m: float((modes == m).mean()) for m in MODES}
    assert 0.2 < share["walk"] < 0.6, share
    move = np.array([[a[k] for k in ("forward", "back", "left", "right")] for a in acts]).any(axis=1)
    still = np.array([not any(a[k] for k in a if k != "camera") and not np.any(a["camera"]) for a in acts])
    walks = [(a, b) for a, b in zip(opens[:-2], opens[1:-1]) if modes[a] == "walk"]  # every segment but the last
    assert len(walks) > 50
    for a, b in walks:  # each walk segment opens with a stand and walks to its end
        first = a + int(np.argmax(move[a:b]))
        assert 20 <= first - a and still[a:first].all() and move[first:b].all()

    env = indev(size=32, prefetch=False)
    agent = make_policy("mix-walk", env.action_space, seed=4)
    obs, info = env.reset(seed=0)
    pos, mode = [np.asarray(info["pos"], np.float64)], []
    for _ in range(300):
        action = agent.act(obs, info)
        obs, _, term, _, info = env.step(action)
        pos.append(np.asarray(info["pos"], np.float64))
        mode.append(agent.mode if agent.mode != "walk" else ("walk" if action["forward"] or action["back"] or
                                                                action["left"] or action["right"] else "stand"))
        if term:
            break
    mode, pos = np.array(mode), np.array(pos)
    edges = np.flatnonzero(np.diff(np.r_[0, (mode == "walk").astype(int), 0]))
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if a >= 3 and (mode[a - 3:a] == "stand").all()]
    assert len(runs) >= 2, np.unique(mode, return_counts=True)
    # pos[i] is where step i-1 left the player: still at the stand's end, blocks away once it walks (terrain and
    # walls can stop a walk, so the median of them)
    assert all(np.linalg.norm(pos[a, [0, 2]] - pos[a - 1, [0, 2]]) < 0.01 for a, _ in runs)
    assert np.median([np.linalg.norm(pos[b, [0, 2]] - pos[a, [0, 2]]) for a, b in runs]) > 2.0


def test_the_tree_seeking_explorer_walks_to_trees_and_chops_them(indev):
    """The collector's explorer (seek_trees, as the `mix-trees` policy plays) turns to the nearest log the game reports, walks
    there and chops: datasets then hold trees being chopped, which the Treechop reward heads learn from."""
    from worldsim.agents.explore import ExploreAgent

    env = indev(size=32, prefetch=False)
    agent = ExploreAgent(env.action_space, seed=0, seek_trees=True)
    obs, info = env.reset(seed=0)
    seen = set()
    for _ in range(600):
        obs, _, term, _, info = env.step(agent.act(obs, info))
        seen.add(agent.behaviour)
        if info["inventory"].get("planks", 0) >= 4 or term:
            break
    assert info["inventory"].get("planks", 0) >= 4 and {"tree", "chop"} <= seen  # a log drops planks here
    assert not ExploreAgent(env.action_space, seed=0).seek_trees  # the `explore` baseline plays blind to trees


def test_behaviour_cloning_learns_the_recorded_explorer_saves_a_ppo_policy_and_resumes(tmp_path):
    """`agent bc` clones the explorer's steps of a real dataset into a PPO-format policy that acts in the real game;
    its loss falls; a run stopped midway and resumed ends where an uninterrupted one does."""
    import json

    import gymnasium as gym

    import worldsim  # noqa: F401
    from worldsim.agents.bc import discretise, train_bc
    from worldsim.agents.discrete import DiscreteActionSpec
    from worldsim.agents.ppo import PPOAgent
    from worldsim.data_collect.collect import CollectConfig, collect

    spec = DiscreteActionSpec()
    cam = np.array([[0.0, 0.0], [-5.0, 1.5], [7.0, -2.5]], np.float32)
    got = discretise(spec, {"camera": cam, **{k: np.array([0, 1, 0]) for k in spec.keys}})
    assert got[:, len(spec.keys):].tolist() == [[2, 2], [0, 3], [4, 1]] and got[1, 0] == 1 and got[0, 0] == 0
    data = tmp_path / "ds"
    collect(CollectConfig(episodes=2, steps=60, out=str(data), seed=3, policy="mix-trees", size=64), progress=False)
    opts = dict(task="treechop", steps=40, batch=16, seed=0, checkpoint_every=10, progress=False)
    info = train_bc(str(data), tmp_path / "bc", **opts)
    assert not info["stopped_early"] and info["final_nll"] < info["first_nll"]
    meta = json.loads((tmp_path / "bc" / "policy.json").read_text())
    assert meta["train"]["algorithm"] == "behaviour cloning" and not (tmp_path / "bc" / "checkpoint.safetensors").exists()
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "bc" / "policy.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask  # readable as any file
    assert train_bc(str(data), tmp_path / "split", stop_after=15, **opts)["stopped_early"]
    with pytest.raises(ValueError, match="--resume"):
        train_bc(str(data), tmp_path / "split", **opts)
    resumed = train_bc(str(data), tmp_path / "split", resume=True, **opts)
    assert resumed["final_nll"] == pytest.approx(info["final_nll"], abs=1e-3)
    # the cloned policy reads the frame: its actor's hidden state differs between frames (tanh units saturated by
    # unnormalised features were +-1 on every frame, and the policy then output the data's marginals everywhere)
    import torch

    from worldsim.data.dataset import Dataset

    frames = torch.from_numpy(np.array(Dataset(data).episode(0).frames[::6])).permute(0, 3, 1, 2).float()
    agent = PPOAgent(tmp_path / "bc", gym.spaces.Dict(Dataset(data).action_space.spaces), seed=0)
    with torch.no_grad():
        pol = agent.policy
        hidden = pol.mlp_extractor.forward_actor(pol.extract_features(frames, pol.pi_features_extractor))
    assert float(hidden.std(0).mean()) > 0.01 and meta["network"] == "layernorm-relu"
    env = gym.make("worldsim/MinecraftIndev-Treechop-v0")
    agent = PPOAgent(tmp_path / "bc", env.action_space, seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(agent.act(obs))
    env.close()


def test_the_shipped_treechop_agent_is_small_and_plays_by_name():
    """`worldsim play --agent treechop` / `agent eval --policy treechop`: the agent in the package loads by name,
    is at most 5 MB of safetensors + JSON, holds its choices for the steps it was made for, and plays the game."""
    import json

    import gymnasium as gym

    import worldsim  # noqa: F401
    from worldsim.agents import SHIPPED_AGENTS, make_policy, shipped_agents
    from worldsim.agents.ppo import PPOAgent

    assert "treechop" in shipped_agents()
    folder = SHIPPED_AGENTS / "treechop"
    assert sorted(p.name for p in folder.iterdir()) == ["policy.json", "policy.safetensors"]
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 5 * 2**20
    meta = json.loads((folder / "policy.json").read_text())
    assert meta["network"] == "layernorm-relu" and meta["action_spec"]["repeat"] >= 1
    env = gym.make("worldsim/MinecraftIndev-Treechop-v0")
    try:
        agent = make_policy("treechop", env.action_space, seed=0)
        assert isinstance(agent, PPOAgent)
        obs, info = env.reset(seed=0)
        start = info["pos"].copy()
        for _ in range(60):
            obs, _, _, _, info = env.step(agent.act(obs, info))
        assert np.linalg.norm((info["pos"] - start)[[0, 2]]) > 0.5  # it does not stand in the hut
    finally:
        env.close()
