"""RL in the dream: the dig task, MultiDiscrete actions, the SB3 adapter, PPO on the tiny model, saved policies."""

import json

import gymnasium as gym
import numpy as np
import pytest

import worldsim.envs  # noqa: F401
from worldsim.agents.discrete import DiscreteActions, DiscreteActionSpec


def test_dig_task_is_the_real_game_with_fixed_length_episodes():
    env = gym.make("worldsim/MinecraftIndev-Dig-v0", size=32)
    try:
        assert env.spec.max_episode_steps == 200
        wrapped = DiscreteActions(env)
        wrapped.reset(seed=0)
        spec = wrapped.action_spec
        look_down = np.zeros(len(spec.keys) + 2, np.int64)
        look_down[len(spec.keys)] = spec.camera_bins.index(6.0)  # pitch +6 degrees: look down
        look_down[len(spec.keys) + 1] = spec.camera_bins.index(0.0)
        look_down[spec.keys.index("attack")] = 1
        rewards, truncated, n = [], False, 0
        while not truncated:
            _, r, term, truncated, info = wrapped.step(look_down)
            rewards.append(r)
            n += 1
            assert not term
        assert n == 200 and info["pitch"] == pytest.approx(90.0)
        assert sum(rewards) == info["blocks_broken"] > 0  # looking down and attacking digs
    finally:
        env.close()


def test_discrete_spec_maps_batches_and_single_actions():
    from worldsim.envs.actions import minerl_action_space
    from worldsim.envs.indev.env import INDEV_KEYS

    space = minerl_action_space(INDEV_KEYS)
    spec = DiscreteActionSpec()
    a = np.array([[1, 0, 0, 0, 0, 1, 0, 0, 4], [0] * 7 + [2, 2]])
    d = spec.to_dict(a, space)
    assert d["attack"].tolist() == [1, 0] and d["jump"].tolist() == [1, 0] and d["hotbar.1"].tolist() == [0, 0]
    assert d["camera"].tolist() == [[-6.0, 6.0], [0.0, 0.0]]
    single = spec.to_dict(a[0], space)
    assert space.contains({k: np.asarray(v, np.float32) if k == "camera" else v for k, v in single.items()})
    assert DiscreteActionSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    with pytest.raises(ValueError, match="camera"):
        spec.check(gym.spaces.Dict({"attack": gym.spaces.Discrete(2)}))


def test_same_step_autoreset_and_the_sb3_adapter(tiny_ckpt):
    from worldsim.agents.discrete import discrete_vector_actions
    from worldsim.agents.sb3_vec import SB3VectorEnv

    kw = dict(num_envs=3, vectorization_mode="vector_entry_point", checkpoint=tiny_ckpt, max_episode_steps=2)
    nxt = gym.make_vec("worldsim/NeuralMinecraft-v0", **kw)
    same = gym.make_vec("worldsim/NeuralMinecraft-v0", autoreset_mode="SameStep", **kw)
    acts = same.action_space.sample()
    nxt.reset(seed=5)
    same.reset(seed=5)
    for _ in range(2):
        o1, r1, te1, tr1, _ = nxt.step(acts)
        o2, r2, te2, tr2, info = same.step(acts)
    assert tr2.all() and np.array_equal(tr1, tr2) and np.allclose(r1, r2)
    assert np.array_equal(info["final_obs"], o1) and info["_final_obs"].all()
    o_next, *_ = nxt.step(acts)  # next-step mode resets now: the same new openings
    assert np.array_equal(o2, o_next)

    sb3 = SB3VectorEnv(discrete_vector_actions(same))
    sb3.seed(0)
    obs = sb3.reset()
    assert obs.shape == (3, 32, 32, 3)
    heads = same.unwrapped.model.heads_trained
    heads.fill_(False)  # no learned termination: every episode ends by the time limit
    try:
        for _ in range(2):
            obs, rew, dones, infos = sb3.step(np.zeros((3, 9), np.int64))
    finally:
        heads.fill_(True)
    assert dones.all() and rew.dtype == np.float32
    assert all(i["TimeLimit.truncated"] and i["terminal_observation"].shape == (32, 32, 3) for i in infos)
    with pytest.raises(ValueError, match="same-step"):
        SB3VectorEnv(nxt)


