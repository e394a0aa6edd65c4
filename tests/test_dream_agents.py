"""Agents that learn from recorded play and improve in the dream: dreams started at a dataset's steps, the reward
calibration table, PPO from a cloned policy kept near it, choices held for several steps."""

import json

import gymnasium as gym
import numpy as np
import pytest

NEURAL = "worldsim/NeuralMinecraft-v0"


@pytest.fixture(scope="module")
def play_data(tmp_path_factory):
    """Real 32x32 play of the tree-seeking mix (explorer steps to clone, counts recorded), the tiny model's size."""
    from worldsim.data_collect.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("play") / "ds"
    collect(CollectConfig(episodes=2, steps=200, out=str(out), seed=3, policy="mix-trees", size=32), progress=False)
    return str(out)


def test_dreams_start_at_recorded_steps_weighted_toward_the_tasks_rewards(tiny_ckpt, play_data):
    import worldsim
    from worldsim.data.dataset import Dataset
    from worldsim.envs.actions import restrict_action
    from worldsim.envs.data_starts import DataStarts
    from worldsim.envs.indev.rewards import recorded_rewards

    model = worldsim.load(tiny_ckpt, "cpu", "fp32")
    k, codec = model.start_frames, model.codec
    ds = Dataset(play_data)
    ep = ds.episode(1)
    starts = DataStarts(play_data, codec, k, model.cfg.frame_hw)
    frames, flat, pitch = starts.at(1, 20)
    assert np.array_equal(frames, ep.frames[20 - k + 1:21]) and pitch == pytest.approx(ep.view_pitch()[20])
    want = [codec.encode(restrict_action({key: v[i] for key, v in ep.actions.items()}, codec.space))
            for i in range(20 - k + 1, 20)]
    assert np.allclose(flat, np.stack(want))
    assert len(starts) == sum(ds.episode_length(e) - k + 1 for e in range(len(ds)))

    # weighted toward a task's rewards: the steps just before a reward are drawn far more often
    keys = list(ds.info["count_keys"])
    paid = {e: np.flatnonzero(recorded_rewards(ds.episode(e).infos["counts"], keys, "dig") > 0) for e in range(len(ds))}
    assert sum(len(v) for v in paid.values()) > 0, "the tree-seeking play breaks blocks"
    near = lambda e, t: any(0 <= h - t <= 5 for h in paid[e])  # noqa: E731
    rng = np.random.default_rng(0)
    share = {}
    for weight in (1.0, 50.0):
        s = DataStarts(play_data, codec, k, model.cfg.frame_hw, task="dig", event_weight=weight, lead=5)
        draws = [tuple(s.where[np.searchsorted(s.cum, rng.random() * s.cum[-1], side="right")]) for _ in range(400)]
        share[weight] = np.mean([near(e, t) for e, t in draws])
    assert share[50.0] > 0.5 and share[50.0] > 3 * share[1.0], share
    with pytest.raises(ValueError, match="needs a task"):
        DataStarts(play_data, codec, k, model.cfg.frame_hw, event_weight=5.0)
    with pytest.raises(ValueError, match="dreams"):
        DataStarts(play_data, codec, k, (64, 64))

    # the single env and the vector env (through its autoreset) start at recorded frames
    recorded = np.concatenate([ds.episode(e).frames for e in range(len(ds))])
    is_recorded = lambda f: bool((recorded == f).all(axis=(1, 2, 3)).any())  # noqa: E731
    env = gym.make(NEURAL, checkpoint=tiny_ckpt, precision="fp32", starts=play_data, task="dig")
    obs, info = env.reset(seed=4)
    assert is_recorded(obs) and np.isfinite(info["pitch"])
    env.close()
    with pytest.raises(ValueError, match="starts="):
        gym.make(NEURAL, checkpoint=tiny_ckpt, precision="fp32", start_weight=3.0)
    venv = gym.make_vec(NEURAL, num_envs=2, vectorization_mode="vector_entry_point", checkpoint=tiny_ckpt,
                        precision="fp32", starts=play_data, max_episode_steps=2,
                        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, _ = venv.reset(seed=0)
    assert all(is_recorded(o) for o in obs)
    noop = {key: np.stack([v] * 2) for key, v in codec.noop().items()}
    venv.step(noop)
    obs, _, _, trunc, _ = venv.step(noop)
    assert trunc.all() and all(is_recorded(o) for o in obs)  # restarted at recorded steps in the same step
    venv.close()

    # a policy's dreamed return from the data's starts, in dreams as short as asked
    from worldsim.agents.evaluate import evaluate_policy

    r = evaluate_policy(NEURAL, "random", episodes=2, task="treechop", progress=False, episode_steps=5,
                        checkpoint=tiny_ckpt, starts=play_data, start_weight=5.0)
    assert r["mean_length"] == 5 and r["env_kwargs"]["starts"] == play_data


def test_the_calibration_table_counts_the_games_rewards_and_the_heads(tiny_ckpt, play_data):
    from worldsim.agents.calibration import calibration_table
    from worldsim.data.dataset import Dataset
    from worldsim.envs.indev.rewards import recorded_rewards

    ds = Dataset(play_data)
    keys = list(ds.info["count_keys"])
    real = sum(int((recorded_rewards(ds.episode(e).infos["counts"], keys, "dig") > 0).sum()) for e in range(len(ds)))
    table = calibration_table(tiny_ckpt, play_data, task="dig", leads=(3,))
    r = table["real_steps"]
    assert r["steps"] == ds.total_steps and r["real_rewards"] == real > 0
    assert r["predicted_rewards"] >= 0 and (r["recall"] is None or 0 <= r["recall"] <= 1)
    d = table["dreams"][0]
    assert d["lead"] == 3 and 0 < d["starts_before_rewards"] <= real and d["starts_without_rewards"] >= 1
    assert 0 <= d["paid_before_rewards"] <= 1 and 0 <= d["paid_without_rewards"] <= 1


def test_ppo_from_the_cloned_policy_stays_near_it_and_holds_its_choices(tiny_ckpt, play_data, tmp_path):
    """`agent train --init BC` starts from the cloned network (the KL to it is zero at first), trains in dreams started
    at the data's steps with choices held `repeat` steps, and saves a plain policy whose agent holds its choices."""
    import torch

    from worldsim.agents.anchored import anchored_policy_class, load_prior
    from worldsim.agents.discrete import DiscreteActionSpec
    from worldsim.agents.ppo import PPOAgent, _policy_kwargs
    from worldsim.cli import main

    assert main(["agent", "bc", "--data", play_data, "--task", "treechop", "--steps", "30", "--batch", "16",
                 "--repeat", "3", "--out", str(tmp_path / "bc"), "--quiet"]) == 0
    bc_meta = json.loads((tmp_path / "bc" / "policy.json").read_text())
    assert bc_meta["action_spec"]["repeat"] == 3

    prior, _ = load_prior(tmp_path / "bc", gym.spaces.Box(0, 255, (3, 32, 32), np.uint8), DiscreteActionSpec().space)
    policy = anchored_policy_class()(prior.observation_space, prior.action_space, lambda _: 1e-3,
                                     **_policy_kwargs(256, [64]))
    policy.load_state_dict(prior.state_dict())
    policy.set_prior(prior)
    obs = torch.randint(0, 255, (4, 3, 32, 32)).float()
    assert policy.kl_to_prior(obs).abs().max() < 1e-5
    assert "_prior" not in "".join(policy.state_dict())  # the prior is not saved with the policy

    out = tmp_path / "ppo"
    rc = main(["agent", "train", "--checkpoint", tiny_ckpt, "--task", "treechop", "--steps", "64", "--num-envs", "4",
               "--n-steps", "16", "--batch-size", "32", "--init", str(tmp_path / "bc"), "--ent-coef", "0.1",
               "--repeat", "2", "--starts", play_data, "--start-weight", "5", "--episode-steps", "20", "--out", str(out),
               "--quiet"])
    assert rc == 0
    meta = json.loads((out / "policy.json").read_text())
    assert meta["train"]["init"] == str((tmp_path / "bc").resolve()) and meta["action_spec"]["repeat"] == 2
    assert "KL" in meta["train"]["regulariser"] and meta["train"]["env_kwargs"]["starts"] == play_data

    real = gym.make("worldsim/MinecraftIndev-Treechop-v0", size=32)
    try:
        agent = PPOAgent(out, real.action_space, seed=1)
        obs, _ = real.reset(seed=0)
        acts = [agent.act(obs) for _ in range(6)]  # the same frame: only every second call draws a new choice
        same = [all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a) for a, b in zip(acts[::2], acts[1::2])]
        assert all(same)
    finally:
        real.close()
