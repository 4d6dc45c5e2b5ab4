"""The user model: history encoder + item encoder + utility MLP + softmax choice.

r(s_t, a) = MLP([s_t, e_a, x_t(a)]) with ELU hidden layers (`dims`, e.g. 64-64). The first
layer's weight over the concatenation splits into a state part, an item part and a context
part, which lets the simulator score many candidates for one state without repeating the
state's product.

x_t(a) is the optional per-item context of `ganrl.user_model.context` (it also enters the
utility linearly): statistics of the item among the training users (present when the item
features carry `train:` columns, `ganrl.data.item_stats`), the user's own history of the item
(`history_features`) and its rank within the display set (`set_context`). The paper's model
has none of them (`MODEL_PRESETS["onehot"]`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from ganrl import config_checks
from ganrl.data.dataset import ItemFeatures
from ganrl.data.item_stats import split_statistics
from ganrl.user_model import choice, context
from ganrl.user_model.encoders import (
    HISTORY_ENCODERS,
    ItemEncoder,
    make_history_encoder,
    random_map,
)
from ganrl.user_model.state_parts import (
    TASTE,
    Event,
    make_state_parts,
    summarise_choices,
    summarise_displays,
    user_prefix_sums,
)

# Re-exported: the state parts' maths lived here before `ganrl.user_model.state_parts`.
__all__ = [
    "EncodedState",
    "MODEL_PRESETS",
    "ModelConfig",
    "UserModel",
    "checkpoint_variables",
    "random_state_variables",
    "summarise_choices",
    "summarise_displays",
    "user_prefix_sums",
]

keras = tf.keras

# How the trainer starts the identity embedding (`ModelConfig.item_init`).
ITEM_INITS = ("random", "coclick")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a user model (the original code's flag names where they exist).

    Attributes:
      user_model: history encoder, 'PW' or 'LSTM'.
      dims: hidden sizes of the utility MLP, e.g. '64-64'.
      item_dim: width of the item embedding.
      rnn_hidden_dim: LSTM units.
      pw_dim: number of position-weight columns (PW).
      pw_band_size: number of past clicks PW looks at.
      pw_activation: PW's squashing of its position-weighted sums: 'sigmoid' (the paper's) or
        'linear' (`ganrl.user_model.encoders.PositionWeightEncoder`).
      rnn_skip: LSTM: add to its state a learned position-weighted sum of the last this many
        click embeddings (0: none; `ganrl.user_model.encoders.LSTMEncoder`).
      mlp_item: whether the MLP sees the item's embedding; without it the item enters only
        through the bilinear term, its bias and its context features (what the MLP then
        combines with the state), and the MLP cannot memorise items.
      item_bias: add a learned scalar per item to its utility (a popularity term a dot
        product or an MLP of the embedding would otherwise have to carve out of the
        embedding); items never shown in training share a learned fallback.
      bilinear: add a bilinear state-item term (P s) . e_a to the MLP's utility; an MLP over
        the concatenation [s, e_a] learns multiplicative taste-item interactions slowly.
      dropout: dropout rate on item embeddings and hidden layers while training.
      id_dropout: while training, the share of item occurrences whose identity embedding is
        replaced by a learned fallback vector (which always stands in for items no training
        user saw, when the features carry statistics), so that rare items lean on the shared
        features; with statistics, an item shown in d training display sets is dropped at
        id_dropout * a / (a + d), a = `rate_prior_strength`.
      display_history: add to the state what the user's earlier display sets say beyond her
        clicks: the mean embedding of the items she was shown and did not click (averaged
        over her earlier events), her share of no-click events and log(1 + events). Under a
        softmax choice, the items passed over carry as much evidence about a taste as the
        click; an encoder of clicks alone cannot see it.
      choice_history: add to the state the evidence of the user's earlier choices weighed by
        the model's own prediction: per event, the embedding of the clicked item (none for a
        no-click) less the predicted mean embedding of the choice, sum_a p(a) e_a, with p the
        model's choice probabilities for that event from the state *without* this part;
        summed over the earlier events, shrunk by 1 / (1 + k events) with a learned k > 0
        (how fast the evidence outweighs the prior), and log(1 + events).
        This is the gradient of a softmax choice's log-likelihood in a latent taste, so it
        tracks that taste's posterior mean where a uniform mean of the items passed over
        (`display_history`) does not (items the model expected to be picked weigh more).
        Each event's utilities are then computed twice (without, then with this part).
      history_features: add what the user's own history says about each item (clicked
        before, last click, shown before, in the previous display set).
      history_clicks: how many recent clicks those features look at.
      history_events: how many recent display sets they look at.
      history_display_width: the widest display set the step view remembers (the trainer
        raises it to the data's widest set).
      set_context: add each item's rank within its display set by training popularity and
        by smoothed click rate (needs item statistics).
      set_summary: let each utility see the rest of its display set: the mean embedding of
        the set's items enters the first hidden layer and a bilinear term with the item's
        embedding. Where the choice is a mixture of softmaxes (the posterior predictive of a
        latent taste), which item is likeliest depends on the set, and a utility of the item
        alone cannot say so. The policies' learned reward then depends on the whole candidate
        set.
      taste_mixture: K > 0 makes the choice a mixture of K softmaxes (the utilities, each
        shifted by sigma(s) z_k . (A e_a) for fixed draws z_k ~ N(0, I), a learned projection
        A of the item embedding and a learned, state-dependent sigma(s) >= 0): the Monte
        Carlo posterior predictive of a taste the history pins down only so far. A softmax
        over per-item scores keeps the ratio of two items' probabilities whatever else is
        shown; such a mixture does not. The utilities (the policies' reward and ranking)
        stay the centre, without the shifts; 0 is one softmax.
      taste_posterior: K > 0 adds a latent user type filtered by Bayes' rule: K learned
        type vectors z_k (starting as draws of N(0, 0.01 I)) whose effect on item a is
        z_k . (A e_a) (A a learned projection of the item embedding), with learned prior
        weights, each weighted by the likelihood of the user's earlier choices under it
        (`TastePosterior`) to a learned power beta (1 at the start). The choice is the
        posterior-weighted mixture of the K softmaxes over the utilities plus each type's
        effect; the utilities (the policies' reward and ranking) add the posterior mean's.
        Where `taste_mixture` asks the encoder for the spread of the taste, this computes
        the posterior from the choices; 0 is off. Not with `taste_mixture`.
      taste_evidence: the posterior counts at most this many of a user's earlier choices:
        beyond them, their mean log-likelihood per choice times this (0: all of them).
      rate_prior_strength: pseudo display sets of the Beta prior of the smoothed click rate
        (and the display count at which identity dropout halves).
      leave_user_out: on training batches, keep the batch users' own events out of the item
        statistics (a test user is never in them either): out-of-fold counts when the
        trainer gave the model its folds (`use_statistic_folds`), else the counts less the
        batch users' own events.
      statistic_folds: K of the out-of-fold statistics (`ganrl.data.item_stats`); 0 takes
        each batch user's own events out instead (leave-one-user-out), which the identity
        embedding can undo (docs/user_model_generalisation.md).
      l2_reg: coefficient of the L2 penalty on the weights (the original's MLP regulariser),
        added to the training loss by `regularization_loss`.
      item_init: how the trainer starts the identity embedding: 'random' (N(0, 0.05^2)) or
        'coclick' (the training users' co-click PPMI, `ganrl.user_model.coclick`); a model
        loaded from a run folder takes its trained weights either way.
    """

    user_model: str = "LSTM"
    dims: str = "64-64"
    item_dim: int = 32
    rnn_hidden_dim: int = 20
    pw_dim: int = 4
    pw_band_size: int = 20
    pw_activation: str = "sigmoid"
    rnn_skip: int = 0
    item_bias: bool = False
    mlp_item: bool = True
    bilinear: bool = True
    dropout: float = 0.0
    id_dropout: float = 0.0
    display_history: bool = False
    choice_history: bool = False
    history_features: bool = False
    history_clicks: int = 10
    history_events: int = 5
    history_display_width: int = 10
    set_context: bool = False
    set_summary: bool = False
    taste_mixture: int = 0
    taste_posterior: int = 0
    taste_evidence: int = 10
    rate_prior_strength: float = 5.0
    leave_user_out: bool = True
    statistic_folds: int = 5
    l2_reg: float = 0.0
    item_init: str = "random"

    def __post_init__(self):
        config_checks.check_choice(self, "user_model", HISTORY_ENCODERS)
        if not re.fullmatch(r"([1-9][0-9]*(-[1-9][0-9]*)*)?", self.dims):
            raise ValueError(
                f"dims={self.dims!r}: expected the hidden sizes of the utility "
                "MLP, positive integers joined by '-', e.g. '64-64' (or '' for "
                "none)"
            )
        config_checks.check(
            self,
            "a positive integer",
            "item_dim",
            "rnn_hidden_dim",
            "pw_dim",
            "pw_band_size",
            "history_clicks",
            "history_events",
            "history_display_width",
        )
        config_checks.check(self, "a number in [0, 1)", "dropout", "id_dropout")
        config_checks.check(self, "a positive number", "rate_prior_strength")
        config_checks.check(self, "a non-negative number", "l2_reg")
        config_checks.check(
            self,
            "a non-negative integer",
            "rnn_skip",
            "statistic_folds",
            "taste_mixture",
            "taste_posterior",
            "taste_evidence",
        )
        if self.taste_mixture and self.taste_posterior:
            raise ValueError(
                f"taste_mixture={self.taste_mixture} and taste_posterior="
                f"{self.taste_posterior}: expected at most one of them above 0"
            )
        config_checks.check_choice(self, "pw_activation", ("sigmoid", "linear"))
        config_checks.check_choice(self, "item_init", ITEM_INITS)
        if not self.dims and not self.bilinear:
            raise ValueError(
                f"dims={self.dims!r}: a utility without an MLP needs the "
                "bilinear term (bilinear=True)"
            )
        if self.statistic_folds == 1:
            raise ValueError("statistic_folds=1: expected 0 (leave-one-user-out) or at least 2")

    @property
    def hidden_dims(self) -> list[int]:
        return [int(d) for d in self.dims.split("-") if d]


