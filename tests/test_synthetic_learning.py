"""A learning test against a known model: on the synthetic generator's data, the user model
comes close to the reachable (Bayes-optimal given the history) prec@1."""

import pytest

from ganrl.data.dataset import SplitData
from ganrl.data.synthetic import SyntheticConfig, make_synthetic, world_settings
from ganrl.train import user_model as trainer
from ganrl.user_model.model import MODEL_PRESETS, ModelConfig

# The generator before worlds had names (mean history, uniform displays, no-click option),
# with the true item vectors given as features: a test of the choice model, not of learning
# item structure from ids.
# 3,000 users (24,000 display sets), 600 training iterations of 100 users: measured test
# prec@1 0.581 against the limit's 0.602 (chance 0.204). With this little data the gap is
# larger than at 40,000 users (README), and one run's noise (about 5,500 test clicks) is
# about 0.7 points.
MARGIN = 0.05


@pytest.mark.slow
def test_user_model_approaches_the_bayes_limit_on_synthetic_data(tmp_path):
    world = SyntheticConfig(
        users=3000,
        posterior_samples=500,
        true_vectors_as_features=True,
        **world_settings("mean_uniform_noclick"),
    )
    converted, truth = make_synthetic(str(tmp_path), "syn", seed=0, config=world)
    model = ModelConfig(
        user_model="LSTM",
        rnn_hidden_dim=32,
        **{**MODEL_PRESETS["generalising"], "choice_history": True},
    )
    config = trainer.TrainConfig(
        dataset="syn",
        data_folder=str(tmp_path),
        save_dir=str(tmp_path / "run"),
        learning_rate=0.002,
        batch_size=100,
        num_itrs=600,
        eval_every=100,
        seed=0,
        item_features="generalising",
        model=model,
    )
    results = trainer.UserModelRunner(
        config, SplitData.from_dataset(converted.dataset), progress=lambda _: None
    ).run()
    bayes, chance = truth["test_bayes_prec1"], truth["test_chance_prec1"]
    assert bayes > chance + 0.3  # the limit is far from chance: the test can fail
    assert results["test"]["prec1"] > bayes - MARGIN, (results["test"], bayes)
