"""PPO (Stable-Baselines3) in the neural env, and the policies it produces.

The RL loop is SB3's; what is ours is the glue: the vector neural env (one batched model call per step for all
envs) behind `SB3VectorEnv`, MultiDiscrete actions (`worldsim.agents.discrete`), and a small CNN sized for 64x64 frames
(NatureCNN's 8x8/stride-4 first layer was made for 84x84 Atari and throws away most of a 64x64 frame).

Saved policies never go through pickle: SB3's `.zip` keeps spaces and schedules as cloudpickle, so we do not
use `PPO.save/PPO.load`. A policy folder holds `policy.safetensors` (the actor-critic's weights) and
`policy.json` (observation shape, action spec, network sizes, training figures); `load_policy` rebuilds the
network from the JSON and loads the weights with safetensors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from worldsim.agents.discrete import ActionTranslator, DiscreteActionSpec, discrete_vector_actions
from worldsim.io.atomic import publish_mode, temp_sibling, write_json_atomic

FORMAT = "worldsim-ppo-policy/1"


def _cnn_class():
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class SmallCNN(BaseFeaturesExtractor):
        """64x64x3 -> 256 features: three stride-2 convolutions (32, 64, 64 channels), then a linear layer,
        layer-normalised (`norm`, with ReLU heads; ReLU features and tanh heads before it existed). Why: with tanh
        heads on ReLU features, Adam's same-sized steps on every weight of a unit add up (the features are all
        positive) and drive the unit into saturation within a few thousand steps; every frame then gives the same
        +-1 hidden state and the policy the data's marginals (behaviour cloning did: p(attack) 0.504 on every
        frame). Normalised features and ReLU heads keep the hidden state a function of the frame."""

        def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 256, norm: bool = True):
            super().__init__(observation_space, features_dim)
            c = observation_space.shape[0]
            self.cnn = nn.Sequential(
                nn.Conv2d(c, 32, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.Flatten())
            with torch.no_grad():
                n = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
            self.linear = nn.Sequential(nn.Linear(n, features_dim), nn.LayerNorm(features_dim) if norm else nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(self.cnn(x))

    return SmallCNN


#: The actor-critic's layout, saved in policy.json as "network". "layernorm-relu": layer-normalised features and
#: ReLU heads (what `SmallCNN` explains); "relu-tanh": ReLU features and SB3's default tanh heads (policies saved
#: before, whose policy.json has no "network").
NETWORKS = ("layernorm-relu", "relu-tanh")


def _policy_kwargs(features_dim: int, net_arch: list[int], network: str = NETWORKS[0]) -> dict[str, Any]:
    """The actor-critic's sizes and layout."""
    if network not in NETWORKS:
        raise ValueError(f"unknown policy network {network!r}; one of {NETWORKS}")
    new = network == NETWORKS[0]
    return {"features_extractor_class": _cnn_class(),
            "features_extractor_kwargs": {"features_dim": features_dim, "norm": new},
            "net_arch": {"pi": list(net_arch), "vf": list(net_arch)}, "activation_fn": nn.ReLU if new else nn.Tanh}


def policy_kwargs_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The network of a saved policy, from its policy.json."""
    return _policy_kwargs(int(meta["features_dim"]), list(meta["net_arch"]), meta.get("network", NETWORKS[1]))


def make_vector_env(env_id: str, num_envs: int, episode_steps: int | None, **env_kwargs) -> gym.vector.VectorEnv:
    """A same-step-autoreset vector env: the neural env's own batched one, else Gymnasium's sync vector env."""
    spec = gym.spec(env_id)
    same = gym.vector.AutoresetMode.SAME_STEP
    if spec.vector_entry_point is not None:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                            max_episode_steps=episode_steps, autoreset_mode=same, **env_kwargs)
    kwargs = dict(env_kwargs, max_episode_steps=episode_steps) if episode_steps else env_kwargs
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": same}, **kwargs)


def _progress_callback(total: int, enabled: bool, initial: int = 0):
    """A tqdm bar over env steps with the mean episode return, as an SB3 callback (SB3 imported only here)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm import tqdm

    class Bar(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, initial=initial, desc="ppo", unit="step", disable=not enabled)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            buf = self.model.ep_info_buffer
            if buf and self.n_calls % 20 == 0:
                self.bar.set_postfix(ep_return=f"{np.mean([e['r'] for e in buf]):.2f}")
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return Bar()