# Model options of each item-feature setting (TrainConfig.item_features): 'onehot' is the
# paper's; 'generalising' adds training statistics (added by the trainer), identity dropout
# with a fallback, and the user's history of each item.
MODEL_PRESETS = {
    "onehot": {},
    "generalising": {
        "id_dropout": 0.8,
        "history_features": True,
        "item_bias": True,
        "mlp_item": False,
        "choice_history": True,
        "pw_activation": "linear",
        "rnn_skip": 5,
        "item_init": "coclick",
    },
}


class EncodedState(NamedTuple):
    """What the utility reads of a state: `vector [..., S]` (the encoder's output and the
    parts' columns) and `context`, by part name: the int item ids of the parts that keep ids,
    which the per-item context compares with the candidates, and with `taste_posterior` the
    log-likelihoods `[..., K]` of the earlier choices under each user type (`taste`). Absent
    parts have no entry, so the state flattens (`tf.nest`) to tensors only."""

    vector: tf.Tensor
    context: dict

    @property
    def taste(self) -> tf.Tensor | None:
        """`[..., K]` the user types' log-likelihoods (`taste_posterior`), or None."""
        return self.context.get(TASTE)

    def with_taste(self, taste: tf.Tensor | None) -> "EncodedState":
        """This state with the types' log-likelihoods `taste` (None: without them)."""
        context = {k: v for k, v in self.context.items() if k != TASTE}
        if taste is not None:
            context[TASTE] = taste
        return EncodedState(self.vector, context)