def test_ppo_trains_in_the_dream_and_the_saved_policy_acts_in_the_real_game(tiny_ckpt, tmp_path):
    from worldsim.agents import make_policy
    from worldsim.agents.evaluate import evaluate_policy
    from worldsim.agents.ppo import PPOAgent
    from worldsim.cli import main

    out = tmp_path / "ppo"
    rc = main(["agent", "train", "--checkpoint", tiny_ckpt, "--task", "dig", "--steps", "256", "--num-envs", "4",
               "--n-steps", "32", "--batch-size", "64", "--out", str(out), "--quiet"])
    assert rc == 0
    meta = json.loads((out / "policy.json").read_text())
    assert meta["train"]["steps"] >= 256 and meta["train"]["env_steps_per_s"] > 0
    assert (out / "policy.safetensors").stat().st_size > 10_000

    real = gym.make("worldsim/MinecraftIndev-Dig-v0", size=32)
    try:
        policy = make_policy(str(out), real.action_space, seed=3)
        assert isinstance(policy, PPOAgent)
        obs, _ = real.reset(seed=0)
        acts = [policy.act(obs) for _ in range(5)]
        assert all(real.action_space.contains({k: np.asarray(v, np.float32) if k == "camera" else v
                                               for k, v in a.items()}) for a in acts)
        policy.reset(seed=3)
        again = [policy.act(obs) for _ in range(5)]
        assert all(np.array_equal(a["camera"], b["camera"]) and a["attack"] == b["attack"] for a, b in zip(acts, again))
    finally:
        real.close()

    r = evaluate_policy("worldsim/MinecraftIndev-Dig-v0", str(out), episodes=2, seed=0, progress=False, size=32)
    assert r["episodes"] == 2 and r["mean_length"] == 200 and r["ci95"][0] <= r["mean_return"] <= r["ci95"][1]

    (out / "policy.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="policy.safetensors"):
        make_policy(str(out), real.action_space)


def test_clicked_keys_alternate_and_the_click_phase_resets():
    from worldsim.agents.discrete import ActionTranslator
    from worldsim.envs.actions import minerl_action_space
    from worldsim.envs.indev.env import INDEV_KEYS

    space = minerl_action_space(INDEV_KEYS)
    spec = DiscreteActionSpec(clicks=("attack",))
    tr = ActionTranslator(spec, space)
    hold = np.array([1, 1, 0, 0, 0, 0, 0, 2, 2])  # attack and forward chosen every step
    sent = [tr(hold) for _ in range(4)]
    assert [s["attack"] for s in sent] == [1, 0, 1, 0] and [s["forward"] for s in sent] == [1, 1, 1, 1]
    tr.reset()
    assert tr(hold)["attack"] == 1
    batch = ActionTranslator(spec, space)
    both = np.stack([hold, np.zeros(9, np.int64)])
    assert [batch(both)["attack"].tolist() for _ in range(2)] == [[1, 0], [0, 0]]
    assert DiscreteActionSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_a_killed_agent_train_resumes_from_its_last_checkpoint(tiny_ckpt, tmp_path):
    """`worldsim agent train` killed mid-run keeps its last checkpoint; `--resume` carries on from it to the end;
    a fresh start into the unfinished folder is refused."""
    import signal
    import subprocess
    import sys
    import time

    from safetensors import safe_open

    from worldsim.cli import main

    out = tmp_path / "ppo"
    def cli(steps: int, *more: str) -> list[str]:
        return ["agent", "train", "--checkpoint", tiny_ckpt, "--task", "dig", "--steps", str(steps), "--num-envs", "2",
                "--n-steps", "16", "--batch-size", "32", "--checkpoint-every", "32", "--out", str(out), "--quiet", *more]

    args = cli(100_000)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from worldsim.cli import main; sys.exit(main())", *args])
    ckpt = out / "checkpoint.safetensors"
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and done < 64:  # let it write at least two checkpoints, then kill it
        time.sleep(0.5)
        if ckpt.exists():
            with safe_open(str(ckpt), "pt") as f:
                done = json.loads(f.metadata()["worldsim"])["num_timesteps"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert done >= 64 and not (out / "policy.json").exists()

    assert main(cli(64)) == 2  # not --resume: refused, the checkpoint is kept
    assert ckpt.exists()
    with safe_open(str(ckpt), "pt") as f:
        done = json.loads(f.metadata()["worldsim"])["num_timesteps"]
    total = done + 64
    assert main(cli(total, "--resume")) == 0
    meta = json.loads((out / "policy.json").read_text())
    assert total <= meta["train"]["steps"] < total + 64 and not ckpt.exists()
    assert main(cli(total)) == 0  # a finished folder: a fresh run may overwrite it


def test_the_dream_pays_a_task_from_predicted_events_as_the_game_pays_it(indev, tiny_ckpt):
    """The outcome heads predict which counts rose (blocks broken, wood, planks, workbench, pickaxe); the dream's
    task reward runs the real game's reward code on those counts: staged stages are paid once, as in the game."""
    from worldsim.envs.indev.rewards import COUNT_KEYS, counts_of, make_reward
    from worldsim.envs.tasks import DreamReward

    game = indev(size=32)
    first = game.reset(seed=0)[1]
    infos = [game.unwrapped.give(name, n) for name, n in
             (("planks", 4), ("planks", 1), ("workbench", 1), ("wood", 1), ("pickaxeWood", 1), ("workbench", 1))]
    counts = np.array([counts_of(first)] + [counts_of(i) for i in infos])
    events = np.diff(counts, axis=0) > 0
    for task in ("obtain", "treechop"):
        real = make_reward(task)
        real.reset(first)
        dream = DreamReward(COUNT_KEYS, task)
        paid = [dream.step(e) for e in events]
        if task == "obtain":
            assert paid == [real.step(i) for i in infos] == [1.0, 0.0, 2.0, 0.0, 4.0, 0.0]
        else:  # one item per predicted event: the 4 planks of a crafted log count once
            assert paid == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
        dream.reset()
        assert dream.step(events[0]) == paid[0]  # a new dream starts from empty counts

    model_events = gym.make("worldsim/NeuralMinecraft-v0", checkpoint=tiny_ckpt).unwrapped.model.cfg.outcome_events
    assert model_events == COUNT_KEYS  # learned from the real game's recorded counts
    with pytest.raises(ValueError, match="task"):
        gym.make("worldsim/NeuralMinecraft-v0", checkpoint=tiny_ckpt, task="fly")
    with pytest.raises(ValueError, match="treechop"):
        DreamReward(("reward",), "treechop")
