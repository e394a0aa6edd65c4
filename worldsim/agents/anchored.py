"""PPO kept near a prior policy: the entropy bonus becomes a KL penalty toward the cloned policy.

Dreamer 4 improves its cloned policy in imagination with a KL term toward the behaviour-cloned prior: the dream's
reward is learned and wrong in places, and a policy free to drift finds those places (it "hacks" the reward
model) and forgets the skills the recorded play taught, such as holding attack until a log breaks. PPO already
regularises the policy toward the uniform distribution through its entropy bonus, -ent_coef * H(pi); entropy is
-KL(pi || uniform) up to a constant, so putting the prior in the uniform's place gives the KL-regularised
objective, reward - beta * KL(pi || pi_prior), with no change to PPO's update: this policy's `evaluate_actions`
reports -KL(pi || pi_prior) where a policy reports its entropy, and PPO's `ent_coef` is beta.

The prior is frozen and kept out of the policy's parameters and state dict: a saved policy is the plain
actor-critic any `PPOAgent` loads.
"""

from __future__ import annotations

from pathlib import Path

import torch


def anchored_policy_class():
    """The SB3 actor-critic CNN policy whose regulariser is the KL to `prior` (set with `set_prior`)."""
    from stable_baselines3.common.policies import ActorCriticCnnPolicy

    class AnchoredCnnPolicy(ActorCriticCnnPolicy):
        _prior: list = []  # [the frozen prior policy]: a list, so torch does not register it as a submodule

        def set_prior(self, prior: ActorCriticCnnPolicy) -> None:
            prior.eval()
            for p in prior.parameters():
                p.requires_grad_(False)
            self._prior = [prior]

        def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor):
            values, log_prob, entropy = super().evaluate_actions(obs, actions)
            if not self._prior:
                return values, log_prob, entropy
            return values, log_prob, -self.kl_to_prior(obs)

        def kl_to_prior(self, obs: torch.Tensor) -> torch.Tensor:
            """KL(pi || pi_prior) per observation (B,), summed over the independent action components."""
            own = self.get_distribution(obs).distribution
            with torch.no_grad():
                prior = self._prior[0].get_distribution(obs).distribution
            parts = own if isinstance(own, list) else [own]
            priors = prior if isinstance(prior, list) else [prior]
            return sum(torch.distributions.kl_divergence(a, b) for a, b in zip(parts, priors))

    return AnchoredCnnPolicy


def load_prior(path: str | Path, observation_space, action_space):
    """A saved policy folder's actor-critic (the cloned policy), frozen, and its policy.json."""
    import json

    from safetensors.torch import load_model
    from stable_baselines3.common.policies import ActorCriticCnnPolicy

    from worldsim.agents.ppo import FORMAT, policy_kwargs_of

    path = Path(path)
    meta = json.loads((path / "policy.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path / 'policy.json'}: format {meta.get('format')!r}, expected {FORMAT!r}")
    policy = ActorCriticCnnPolicy(observation_space, action_space, lambda _: 0.0,
                                  **policy_kwargs_of(meta))
    load_model(policy, str(path / "policy.safetensors"), device="cpu")
    return policy, meta