class UserModel(keras.Model):
    """Reward r(s, a) and softmax choice over a display set (plus an optional no-click).

    The sequence view (training) reads flat batches of events (`EventArrays.flat_batch`);
    the step view (simulation) advances many users' histories one event at a time.
    """

    def __init__(
        self, item_features: ItemFeatures, config: ModelConfig, has_no_click: bool, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.config = config
        self.n_items = item_features.n_items
        self.has_no_click = has_no_click
        dims = config.hidden_dims
        side_features, counts = split_statistics(item_features)
        self._counts = None if counts is None else tf.constant(counts, tf.float32)
        self._user_fold = self._fold_counts = None  # set by `use_statistic_folds`
        if counts is not None:
            # The Beta prior's mean: the training users' clicks per displayed item.
            rate = float(counts[:, 1].sum()) / max(float(counts[:, 0].sum()), 1.0)
            self._prior_rate = min(max(rate, 1e-3), 1.0 - 1e-3)
        if config.set_context and counts is None:
            raise ValueError("set_context needs item statistics (item_features=generalising)")
        self.items = ItemEncoder(
            side_features,
            config.item_dim,
            id_dropout=config.id_dropout,
            display_counts=None if counts is None else counts[:, 0],
            count_scale=config.rate_prior_strength,
            name="items",
        )
        self.history = make_history_encoder(
            config.user_model,
            config.item_dim,
            pw_dim=config.pw_dim,
            pw_band_size=config.pw_band_size,
            rnn_hidden_dim=config.rnn_hidden_dim,
            pw_activation=config.pw_activation,
            rnn_skip=config.rnn_skip,
        )
        self.item_bias = self.bias_fallback = None
        if config.item_bias:
            self.item_bias = keras.layers.Embedding(
                self.n_items, 1, embeddings_initializer="zeros", name="item_bias"
            )
            self.bias_fallback = self.add_weight(
                name="bias_fallback", shape=(), initializer="zeros"
            )
        # The state: the history encoder's, then the configured parts (`state_parts`); the
        # encoded vector holds the encoder's output, then the parts' columns.
        self.state_parts = make_state_parts(config)
        self._taste_part = next((p for p in self.state_parts if p.name == TASTE), None)
        self.encoded_dim = self.history.state_dim + sum(p.vector_dim for p in self.state_parts)
        # The MLP (absent for dims=''): its first layer splits over state, item, context and
        # set summary; no output bias: a softmax over the display set ignores a shift of
        # every utility (its gradient would be rounding noise that Adam amplifies); the
        # no-click logit, where there is one, carries the offset.
        self.state_layer = self.item_layer = self.output_layer = None
        self.hidden_layers = []
        if dims:
            self.state_layer = keras.layers.Dense(dims[0], name="mlp_0_state")
            if config.mlp_item:
                self.item_layer = keras.layers.Dense(dims[0], use_bias=False, name="mlp_0_item")
            self.hidden_layers = [
                keras.layers.Dense(d, activation="elu", name=f"mlp_{i + 1}")
                for i, d in enumerate(dims[1:])
            ]
            self.output_layer = keras.layers.Dense(1, use_bias=False, name="utility")
        self.dropout = keras.layers.Dropout(config.dropout)
        self.bilinear = (
            keras.layers.Dense(
                config.item_dim,
                use_bias=False,
                name="bilinear",
                kernel_initializer=self._bilinear_init(),
            )
            if config.bilinear
            else None
        )
        self.no_click_logit = (
            self.add_weight(name="no_click_logit", shape=(), initializer="zeros")
            if has_no_click
            else None
        )
        for part in self.state_parts:  # here, so the weights keep their checkpoint order
            part.create_weights(self)
        self.set_layer = self.set_bilinear = None
        if config.set_summary:
            if dims:
                self.set_layer = keras.layers.Dense(dims[0], use_bias=False, name="mlp_0_set")
            self.set_bilinear = keras.layers.Dense(
                config.item_dim, use_bias=False, name="set_bilinear"
            )
        self.mixture_scale = self.mixture_item = self._mixture_draws = None
        if config.taste_mixture:
            # sigma(s) starts at softplus(-1) = 0.31 for every state.
            self.mixture_scale = keras.layers.Dense(
                1,
                name="mixture_scale",
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(-1.0),
            )
            self.mixture_item = keras.layers.Dense(
                config.item_dim, use_bias=False, name="mixture_item"
            )
            self._mixture_draws = tf.constant(
                np.random.default_rng(0).standard_normal((config.taste_mixture, config.item_dim)),
                tf.float32,
            )
        self.posterior_item = self.posterior_types = self.posterior_prior = None
        self.posterior_temperature = None
        if config.taste_posterior:
            self.posterior_item = keras.layers.Dense(
                config.item_dim, use_bias=False, name="posterior_item"
            )
            self.posterior_types = self.add_weight(
                name="posterior_types",
                shape=(config.taste_posterior, config.item_dim),
                # Small at the start: the types part only as far as the logs pull them apart
                # (from N(0, I) they fitted 1,500 training users' choices, lost on new users).
                initializer=keras.initializers.RandomNormal(stddev=0.1, seed=1),
            )
            self.posterior_prior = self.add_weight(
                name="posterior_prior", shape=(config.taste_posterior,), initializer="zeros"
            )
            # beta = softplus(this), 1 at the start.
            self.posterior_temperature = self.add_weight(
                name="posterior_temperature",
                shape=(),
                initializer=keras.initializers.Constant(float(np.log(np.e - 1.0))),
            )
        self.context_dim = (
            (len(context.STATISTIC_FEATURES) if counts is not None else 0)
            + (2 if config.set_context else 0)
            + sum(p.context_dim for p in self.state_parts)
        )
        self.context_layer = self.context_linear = None
        if self.context_dim:
            if dims:
                self.context_layer = keras.layers.Dense(
                    dims[0], use_bias=False, name="mlp_0_context"
                )
            self.context_linear = keras.layers.Dense(1, use_bias=False, name="context_linear")
        # Create every weight now, so checkpoints restore eagerly and nothing builds lazily.
        state = self.state_vector(self.initial_state(1))
        self.utilities(state, tf.zeros([1, 1], tf.int32))
        self.mixture_shifts(state, tf.zeros([1, 1], tf.int32))
        if self.posterior_item is not None:
            self.posterior_effects(tf.zeros([1, 1], tf.int32))
        self.built = True

    def _bilinear_init(self) -> keras.initializers.Initializer:
        """The bilinear term's starting P `[encoded_dim, item_dim]`: the identity on the
        state's parts that live in item-embedding space (the display and choice summaries
        and the encoder's, where `similarity_init` gives one), so the term starts as the
        similarity of an item to the history, which a random P would first have to find
        (on an ids-only synthetic log a random start ended 2 to 3 points of prec@1 lower);
        random elsewhere."""
        blocks = [self.history.similarity_init()]
        if blocks[0] is None:
            blocks[0] = random_map(self.history.state_dim, self.config.item_dim)
        blocks += [part.bilinear_block() for part in self.state_parts if part.vector_dim]
        return keras.initializers.Constant(np.concatenate(blocks).astype(np.float32))

    def build(self, input_shape: Any = None) -> None:
        """All weights are created in `__init__`."""
        self.built = True

    # -- Step view (simulator) -------------------------------------------------------------
    def initial_state(self, batch_size: int) -> dict:
        """The empty history of `batch_size` users: the encoder's state under "encoder" and
        each state part's under its name."""
        return {
            "encoder": self.history.initial_state(batch_size),
            **{part.name: part.initial_state(batch_size) for part in self.state_parts},
        }

    def update_state(
        self,
        state: dict,
        clicked_item: tf.Tensor,
        clicked: tf.Tensor,
        display: tf.Tensor | None = None,
        display_mask: tf.Tensor | None = None,
    ) -> dict:
        """Adds `clicked_item [B]` to the histories where `clicked [B]` (bool) is True.

        With `display_history`, `choice_history` or `history_features`, pass the event's
        display set too (`display [B, D]`, with `display_mask [B, D]` unless every slot is
        real), click or no click: the model remembers what the user was shown. Without it the
        event counts as a click alone (nothing is remembered as shown; for `choice_history`,
        a display set of the clicked item alone).
        """
        clicked = tf.cast(clicked, tf.bool)
        event = Event(clicked_item, clicked, display, display_mask)
        embedding = self.items(tf.maximum(clicked_item, 0))
        return {
            "encoder": self.history.update(state["encoder"], embedding, clicked),
            **{part.name: part.update_state(self, state, event) for part in self.state_parts},
        }

    def state_vector(self, state: dict) -> EncodedState:
        """The encoded history: `vector [B, S]`, the encoder's output and the parts' columns
        (`display_history`'s summary, `choice_history`'s evidence), and the remembered item
        ids (`history_features`) as int tensors, which `utilities` compares with the
        candidates."""
        vector = tf.concat(
            [self.history.state_vector(state["encoder"])]
            + [part.vector(self, state[part.name]) for part in self.state_parts if part.vector_dim],
            axis=-1,
        )
        encoded = EncodedState(
            vector,
            {
                part.name: part.context(state[part.name])
                for part in self.state_parts
                if part.context_dim
            },
        )
        taste = state.get(TASTE)
        if taste is None:
            return encoded
        return encoded.with_taste(self._taste_part.evidence(taste))

    def _shrink(self) -> tf.Tensor:
        """k > 0 of choice_history's shrinkage 1 / (1 + k events)."""
        return next(p for p in self.state_parts if p.name == "choices").shrink()

    def _choice_evidence(
        self,
        utilities: tf.Tensor,
        display: tf.Tensor,
        mask: tf.Tensor,
        clicked_pos: tf.Tensor,
        training: bool = False,
    ) -> tf.Tensor:
        """`[N, E + 1]` what one event adds to the choice-evidence sums: the clicked item's
        embedding (0 for a no-click) less sum_a p(a) e_a under the choice probabilities of
        `utilities [N, D]` (the no-click option's share adds nothing), and 1."""
        probabilities = tf.nn.softmax(self.choice_logits(utilities, mask))[..., :-1]
        chosen = tf.one_hot(clicked_pos, tf.shape(display)[-1])  # all zeros for -1
        embeddings = self.items(display, training=training)
        evidence = tf.einsum("nd,nde->ne", chosen - probabilities, embeddings)
        return tf.concat([evidence, tf.ones_like(evidence[..., :1])], axis=-1)

    def item_embeddings(self, items: tf.Tensor) -> tf.Tensor:
        """items `[...]` -> `[..., item_dim]`."""
        return self.items(items)

    def item_descriptors(self) -> np.ndarray:
        """`[n_items, d]` what this model knows of every item, for recommenders: the item
        embeddings and, for the generalising features, the items' training statistics
        (`context.statistic_features`: display count, clicks, smoothed click rate, unseen)."""
        table = self.item_embeddings(tf.range(self.n_items))
        if self._counts is not None:
            stats = context.statistic_features(
                self._counts, self._prior_rate, self.config.rate_prior_strength
            )
            table = tf.concat([table, stats], axis=-1)
        return table.numpy()

    def utilities(
        self,
        state: EncodedState,
        items: tf.Tensor,
        training: bool = False,
        mask: tf.Tensor | None = None,
        item_counts: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """r(s, a) for an encoded state (`state_vector`: `vector [B, ..., S]`) and
        `items [B, ..., N]` -> `[B, ..., N]`.

        Args:
          mask: `[B, ..., N]` bool, the real items of the display set (default all); only
            `set_context` and `set_summary` look at the other items of the set.
          item_counts: `[B, ..., N, 2]` training counts to use instead of the stored ones
            (the sequence view's leave-user-out counts).
        """
        encoded = state.vector
        item_embeddings = self.dropout(self.items(items, training=training), training=training)
        features = self._context(state, items, mask, item_counts)
        set_mean = None
        if self.set_bilinear is not None:
            real = tf.ones(tf.shape(items)) if mask is None else tf.cast(mask, tf.float32)
            set_mean = (
                tf.reduce_sum(item_embeddings * real[..., None], -2)
                / tf.maximum(tf.reduce_sum(real, -1), 1.0)[..., None]
            )
        utility = tf.zeros(tf.shape(items), item_embeddings.dtype)
        if self.output_layer is not None:
            hidden = self.state_layer(encoded)[..., None, :]
            if self.item_layer is not None:
                hidden += self.item_layer(item_embeddings)
            if features is not None:
                hidden += self.context_layer(features)
            if set_mean is not None:
                hidden += self.set_layer(set_mean)[..., None, :]
            hidden = tf.nn.elu(hidden)
            for layer in self.hidden_layers:
                hidden = layer(self.dropout(hidden, training=training))
            utility += tf.squeeze(self.output_layer(hidden), -1)
        if self.bilinear is not None:
            utility += tf.reduce_sum(
                self.bilinear(encoded)[..., None, :] * item_embeddings, axis=-1
            )
        if features is not None:
            utility += tf.squeeze(self.context_linear(features), -1)
        if set_mean is not None:
            utility += tf.reduce_sum(
                self.set_bilinear(set_mean)[..., None, :] * item_embeddings, axis=-1
            )
        if self.item_bias is not None:
            utility += self._item_bias(items)
        if state.taste is not None:
            utility += self._posterior_mean_effects(state.taste, items, training)
        return utility

    def _item_bias(self, items: tf.Tensor) -> tf.Tensor:
        """`[...]` the learned bias of each item; the fallback for items no training user
        was shown."""
        bias = tf.squeeze(self.item_bias(items), -1)
        if self._counts is None:
            return bias
        seen = tf.gather(self._counts[:, 0], items) > 0
        return tf.where(seen, bias, self.bias_fallback)

    def _context(
        self,
        state: EncodedState,
        items: tf.Tensor,
        mask: tf.Tensor | None,
        item_counts: tf.Tensor | None,
    ) -> tf.Tensor | None:
        """`[B, ..., N, context_dim]` per-item context, or None when the model has none."""
        if not self.context_dim:
            return None
        cfg, parts = self.config, []
        if self._counts is not None:
            if item_counts is None:
                item_counts = tf.gather(self._counts, items)
            stats = context.statistic_features(
                item_counts, self._prior_rate, cfg.rate_prior_strength
            )
            parts.append(stats)
            if cfg.set_context:
                real = tf.ones(tf.shape(items), tf.bool) if mask is None else mask
                parts.append(context.set_ranks(stats[..., :3:2], real))  # by d and by rate
        parts += [
            part.context_features(items, state.context[part.name])
            for part in self.state_parts
            if part.context_dim
        ]
        return tf.concat(parts, axis=-1)

    def mixture_shifts(
        self, state: EncodedState, items: tf.Tensor, training: bool = False
    ) -> tf.Tensor | None:
        """`[B, ..., N, K]` the shifts of the choice's mixture components from the utilities:
        sigma(s) z_k . (A e_a) (`taste_mixture`), or each user type's effect less the
        posterior mean's (`taste_posterior`, whose utilities hold the mean's); None without
        either."""
        if state.taste is not None:
            effects = self.posterior_effects(items, training)
            weights = tf.exp(self._posterior_log_weights(state.taste))[..., None, :]
            return effects - tf.reduce_sum(effects * weights, -1, keepdims=True)
        if self.mixture_scale is None:
            return None
        scale = tf.nn.softplus(self.mixture_scale(state.vector))[..., None]  # [B, ..., 1, 1]
        directions = self.mixture_item(self.items(items, training=training))  # [B, ..., N, r]
        return scale * tf.einsum("...nr,kr->...nk", directions, self._mixture_draws)

    def posterior_effects(self, items: tf.Tensor, training: bool = False) -> tf.Tensor:
        """`[..., N, K]` each user type's effect z_k . (A e_a) on `items [..., N]`
        (`taste_posterior`)."""
        directions = self.posterior_item(self.items(items, training=training))
        return tf.einsum("...nr,kr->...nk", directions, self.posterior_types)

    def _posterior_log_weights(self, taste: tf.Tensor) -> tf.Tensor:
        """`[..., K]` the log-posterior of the user types given the earlier choices'
        log-likelihoods `taste [..., K]`, tempered by a learned beta > 0: prior times
        likelihood to the power beta. Where the types cannot describe a user exactly (real
        users drift, and no K types hold them all), the exact posterior of a long history
        collapses on one type too soon; beta < 1 keeps it as broad as the data say."""
        beta = tf.nn.softplus(self.posterior_temperature)
        return tf.nn.log_softmax(beta * taste + self.posterior_prior)

    def _posterior_mean_effects(
        self, taste: tf.Tensor, items: tf.Tensor, training: bool = False
    ) -> tf.Tensor:
        """`[B, ..., N]` the posterior mean type's effect on `items [B, ..., N]` given the
        types' log-likelihoods `taste [B, ..., K]`."""
        weights = tf.exp(self._posterior_log_weights(taste))[..., None, :]
        return tf.reduce_sum(self.posterior_effects(items, training) * weights, -1)

    def choice_log_likelihoods(
        self,
        utilities: tf.Tensor,
        display: tf.Tensor,
        mask: tf.Tensor,
        clicked_pos: tf.Tensor,
        training: bool = False,
    ) -> tf.Tensor:
        """`[N, K]` log p_k(choice) of each event under each user type: the softmax over
        `utilities [N, D]` (without any type's effect) plus type k's effect, at the chosen
        option (`clicked_pos [N]`, -1 for no click)."""
        effects = self.posterior_effects(display, training)
        return _chosen(self._type_log_probs(utilities, effects, mask), clicked_pos)

    def _type_log_probs(
        self, utilities: tf.Tensor, effects: tf.Tensor, mask: tf.Tensor
    ) -> tf.Tensor:
        """`[N, K, D + 1]` each user type's choice log-probabilities: the softmax over
        `utilities [N, D]` plus the type's `effects [N, D, K]` and the no-click option."""
        shifted = tf.linalg.matrix_transpose(utilities[..., None] + effects)  # [N, K, D]
        return tf.nn.log_softmax(
            choice.choice_logits(shifted, mask[..., None, :], self.no_click_logit)
        )

    def mixture_log_weights(self, state: EncodedState) -> tf.Tensor | None:
        """`[B, ..., K]` the log-weights of `mixture_shifts`' components: the taste
        posterior's with `taste_posterior`, None (uniform) otherwise."""
        return None if state.taste is None else self._posterior_log_weights(state.taste)

    def choice_logits(
        self,
        utilities: tf.Tensor,
        mask: tf.Tensor,
        shifts: tf.Tensor | None = None,
        log_weights: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """`[..., N]` utilities and mask -> `[..., N + 1]` logits, last = no-click. With
        `shifts [..., N, K]` (`mixture_shifts`) the logits are the log-probabilities of the
        mixture of the K shifted softmaxes, weighted by `log_weights [..., K]`
        (`mixture_log_weights`; None: equally)."""
        if shifts is None:
            return choice.choice_logits(utilities, mask, self.no_click_logit)
        shifted = tf.linalg.matrix_transpose(utilities[..., None] + shifts)  # [..., K, N]
        logits = choice.choice_logits(shifted, mask[..., None, :], self.no_click_logit)
        if log_weights is None:
            k = tf.cast(tf.shape(shifts)[-1], logits.dtype)
            mixed = tf.reduce_logsumexp(tf.nn.log_softmax(logits), axis=-2) - tf.math.log(k)
        else:
            mixed = tf.reduce_logsumexp(tf.nn.log_softmax(logits) + log_weights[..., None], axis=-2)
        options = choice.option_mask(mask, self.has_no_click)
        return tf.where(options, mixed, tf.cast(choice.MASKED_LOGIT, mixed.dtype))

    def relative_to_no_click(self, utilities: tf.Tensor) -> tf.Tensor:
        """`[...]` the learned reward of items of `utilities [...]`: the utilities less the
        no-click utility, as they are where the model conditions on a click. Utilities are
        defined up to a shift; the no-click option, whose reward is 0, is the zero point, in
        the MLE's choice and in the adversarial objectives alike."""
        if self.no_click_logit is None:
            return utilities
        return utilities - self.no_click_logit

    # -- Sequence view (training) ----------------------------------------------------------
    def _event_base(
        self, batch: dict, training: bool, leave_user_out: bool | None
    ) -> tuple[tf.Tensor, EncodedState]:
        """`event_utilities` without a user type's effect, and the states without `taste`."""
        click_embeddings = self.dropout(
            self.items(batch["click_items"], training=training), training=training
        )
        vector = self.history.sequence_states(
            click_embeddings, batch["click_mask"], batch["event_user"], batch["clicks_before"]
        )
        item_counts = None
        if leave_user_out is None:
            leave_user_out = training
        if self._counts is not None and leave_user_out and self.config.leave_user_out:
            item_counts = self._training_counts(batch)
        part_context = {
            part.name: part.sequence_context(batch) for part in self.state_parts if part.context_dim
        }

        def event_scores(columns: tf.Tensor) -> tf.Tensor:
            """`[N, D]` utilities under the state columns so far, zero-padded to the full
            width (so a part sees the state without itself and the parts after it)."""
            columns = tf.pad(columns, [[0, 0], [0, self.encoded_dim - tf.shape(columns)[1]]])
            return self.utilities(
                EncodedState(columns, part_context),
                batch["display"],
                training=training,
                mask=batch["display_mask"],
                item_counts=item_counts,
            )

        for part in self.state_parts:
            if part.vector_dim:
                vector = tf.concat(
                    [vector, part.sequence_vector(self, batch, vector, event_scores, training)],
                    axis=-1,
                )
        return event_scores(vector), EncodedState(vector, part_context)

    def event_utilities(
        self,
        batch: dict,
        training: bool = False,
        leave_user_out: bool | None = None,
        return_state: bool = False,
    ) -> tf.Tensor | tuple[tf.Tensor, EncodedState]:
        """`[N, D]` utilities of every displayed item, each from the state before its event.

        `batch` is a flat batch (`EventArrays.flat_batch`): `display [N, D]`,
        `display_mask [N, D]`, `clicked_pos [N]`, `event_mask [N]`, `event_user [N]`,
        `clicks_before [N]`, `click_items [B, C]`, `click_mask [B, C]`.
        `leave_user_out` (default: `training`): the batch is of training users, whose own
        events are taken out of the item statistics. With `return_state`, also the events'
        encoded states.
        """
        utilities, state = self._event_base(batch, training, leave_user_out)
        if self.posterior_item is not None:
            taste, _, effects = self._sequence_taste(utilities, batch, training)
            state = state.with_taste(taste)
            weights = tf.exp(self._posterior_log_weights(taste))[:, None, :]
            utilities += tf.reduce_sum(effects * weights, -1)
        if return_state:
            return utilities, state
        return utilities

    def _sequence_taste(
        self, utilities: tf.Tensor, batch: dict, training: bool
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Each event's user-type log-likelihoods from the user's earlier choices, each under
        the utilities of its own state without a type's effect (`utilities [N, D]`, as the
        step view's `TastePosterior` update): `taste [N, K]`, the types' choice
        log-probabilities `[N, K, D + 1]` and their effects `[N, D, K]`."""
        effects = self.posterior_effects(batch["display"], training)
        log_probs = self._type_log_probs(utilities, effects, batch["display_mask"])
        event = tf.cast(batch["event_mask"], log_probs.dtype)[:, None]
        chosen = tf.concat([_chosen(log_probs, batch["clicked_pos"]) * event, event], axis=-1)
        sums = user_prefix_sums(chosen, batch["event_user"], tf.shape(batch["click_items"])[0])
        return self._taste_part.evidence(sums), log_probs, effects

    def use_statistic_folds(self, user_fold: np.ndarray, fold_counts: np.ndarray) -> None:
        """Gives training batches out-of-fold item statistics.

        Args:
          user_fold: `[U]` the fold of each training user row (a batch's `user_row`).
          fold_counts: `[K, n_items, 2]` the counts of each fold's users
            (`ganrl.data.item_stats.fold_statistics`).
        """
        self._user_fold = tf.constant(user_fold, tf.int32)
        self._fold_counts = tf.constant(fold_counts, tf.float32)

    def _training_counts(self, batch: dict) -> tf.Tensor:
        """`[N, D, 2]` the item statistics a training event sees: those of the other folds,
        scaled up to the whole training split's size, or, without folds, the counts less the
        batch users' own events."""
        total = tf.gather(self._counts, batch["display"])
        if self._fold_counts is None:
            return total - context.own_event_counts(
                batch["display"], batch["display_mask"], batch["clicked_pos"], batch["event_user"]
            )
        folds = tf.cast(tf.shape(self._fold_counts)[0], tf.float32)
        fold = tf.gather(tf.gather(self._user_fold, batch["user_row"]), batch["event_user"])
        fold = tf.broadcast_to(fold[:, None], tf.shape(batch["display"]))
        own_fold = tf.gather_nd(self._fold_counts, tf.stack([fold, batch["display"]], -1))
        return (total - own_fold) * (folds / (folds - 1.0))

    def regularization_loss(self) -> tf.Tensor:
        """l2_reg * (sum of squared weights); 0 when l2_reg is 0."""
        if not self.config.l2_reg:
            return tf.constant(0.0)
        return self.config.l2_reg * tf.add_n(
            [tf.reduce_sum(tf.square(v)) for v in self.trainable_variables]
        )

    def call(
        self, batch: dict, training: bool = False, leave_user_out: bool | None = None
    ) -> tf.Tensor:
        """`[N, D + 1]` choice logits of every event of a flat batch."""
        if self.posterior_item is not None:
            # The types' softmaxes weighted by the posterior (as `choice_logits` with the
            # centred shifts, whose components are these, computed once).
            base, _ = self._event_base(batch, training, leave_user_out)
            taste, log_probs, _ = self._sequence_taste(base, batch, training)
            log_weights = self._posterior_log_weights(taste)
            mixed = tf.reduce_logsumexp(log_probs + log_weights[..., None], axis=-2)
            options = choice.option_mask(batch["display_mask"], self.has_no_click)
            return tf.where(options, mixed, tf.cast(choice.MASKED_LOGIT, mixed.dtype))
        utilities, state = self.event_utilities(
            batch, training=training, leave_user_out=leave_user_out, return_state=True
        )
        shifts = self.mixture_shifts(state, batch["display"], training=training)
        return self.choice_logits(
            utilities, batch["display_mask"], shifts, self.mixture_log_weights(state)
        )


def _chosen(log_probs: tf.Tensor, clicked_pos: tf.Tensor) -> tf.Tensor:
    """`[N, K]` the log-probabilities `[N, K, D + 1]` of each event's chosen option
    (`clicked_pos [N]`, -1: the no-click option, the last)."""
    chosen = tf.where(clicked_pos >= 0, clicked_pos, tf.shape(log_probs)[-1] - 1)
    return tf.gather(tf.linalg.matrix_transpose(log_probs), chosen, batch_dims=1)


def checkpoint_variables(**parts: Any) -> dict[str, tf.Variable]:
    """Named variables of models and optimisers, for `tf.train.Checkpoint(**...)`.

    Keras 3 layers kept in Python lists are invisible to `tf.train.Checkpoint`'s object graph,
    so checkpoints name every variable explicitly: `{part}_{index}` in the (deterministic)
    order of `model.weights` or `optimizer.variables`. Optimisers must be built first.
    """
    out = {}
    for part, obj in parts.items():
        variables = obj.weights if isinstance(obj, keras.Model) else obj.variables
        for index, var in enumerate(variables):
            out[f"{part}_{index:03d}"] = var
    return out


def random_state_variables(**models: keras.Model) -> dict[str, tf.Variable]:
    """Named random-stream states of models, for a resumable `tf.train.Checkpoint`.

    Dropout and identity dropout draw from Keras `SeedGenerator`s, whose states are variables
    in `model.variables` but not in `model.weights` (so not in `checkpoint_variables`, and
    the best-by-validation checkpoints stay weights only). Saving them lets a resumed run
    draw the masks an uninterrupted run would have drawn.
    """
    out = {}
    for part, model in models.items():
        weights = {id(w) for w in model.weights}
        states = [v for v in model.variables if id(v) not in weights]
        for index, var in enumerate(states):
            out[f"{part}_random_{index:03d}"] = var
    return out