CHECKPOINT = "checkpoint.safetensors"  # an unfinished run's state, in its policy folder


def train_ppo(out: str | Path, env_id: str = "worldsim/NeuralMinecraft-v0", task: str = "dig", steps: int = 100_000,
              num_envs: int = 16, seed: int = 0, n_steps: int = 64, batch_size: int = 256, n_epochs: int = 4,
              learning_rate: float = 3e-4, gamma: float = 0.95, ent_coef: float = 0.01, features_dim: int = 256,
              net_arch: tuple[int, ...] = (64,), spec: DiscreteActionSpec | None = None, progress: bool = True,
              device: str = "cpu", resume: bool = False, checkpoint_every: int = 10_000, episode_steps: int | None = None,
              init: str | Path | None = None, **env_kwargs) -> dict[str, Any]:
    """Train PPO on `env_id` under `task` for `steps` env steps; writes the policy folder `out`.

    `init`: a policy folder (the cloned policy, `worldsim.agents.bc`) to start from and to stay near: its network,
    action spec and sizes are taken, and `ent_coef` weighs the KL to it instead of the entropy
    (`worldsim.agents.anchored`). A spec with `repeat` > 1 holds each choice that many env steps.

    `episode_steps`: episodes of that many steps instead of the task's (not for the task's own real id): a dream
    drifts from its opening as it goes, so shorter dreams restart from real openings more often.

    Every `checkpoint_every` env steps (at the end of a rollout) the weights, Adam's state and the step count go
    to `out/checkpoint.safetensors`, atomically; `resume` carries a killed run on from there (the same settings
    are required), and a finished run removes it."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    import worldsim.envs  # noqa: F401  (registers the ids)
    from worldsim.agents.sb3_vec import SB3VectorEnv, repeat_actions
    from worldsim.envs.tasks import get_task, is_dream

    t = get_task(task)
    spec = spec or DiscreteActionSpec()
    prior_meta = None
    if init is not None:
        prior_meta = json.loads((Path(init) / "policy.json").read_text())
        spec = DiscreteActionSpec.from_json({**prior_meta["action_spec"], "repeat": spec.repeat})
        features_dim, net_arch = int(prior_meta["features_dim"]), tuple(prior_meta["net_arch"])
    if episode_steps is not None and env_id == t.real_env_id:
        raise ValueError(f"episode_steps: {env_id} is the task's own env, whose episodes are {t.episode_steps} steps")
    episode_steps = None if env_id == t.real_env_id else episode_steps or t.episode_steps
    if is_dream(env_id):
        env_kwargs = {**env_kwargs, "task": task}
    venv = discrete_vector_actions(make_vector_env(env_id, num_envs, episode_steps, **env_kwargs), spec)
    timed = _timed(SB3VectorEnv(venv))
    vec = VecMonitor(repeat_actions(timed, spec.repeat) if spec.repeat > 1 else timed)
    vec.seed(seed)
    policy_class = "CnnPolicy"
    if init is not None:
        from worldsim.agents.anchored import anchored_policy_class, load_prior

        policy_class = anchored_policy_class()
    model = PPO(policy_class, vec, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs,
                learning_rate=learning_rate, gamma=gamma, ent_coef=ent_coef, seed=seed, device=device, verbose=0,
                policy_kwargs=policy_kwargs_of(prior_meta) if prior_meta else _policy_kwargs(features_dim, list(net_arch)))
    if init is not None:
        prior, _ = load_prior(init, model.policy.observation_space, model.policy.action_space)
        model.policy.load_state_dict(prior.state_dict())
        model.policy.set_prior(prior)
    run = {"env_id": env_id, "task": task, "steps": steps, "num_envs": num_envs, "seed": seed, "n_steps": n_steps,
           "batch_size": batch_size, "n_epochs": n_epochs, "learning_rate": learning_rate, "gamma": gamma,
           "ent_coef": ent_coef, "episode_steps": episode_steps, "features_dim": features_dim, "net_arch": list(net_arch), "action_spec": spec.to_json(),
           "env_kwargs": {k: str(v) for k, v in env_kwargs.items()},
           "init": None if init is None else str(Path(init).resolve())}
    done = _restore(Path(out), model, run) if resume else _refuse_unfinished(Path(out))
    t0 = time.time()
    callbacks = [_progress_callback(steps, progress, done), _checkpoint_callback(Path(out), run, checkpoint_every)]
    model.learn(total_timesteps=max(0, steps - done), callback=callbacks, reset_num_timesteps=done == 0)
    wall = time.time() - t0
    returns = [float(e["r"]) for e in model.ep_info_buffer]
    info = {"env_id": env_id, "task": task, "steps": int(model.num_timesteps), "num_envs": num_envs, "seed": seed,
            "episode_steps": episode_steps,
            "wall_s": round(wall, 1), "steps_per_s": round(model.num_timesteps / wall, 1),
            "env_steps_per_s": round(model.num_timesteps / max(timed.env_time_s, 1e-9), 1),
            "last_episodes_mean_return": float(np.mean(returns)) if returns else None,
            "ppo": {"n_steps": n_steps, "batch_size": batch_size, "n_epochs": n_epochs, "learning_rate": learning_rate,
                    "gamma": gamma, "ent_coef": ent_coef},
            "init": None if init is None else str(Path(init).resolve()),
            "regulariser": "entropy" if init is None else "KL to the init policy (weight ent_coef)",
            "env_kwargs": {k: str(v) for k, v in env_kwargs.items()}}
    save_policy(out, model.policy, spec, features_dim, list(net_arch), info)
    (Path(out) / CHECKPOINT).unlink(missing_ok=True)
    vec.close()
    return info


def _refuse_unfinished(out: Path) -> int:
    if (out / CHECKPOINT).exists():
        raise FileExistsError(f"{out} holds an unfinished run ({CHECKPOINT}): pass --resume to carry it on, or "
                              "choose another --out")
    return 0


def _save_checkpoint(out: Path, model, run: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    from worldsim.model.checkpoint import optimizer_to_tensors

    opt_t, opt_j = optimizer_to_tensors(model.policy.optimizer)
    tensors = {f"policy.{k}": v.detach().contiguous() for k, v in _unaliased(model.policy).items()}
    tensors.update({k: v.contiguous() for k, v in opt_t.items()})
    meta = {"run": run, "num_timesteps": int(model.num_timesteps), "optimizer": opt_j}
    out.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out / CHECKPOINT)
    save_file(tensors, str(tmp), metadata={"worldsim": json.dumps(meta)})
    tmp.replace(out / CHECKPOINT)


def _unaliased(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with each shared tensor once (the actor and critic share one CNN; safetensors refuses
    aliases)."""
    seen, out = set(), {}
    for k, v in module.state_dict(keep_vars=False).items():
        if v.data_ptr() not in seen:
            seen.add(v.data_ptr())
            out[k] = v
    return out


