"""The reference learner of the types world (`benchmarks/types_world.py`): its generator's
form, every part fitted by maximum likelihood from item ids, display sets and clicks.

What a correctly specified model can learn from the log alone, as `benchmarks/reference_mle.py`
is for `ganrl.data.synthetic`'s worlds. A user of latent type k gives displayed item i the
utility

  u_k(i) = b_i + t_k . v_i + w [i is among her last 5 clicks] + x_c . y_i

with c her last click: item biases b (the quality), K type vectors t and item vectors v (the
types' tastes, rank `--dim`), a weight w for taking a recent click again (the avoidance), and
a transition from the last click to the next one through two further item tables x and y (the
pull of the next group), beside a learned no-click utility. The type is latent with a uniform
prior, so a user's likelihood is the mean over the K types of the product of her choices'
probabilities, and a prediction is the posterior predictive given her earlier choices, exactly
(the generator's Bayes limit computes the same with the true parts). Training, early stopping
and evaluation are `reference_mle.ReferenceLearner`'s.

  python -m benchmarks.types_reference --data_folder=DIR --dataset=types --out=DIR/ref.json
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from benchmarks import reference_mle  # noqa: E402
from benchmarks.types_world import RECENT  # noqa: E402

# Utility of padding, as the synthetic reference learner's.
_PADDING = reference_mle._PADDING


class TypesChoiceModel(tf.Module):
    """The types world's choice model with free parameters (the module docstring)."""

    def __init__(
        self,
        n_items: int,
        types: int,
        dim: int,
        has_no_click: bool,
        scale: float,
        seed: int,
        l2: float = 0.0,
    ):
        super().__init__(name="types_choice_model")

        def table(rows, stream):
            return tf.Variable(
                tf.random.stateless_normal([rows, dim], [seed, stream], stddev=scale)
            )

        self.type_vectors = table(types, 0)
        self.item_vectors = table(n_items, 1)
        self.source = table(n_items, 2)
        self.target = table(n_items, 3)
        self.item_bias = tf.Variable(tf.zeros([n_items]))
        self.again = tf.Variable(0.0)
        self.no_click = tf.Variable(0.0) if has_no_click else None
        self.l2 = l2

    def penalty(self) -> tf.Tensor:
        """`l2` times the squared norm of the item and type tables (a Gaussian prior)."""
        tables = (self.type_vectors, self.item_vectors, self.source, self.target)
        return self.l2 * tf.add_n([tf.reduce_sum(tf.square(t)) for t in tables])

    def utilities(self, batch: reference_mle.UserTensors, _draws=None) -> tf.Tensor:
        """`[B, T, D + 1, K]` every option's utility under each type: the displayed items'
        (`_PADDING` on padding), then the no-click option's (`_PADDING` when there is none)."""
        display, earlier = batch.display, batch.earlier
        recent = tf.reduce_any(display[..., None] == earlier[:, :, None, :], axis=-1)
        base = tf.gather(self.item_bias, display) + self.again * tf.cast(recent, tf.float32)
        last = earlier[:, :, 0]
        pull = tf.einsum(
            "btd,btjd->btj",
            tf.gather(self.source, tf.maximum(last, 0)),
            tf.gather(self.target, display),
        )
        base += tf.where(last[..., None] >= 0, pull, 0.0)
        taste = tf.einsum("btjd,kd->btjk", tf.gather(self.item_vectors, display), self.type_vectors)
        utility = tf.where(batch.display_mask[..., None], base[..., None] + taste, _PADDING)
        no_click = _PADDING if self.no_click is None else self.no_click
        shape = tf.concat([tf.shape(utility)[:2], [1], tf.shape(self.type_vectors)[:1]], 0)
        return tf.concat([utility, tf.fill(shape, no_click)], axis=2)

    def fitted(self) -> dict:
        """The fitted weight of taking a recent click again and the no-click utility."""
        return {
            "again_weight": float(self.again.numpy()),
            "no_click_utility": None if self.no_click is None else float(self.no_click.numpy()),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_folder", required=True)
    parser.add_argument("--dataset", default="types")
    parser.add_argument("--out", default="", help="JSON results (default: printed only)")
    parser.add_argument("--types", type=int, default=40, help="K, the latent types")
    parser.add_argument("--dim", type=int, default=50, help="width of the item tables")
    # The defaults of these three were the best by validation loss on world 0 with 20,000
    # users (docs/user_model_generalisation.md); a larger log wants a smaller --l2.
    parser.add_argument("--learning_rate", type=float, default=0.002)
    parser.add_argument("--batch_users", type=int, default=50)
    parser.add_argument("--max_epochs", type=int, default=300)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--init_scale", type=float, default=0.1)
    parser.add_argument("--l2", type=float, default=3e-5, help="penalty on the tables")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = reference_mle.ReferenceConfig(
        history="lag",
        history_lags=RECENT,
        feature_dim=args.dim,
        samples=args.types,
        learning_rate=args.learning_rate,
        batch_users=args.batch_users,
        max_epochs=args.max_epochs,
        patience=args.patience,
        init_scale=args.init_scale,
        seed=args.seed,
    )
    results = reference_mle.run(
        args.data_folder,
        args.dataset,
        config,
        progress=lambda line: print(line, flush=True),
        make_model=lambda n_items, has_no_click: TypesChoiceModel(
            n_items, args.types, args.dim, has_no_click, args.init_scale, args.seed, args.l2
        ),
    )
    reference_mle.report(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
