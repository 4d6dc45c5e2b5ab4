"""A policy run small enough for a test, shared by the policy tests."""

from __future__ import annotations


def tiny_policy_config(user_model_dir, save_dir, **overrides):
    """A policy run small enough for a test: k = 2, horizon 2, 4 users per episode, no
    adaptation or regret phase."""
    from ganrl.policy.runner import PolicyConfig

    values = dict(
        user_model_dir=user_model_dir,
        test_user_model_dir=user_model_dir,
        save_dir=str(save_dir),
        k=2,
        horizon=2,
        num_itrs=4,
        batch_size=4,
        train_batch_size=4,
        eval_users=4,
        adapt_itrs=0,
        regret_itrs=0,
        hidden=8,
        checkpoint_secs=0,
    )
    return PolicyConfig(**{**values, **overrides})