def _restore(out: Path, model, run: dict[str, Any]) -> int:
    """Load an unfinished run's checkpoint into `model`; -> the env steps it had done (0: nothing to resume)."""
    from safetensors import SafetensorError, safe_open

    from worldsim.model.checkpoint import optimizer_from_tensors

    path = out / CHECKPOINT
    if not path.exists():
        print(f"--resume: no {CHECKPOINT} in {out}, starting fresh")
        return 0
    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()["worldsim"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, SafetensorError, KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable PPO checkpoint ({e})") from e
    differ = {k: (meta["run"].get(k), v) for k, v in run.items() if k != "steps" and meta["run"].get(k) != v}
    if differ:
        raise ValueError(f"{path} was written with other settings: {differ} (checkpoint, now)")
    weights = {k[len("policy."):]: v for k, v in tensors.items() if k.startswith("policy.")}
    if set(weights) != set(_unaliased(model.policy)):
        raise ValueError(f"{path}: its weights do not match this policy network")
    model.policy.load_state_dict(weights, strict=False)  # the aliases of a shared CNN fill in with it
    optimizer_from_tensors(model.policy.optimizer, tensors, meta["optimizer"])
    model.num_timesteps = int(meta["num_timesteps"])
    print(f"resumed {out} at {model.num_timesteps} env steps")
    return model.num_timesteps


def _checkpoint_callback(out: Path, run: dict[str, Any], every: int):
    from stable_baselines3.common.callbacks import BaseCallback

    class Checkpoint(BaseCallback):
        last = 0

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            if every > 0 and self.model.num_timesteps - self.last >= every:
                _save_checkpoint(out, self.model, run)
                self.last = self.model.num_timesteps

    return Checkpoint()


def _timed(venv):
    """Wraps an SB3 VecEnv to count the seconds spent inside the env (the dream): env steps/s apart from PPO."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class Timed(VecEnvWrapper):
        env_time_s = 0.0

        def reset(self):
            return self.venv.reset()

        def step_wait(self):
            t0 = time.perf_counter()
            out = self.venv.step_wait()
            self.env_time_s += time.perf_counter() - t0
            return out

    return Timed(venv)


def save_policy(out: str | Path, policy: nn.Module, spec: DiscreteActionSpec, features_dim: int, net_arch: list[int],
                info: dict[str, Any]) -> Path:
    from safetensors.torch import save_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out / "policy.safetensors")
    save_model(policy, str(tmp))  # (the actor and critic share one CNN: save_model stores shared tensors once)
    publish_mode(tmp)  # safetensors writes the file anew, private to its owner: a policy is for others to read
    tmp.replace(out / "policy.safetensors")
    write_json_atomic(out / "policy.json", {
        "format": FORMAT, "obs_shape": list(policy.observation_space.shape), "action_spec": spec.to_json(),
        "features_dim": features_dim, "net_arch": net_arch,
        "network": NETWORKS[0] if any(isinstance(m, nn.LayerNorm) for m in policy.modules()) else NETWORKS[1],
        "train": info})
    return out


class PPOAgent:
    """A saved PPO policy acting in any env with a MineRL-style Dict action space (the `Policy` protocol)."""

    def __init__(self, path: str | Path, action_space: gym.spaces.Dict, seed: int | None = None,
                 deterministic: bool = False):
        from safetensors import SafetensorError
        from safetensors.torch import load_model
        from stable_baselines3.common.policies import ActorCriticCnnPolicy

        path = Path(path)
        try:
            meta = json.loads((path / "policy.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path / 'policy.json'}: not a readable policy description ({e})") from e
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path / 'policy.json'}: format {meta.get('format')!r}, expected {FORMAT!r}")
        self.meta = meta
        self.spec = DiscreteActionSpec.from_json(meta["action_spec"])
        self.spec.check(action_space)
        self.action_space = action_space
        obs_space = gym.spaces.Box(0, 255, tuple(meta["obs_shape"]), np.uint8)
        self.policy = ActorCriticCnnPolicy(obs_space, self.spec.space, lambda _: 0.0,
                                           **policy_kwargs_of(meta))
        try:
            load_model(self.policy, str(path / "policy.safetensors"), device="cpu")
        except (OSError, SafetensorError) as e:
            raise ValueError(f"{path / 'policy.safetensors'}: cannot read the policy weights ({e})") from e
        except RuntimeError as e:
            raise ValueError(f"{path / 'policy.safetensors'} does not match {path / 'policy.json'}: {e}") from e
        self.policy.eval()
        self.deterministic = deterministic
        self.translate = ActionTranslator(self.spec, action_space)
        self._held: np.ndarray | None = None  # the choice being held and for how many more steps (`spec.repeat`)
        self._left = 0
        self._gen = torch.Generator().manual_seed(0 if seed is None else int(seed))

    def reset(self, seed: int | None = None) -> None:
        self.translate.reset()
        self._held, self._left = None, 0
        if seed is not None:
            self._gen.manual_seed(int(seed))

    @torch.no_grad()
    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._left > 0:  # holding the last choice (`spec.repeat`)
            self._left -= 1
            return self.translate(self._held)
        obs = torch.as_tensor(np.asarray(observation)).permute(2, 0, 1)[None].float()
        dist = self.policy.get_distribution(obs)
        if self.deterministic:
            a = dist.mode()
        else:  # sampled from the policy's own generator: the same seed gives the same episode
            probs = [d.probs for d in dist.distribution]
            a = torch.stack([torch.multinomial(p, 1, generator=self._gen)[:, 0] for p in probs], dim=-1)
        self._held, self._left = a[0].numpy(), self.spec.repeat - 1
        return self.translate(self._held)


def is_policy_folder(name: str) -> bool:
    return (Path(name) / "policy.json").is_file()
