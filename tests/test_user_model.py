"""User model: history encoders (sequence and step views) and the training runner."""

import csv
import dataclasses
import json
import os
import re
import signal

import numpy as np
import pytest
import tensorflow as tf

from ganrl.data.dataset import EventArrays, ItemFeatures, SplitData
from ganrl.train import interrupt
from ganrl.train import user_model as trainer
from ganrl.user_model import load_user_model
from ganrl.user_model.model import ModelConfig, UserModel
from tests.tiny_data import tiny_dataset

ENCODERS = ["PW", "LSTM"]
# Each encoder as the paper has it and with the options of ids-only learning: linear PW,
# the LSTM's skip path, item biases and a utility without an MLP.
VARIANTS = ["PW", "LSTM", "PW-linear", "LSTM-skip"]
_VARIANT_OPTIONS = {
    "PW-linear": {"pw_activation": "linear", "item_bias": True, "dims": ""},
    "LSTM-skip": {"rnn_skip": 2, "item_bias": True, "dims": ""},
}


def _model(encoder, n_items=8, has_no_click=False):
    tf.keras.utils.set_random_seed(0)
    options = {"dims": "8-8", **_VARIANT_OPTIONS.get(encoder, {})}
    config = ModelConfig(
        user_model=encoder.split("-")[0],
        item_dim=4,
        rnn_hidden_dim=5,
        pw_dim=2,
        pw_band_size=3,
        **options,
    )
    return UserModel(ItemFeatures(n_items), config, has_no_click)


def _batch(behavior, n_items=8, max_display=3):
    events = EventArrays.from_behavior(behavior, None, max_display, n_items)
    return trainer.to_tensors(events.flat_batch(np.arange(events.n_users)))


@pytest.mark.parametrize("encoder", VARIANTS)
def test_state_at_t_ignores_clicks_at_t_and_later(encoder):
    model = _model(encoder)
    base = [[0, [[1, 2], [3, 4], [5, 6], [1, 7]], [1, 3, 5, 7]]]
    changed = [[0, [[1, 2], [3, 4], [5, 6], [1, 7]], [1, 4, 6, 1]]]  # clicks from t=1 on
    u_base = model.event_utilities(_batch(base)).numpy()
    u_changed = model.event_utilities(_batch(changed)).numpy()
    # Events 0 and 1 see only the click at t=0, which did not change.
    np.testing.assert_allclose(u_base[:2], u_changed[:2], atol=1e-6)
    # Event 2 sees the changed click at t=1.
    assert not np.allclose(u_base[2], u_changed[2])


@pytest.mark.parametrize("encoder", VARIANTS)
def test_no_click_events_do_not_enter_the_history(encoder):
    model = _model(encoder)
    with_gap = [[0, [[1, 2], [3, 4], [5, 6]], [1, -1, 5]]]
    without = [[0, [[1, 2], [5, 6]], [1, 5]]]
    u_gap = model.event_utilities(_batch(with_gap)).numpy()
    u_without = model.event_utilities(_batch(without)).numpy()
    np.testing.assert_allclose(u_gap[2], u_without[1], atol=1e-6)


@pytest.mark.parametrize("encoder", VARIANTS)
def test_sequence_and_step_views_agree(encoder):
    model = _model(encoder)
    behavior = [[0, [[1, 2], [3, 4], [5, 6], [0, 7]], [2, -1, 5, 7]], [1, [[2, 3], [4, 5]], [3, 4]]]
    sequence = model.event_utilities(_batch(behavior)).numpy()
    # Replay user 0 step by step through the simulator's view.
    state = model.initial_state(1)
    for t, (display, click) in enumerate(zip(behavior[0][1], behavior[0][2])):
        u = model.utilities(model.state_vector(state), tf.constant([display])).numpy()[0]
        np.testing.assert_allclose(u, sequence[t, :2], atol=1e-5)
        state = model.update_state(state, tf.constant([max(click, 0)]), tf.constant([click >= 0]))


def _config(tmp_path, **overrides):
    model = ModelConfig(
        user_model=overrides.pop("user_model", "PW"),
        dims="16-8",
        item_dim=8,
        rnn_hidden_dim=8,
        pw_dim=2,
        pw_band_size=3,
    )
    values = dict(
        dataset="tiny",
        data_folder=str(tmp_path / "data"),
        save_dir=str(tmp_path / "run"),
        learning_rate=0.05,
        batch_size=6,
        num_itrs=6,
        eval_every=2,
        seed=3,
        checkpoint_secs=0,
        model=model,
    )
    values.update(overrides)
    return trainer.TrainConfig(**values)


def _quiet(_):
    pass


def _runner(config, dataset, progress=_quiet):
    return trainer.UserModelRunner(config, SplitData.from_dataset(dataset), progress=progress)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_runner_learns_writes_run_folder_and_loads_back(tmp_path, encoder):
    dataset = tiny_dataset(n_users=40)
    config = _config(tmp_path, user_model=encoder, num_itrs=40, eval_every=10)
    results = _runner(config, dataset).run()
    # The rule "click the lowest id" is learnable: far above chance (about 0.35 here).
    assert results["test"]["prec1"] > 0.8
    run = tmp_path / "run"
    for name in ("config.json", "model.json", "curves.csv", "results.json", "item_features.pkl"):
        assert (run / name).exists(), name
    rows = (run / "curves.csv").read_text().strip().splitlines()
    assert rows[0].split(",") == list(trainer.CURVE_FIELDS)
    assert [int(r.split(",")[0]) for r in rows[1:]] == [0, 10, 20, 30, 40]
    loaded = load_user_model(str(run))
    # The loaded best-loss weights reproduce that checkpoint's validation loss exactly.
    vali = dataset.event_arrays("vali", max_display=4)
    assert trainer.evaluate(loaded.behavior, vali)["loss"] == pytest.approx(
        results["vali"]["loss"], rel=1e-6
    )
    # Per event (small batches, so users span several): the same loss, each event's index
    # within its user.
    per_event = trainer.event_predictions(loaded.behavior, vali, batch_users=3)
    assert per_event["nll"].mean() == pytest.approx(results["vali"]["loss"], rel=1e-5)
    expected = np.concatenate([np.arange(n) for n in np.diff(vali.event_offsets)])
    assert expected.max() > 0
    np.testing.assert_array_equal(per_event["step"], expected)
    probs = loaded.score(history=[3], display=[5, 1, 9])
    assert probs.shape == (4,) and probs[-1] == pytest.approx(0.0, abs=1e-6)
    assert np.argmax(probs[:3]) == 1  # item 1 is the lowest id
    n = loaded.n_items
    for history, display, message in [
        ([3], [], r"display: expected at least one item id"),
        ([3], [5, n], rf"display: item id {n}; expected integer item ids 0\.\.{n - 1}"),
        ([-1], [5], r"history: item id -1; expected integer item ids"),
        ([3], [2.5], r"display: item id 2\.5; expected integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            loaded.score(history=history, display=display)
    # A finished run is not retrained.
    again = _runner(config, dataset).run()
    assert again == json.loads((run / "results.json").read_text())


def test_runner_keeps_its_config_and_prints_no_nan(tmp_path):
    dataset = tiny_dataset(n_users=20)  # display sets of 4 items
    config = _config(tmp_path, num_itrs=2, eval_every=2)
    config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, history_display_width=2)
    )
    lines = []
    runner = _runner(config, dataset, progress=lines.append)
    # The step view must remember a whole display set: the model is built 4 wide, the
    # config it was given is left as it was.
    assert runner.config is config and config.model.history_display_width == 2
    assert runner.model_config.history_display_width == 4
    assert runner.reward.config.history_display_width == 4
    results = runner.run()
    # The run folder records the model as built, and a rerun with the same config matches it.
    for name in ("model.json", "config.json"):
        assert (
            json.loads((tmp_path / "run" / name).read_text())["model"]["history_display_width"] == 4
        )
    assert _runner(config, dataset).run() == results
    # The first line comes before any training: its training figures are not measured yet.
    first = next(line for line in lines if "itr" in line)
    assert re.search(r"itr +0 +train_loss - .* - events/s$", first), first
    assert not any("nan" in line for line in lines), lines


def _curve_iterations(run):
    rows = (run / "curves.csv").read_text().strip().splitlines()[1:]
    return [int(r.split(",")[0]) for r in rows]


def test_length_in_epochs_and_early_stopping(tmp_path):
    dataset = tiny_dataset(n_users=40)  # 20 training users
    # num_itrs 0: 3 passes over the 20 training users in batches of 6 are ceil(60 / 6) = 10.
    config = _config(tmp_path / "a", num_itrs=0, num_epochs=3, eval_every=5)
    assert config.iterations(20) == 10
    _runner(config, dataset).run()
    assert _curve_iterations(tmp_path / "a" / "run") == [0, 5, 10]
    # Early stopping: at a learning rate this high the tiny set is overfitted within a few
    # steps, so the validation loss stops improving well before 300 iterations; the run then
    # stops exactly `early_stop` evaluations after its best one.
    config = _config(tmp_path / "b", num_itrs=300, eval_every=2, early_stop=3, learning_rate=0.2)
    results = _runner(config, dataset).run()
    best = results["best_iteration"]["loss"]
    assert _curve_iterations(tmp_path / "b" / "run")[-1] == best + 3 * 2 < 300


def test_learning_rate_plateau_goes_back_to_the_best_weights_with_a_smaller_step(tmp_path):
    # At this learning rate the tiny set is overfitted within a few steps: the validation loss
    # stops improving, and each reduction comes `lr_plateau` evaluations after the best or
    # the last reduction, whichever is later, at most `lr_plateau_times` of them.
    dataset = tiny_dataset(n_users=40)
    config = _config(
        tmp_path,
        num_itrs=300,
        eval_every=2,
        early_stop=6,
        learning_rate=0.2,
        lr_plateau=2,
        lr_plateau_factor=0.5,
        lr_plateau_times=2,
    )
    lines = []
    runner = _runner(config, dataset, progress=lines.append)
    best_weights = {}
    reduce = runner._reduce_learning_rate

    def recording(iteration):
        best_weights[iteration] = runner._best_loss_iteration()
        reduce(iteration)
        # Training goes on from the best-loss weights of that moment.
        saved = [v.numpy() for v in runner.reward.weights]
        runner.weights.restore(runner.best_managers["loss"].latest_checkpoint)
        for a, v in zip(saved, runner.reward.weights):
            np.testing.assert_array_equal(a, v.numpy())

    runner._reduce_learning_rate = recording
    results = runner.run()
    reductions = sorted(best_weights)
    assert 1 <= len(reductions) <= 2
    previous = 0
    for at in reductions:
        assert at == max(best_weights[at], previous) + 2 * 2
        previous = at
    expected = 0.2 * 0.5 ** len(reductions)
    assert float(runner.reward_opt.learning_rate.numpy()) == pytest.approx(expected)
    assert sum("back to the best-loss weights" in line for line in lines) == len(reductions)
    # Early stopping still counts from the best alone.
    best = results["best_iteration"]["loss"]
    assert _curve_iterations(tmp_path / "run")[-1] == best + 6 * 2


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    tf.config.experimental.enable_op_determinism()
    dataset = tiny_dataset()
    full = _runner(_config(tmp_path / "a"), dataset)
    full.run()

    class Interrupt(Exception):
        pass

    interrupted = _runner(_config(tmp_path / "b"), dataset)
    calls = {"n": 0}
    original = interrupted.window_fn

    def window_then_die(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Interrupt
        return original(*args)

    interrupted.window_fn = window_then_die
    with pytest.raises(Interrupt):
        interrupted.run()
    assert not (tmp_path / "b" / "run" / "results.json").exists()
    lines = []
    resumed = _runner(_config(tmp_path / "b"), dataset, progress=lines.append)
    resumed.run()
    assert any("resuming" in line and "iteration 2" in line for line in lines)
    for a, b in zip(full.reward.weights, resumed.reward.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    curves = (tmp_path / "b" / "run" / "curves.csv").read_text().strip().splitlines()
    assert [int(r.split(",")[0]) for r in curves[1:]] == [0, 2, 4, 6]
    # The timing covers the segment before the interruption too.
    with open(tmp_path / "a" / "run" / "results.json") as f:
        full_results = json.load(f)
    with open(tmp_path / "b" / "run" / "results.json") as f:
        resumed_results = json.load(f)
    assert resumed_results["train_events"] == full_results["train_events"] > 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_run_stopped_by_a_signal_saves_and_resumes_as_uninterrupted(tmp_path, signum):
    # The first Ctrl-C or SIGTERM stops the run at its next evaluation with a checkpoint
    # (checkpoint_secs is large: without the signal nothing would be saved before the end),
    # and the rerun resumes there to the uninterrupted run's figures.
    tf.config.experimental.enable_op_determinism()
    handler_before = signal.getsignal(signum)
    dataset = tiny_dataset()
    full = _runner(_config(tmp_path / "a", checkpoint_secs=3600.0), dataset)
    full.run()

    def signal_at_iteration_2(line):
        if "itr     2" in line:
            os.kill(os.getpid(), signum)

    config = _config(tmp_path / "b", checkpoint_secs=3600.0)
    with pytest.raises(interrupt.Interrupted, match=r"stopped at iteration 2 on a signal"):
        _runner(config, dataset, progress=signal_at_iteration_2).run()
    assert not (tmp_path / "b" / "run" / "results.json").exists()
    assert signal.getsignal(signum) == handler_before
    lines = []
    _runner(config, dataset, progress=lines.append).run()
    assert any("resuming" in line and "iteration 2" in line for line in lines)
    assert _figures(tmp_path / "b" / "run") == _figures(tmp_path / "a" / "run")


def _figures(run_dir):
    """results.json's test figures and curves.csv without its timing column."""
    with open(os.path.join(run_dir, "results.json")) as f:
        test = json.load(f)["test"]
    with open(os.path.join(run_dir, "curves.csv"), newline="") as f:
        curves = [
            {k: v for k, v in row.items() if k != "events_per_second"} for row in csv.DictReader(f)
        ]
    return test, curves


@pytest.mark.parametrize(
    "regularizer, ema, plateau",
    [("entropy", 0.0, 0), ("L2", 0.0, 0), ("entropy", 0.5, 0), ("entropy", 0.0, 1)],
)
def test_killed_run_with_dropout_resumes_to_the_uninterrupted_figures(
    tmp_path, regularizer, ema, plateau
):
    # Identity dropout and dropout draw fresh masks every step: a resumed run must continue
    # their random streams where the checkpoint left them, not restart them.
    dataset = tiny_dataset()
    model = ModelConfig(
        user_model="PW",
        dims="16-8",
        item_dim=8,
        pw_dim=2,
        pw_band_size=3,
        dropout=0.3,
        id_dropout=0.5,
    )
    # With `plateau`, a high learning rate so the reductions come before and after the kill.
    extra = dict(lr_plateau=plateau, learning_rate=0.5, num_itrs=10) if plateau else {}
    full = _config(tmp_path / "full", regularizer=regularizer, model=model, ema=ema, **extra)
    _runner(full, dataset).run()

    class Killed(Exception):
        pass

    def die_at_4(line):  # after validating iteration 4, before its checkpoint
        if re.search(r"itr\s+4 ", line):
            raise Killed

    killed = _config(tmp_path / "killed", regularizer=regularizer, model=model, ema=ema, **extra)
    with pytest.raises(Killed):
        _runner(killed, dataset, progress=die_at_4).run()
    lines = []
    _runner(killed, dataset, progress=lines.append).run()
    assert any("resuming" in line and "iteration 2" in line for line in lines)
    full_test, full_curves = _figures(full.save_dir)
    test, curves = _figures(killed.save_dir)
    assert [int(row["iteration"]) for row in curves] == list(range(0, killed.num_itrs + 1, 2))
    assert curves == full_curves
    assert test == full_test


def test_moving_average_is_what_is_validated_and_training_goes_on_from_the_weights(tmp_path):
    """With `ema`, validation reads m * previous average + (1 - m) * weights (the first
    average the weights themselves), and training continues from its own weights."""
    dataset = tiny_dataset()
    config = _config(tmp_path, ema=0.5, eval_every=1, steps_per_call=1, num_itrs=3)
    runner = _runner(config, dataset)
    raw, averages = [], []
    validate = runner._validate

    def recording(iteration, *args):
        weights = [v.numpy() for v in runner.reward.trainable_variables]
        if iteration:
            raw.append(weights)
            previous = averages[-1] if averages else weights
            averages.append([0.5 * a + 0.5 * w for a, w in zip(previous, weights)])
        validate(iteration, *args)
        after = [v.numpy() for v in runner.reward.trainable_variables]
        for a, b in zip(weights, after):
            np.testing.assert_array_equal(a, b)  # the weights are back after validation

    runner._validate = recording
    runner.run()
    assert len(raw) == 3 and not np.allclose(raw[-1][0], averages[-1][0])
    for variable, value in zip(runner.reward.trainable_variables, averages[-1]):
        variable.assign(value)
    vali = dataset.event_arrays("vali", max_display=4)
    with open(tmp_path / "run" / "curves.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last["vali_loss"]) == pytest.approx(
        trainer.evaluate(runner.behavior, vali)["loss"], rel=1e-5
    )
    with pytest.raises(ValueError, match=r"ema=1.0: expected a number in \[0, 1\)"):
        _config(tmp_path, ema=1.0)


def test_nan_loss_stops_training_and_keeps_best_checkpoints(tmp_path):
    dataset = tiny_dataset()
    runner = _runner(_config(tmp_path), dataset)
    original = runner.window_fn
    calls = {"n": 0}

    def poisoned(*args):
        calls["n"] += 1
        losses = original(*args).numpy()
        if calls["n"] == 2:
            losses[1] = np.nan
        return tf.constant(losses)

    runner.window_fn = poisoned
    with pytest.raises(trainer.TrainingDivergedError, match="iteration 4"):
        runner.run()
    run = tmp_path / "run"
    assert not (run / "results.json").exists()
    assert tf.train.latest_checkpoint(str(run / "checkpoints" / "best_loss")) is not None


def test_no_click_option_is_learned_only_from_no_click_data(tmp_path):
    always = _runner(_config(tmp_path / "a"), tiny_dataset())
    assert always.reward.no_click_logit is None
    some = _runner(_config(tmp_path / "b"), tiny_dataset(no_click_every=3))
    some.run()
    # A third of the events are no-clicks: the learned no-click logit moved off its start.
    assert some.reward.no_click_logit is not None
    assert abs(float(some.reward.no_click_logit.numpy())) > 1e-3


def test_no_click_events_outside_the_training_users_get_the_option_too(tmp_path):
    # Only a test user has a no-click event: a model without the option would give it
    # probability 0 (a test loss of about 1e9); whether the log has no-clicks is a property
    # of the log, read from every split.
    dataset = tiny_dataset()
    test_user = dataset.split[2][0]
    dataset.behavior[test_user][2][0] = -1
    runner = _runner(_config(tmp_path), dataset)
    assert runner.reward.no_click_logit is not None
    results = runner.run()
    assert results["test"]["loss"] < 10


def test_adversarial_fine_tuning_starts_from_pretrained_and_reports_phi(tmp_path):
    dataset = tiny_dataset(n_users=40)
    pre = _config(tmp_path / "pre", num_itrs=30, eval_every=10)
    pre_results = _runner(pre, dataset).run()
    adv = _config(
        tmp_path / "adv",
        regularizer="L2",
        pretrain_dir=pre.save_dir,
        learning_rate=0.005,
        num_itrs=10,
        eval_every=5,
    )
    runner = _runner(adv, dataset)
    lines = []
    runner.progress = lines.append
    results = runner.run()
    assert any("starting r and phi" in line for line in lines)
    # Iteration 0 evaluates the pretrained weights, so the best-by-validation phi is no worse
    # on validation than the start.
    assert results["vali"]["prec1"] >= pre_results["vali"]["prec1"] - 1e-9
    loaded = load_user_model(adv.save_dir)
    assert loaded.behavior is not loaded.reward


def test_adversarial_step_reads_the_reward_relative_to_its_no_click_utility():
    # Utilities are defined up to a shift and the no-click option is the zero point: a
    # reward whose item utilities and no-click utility are both 3 higher is the same reward,
    # and the adversarial step must treat it so, training the no-click utility with the rest.
    behavior_log = [[0, [[1, 2], [3, 4], [5, 6]], [1, -1, 5]], [1, [[2, 3], [4, 5]], [-1, 4]]]
    batch = _batch(behavior_log)
    events = float(tf.reduce_sum(tf.cast(batch["event_mask"], tf.float32)))  # 5
    learning_rate, shift = 0.1, 3.0
    runs = []
    for offset in (0.0, shift):
        reward = _model("PW-linear", has_no_click=True)  # utility: bilinear + item bias
        behavior = _model("PW-linear", has_no_click=True)
        reward.no_click_logit.assign(0.5 + offset)
        reward.item_bias.embeddings.assign_add(tf.fill(reward.item_bias.embeddings.shape, offset))
        step = trainer.make_l2_step(
            reward,
            behavior,
            tf.keras.optimizers.SGD(learning_rate),
            tf.keras.optimizers.SGD(learning_rate),
        )
        step(batch, tf.constant(events))
        runs.append((reward, behavior))
    (reward, behavior), (shifted, shifted_behavior) = runs
    for a, b in zip(behavior.weights, shifted_behavior.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    relative = [
        m.relative_to_no_click(m.event_utilities(batch, leave_user_out=True)).numpy()
        for m in (reward, shifted)
    ]
    np.testing.assert_allclose(relative[0], relative[1], atol=1e-4)
    # The reward's side, sum_t [sum_a phi_t(a) (u_a - c) - (u_true - c, or 0 for no click)],
    # has derivative sum_t (phi_t(no click) - [no click at t]) in the no-click utility c,
    # with phi the behaviour after its update: one SGD step moves c by -lr / 5 times that.
    phi = tf.nn.softmax(behavior(batch, training=False, leave_user_out=True)).numpy()[:, -1]
    no_click = (batch["clicked_pos"].numpy() < 0).astype(np.float32)
    expected = 0.5 - learning_rate / events * (phi - no_click).sum()
    assert float(reward.no_click_logit.numpy()) == pytest.approx(expected, abs=1e-5)
    assert expected != pytest.approx(0.5, abs=1e-3)


def test_adversarial_runs_learned_reward_is_the_utility_less_its_trained_no_click(tmp_path):
    from ganrl.simulator.simulator import Simulator, SimulatorConfig

    dataset = tiny_dataset(n_users=40, no_click_every=3)
    pre = _config(tmp_path / "pre", num_itrs=6, eval_every=6)
    _runner(pre, dataset).run()
    start = float(load_user_model(pre.save_dir, "prec1").reward.no_click_logit.numpy())
    adv = _config(tmp_path / "adv", regularizer="L2", pretrain_dir=pre.save_dir, num_itrs=6)
    _runner(adv, dataset).run()
    model = load_user_model(adv.save_dir, "latest")
    no_click = float(model.reward.no_click_logit.numpy())
    assert abs(no_click - start) > 1e-4  # trained, not left at the pre-training's value
    items = tf.constant([[0, 1, 2]])
    # With no-click data 'auto' pays the click; '--reward=learned' the utility less no click.
    assert Simulator(model, SimulatorConfig(k=3, leave=False)).reward_kind == "click"
    learned = Simulator(model, SimulatorConfig(k=3, reward="learned", leave=False))
    learned.reset(1)
    utilities = learned.reward.utilities(learned._state[1], items).numpy()[0]
    np.testing.assert_allclose(
        learned.option_rewards(items).numpy()[0], [*(utilities - no_click), 0.0], atol=1e-6
    )
    # A run folder of an adversarial run from before the reward's no-click utility was
    # trained (no "reward_zero" in model.json) paid no click 0 against the utilities.
    meta_path = os.path.join(adv.save_dir, "model.json")
    with open(meta_path) as f:
        meta = json.load(f)
    assert meta.pop("reward_zero") == "no_click"
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    older = load_user_model(adv.save_dir, "latest")
    assert float(older.reward.no_click_logit.numpy()) == 0.0
    assert float(older.behavior.no_click_logit.numpy()) == float(
        model.behavior.no_click_logit.numpy()
    )


def test_fine_tuning_keeps_the_start_unless_validation_gains_beyond_the_margin(tmp_path):
    dataset = tiny_dataset(n_users=40)
    pre = _config(tmp_path / "pre", num_itrs=2, eval_every=2)  # short: room to gain
    pre_results = _runner(pre, dataset).run()
    runs = {}
    for margin in (0.0, 1e6):
        adv = _config(
            tmp_path / f"adv{margin}",
            regularizer="L2",
            pretrain_dir=pre.save_dir,
            learning_rate=0.005,
            num_itrs=20,
            eval_every=5,
            start_margin=margin,
        )
        runs[margin] = _runner(adv, dataset).run()
    assert runs[0.0]["best_iteration"]["prec1"] > 0  # fine-tuning gained on validation
    # An unreachable margin: prec@1 and prec@2 come from the start, the pre-trained
    # best-prec@1 weights, whose test prec@1 the pre-training reported.
    assert runs[1e6]["best_iteration"]["prec1"] == 0
    assert runs[1e6]["best_iteration"]["prec2"] == 0
    assert runs[1e6]["test"]["prec1"] == pre_results["test"]["prec1"]
    # The loss has no margin, and with none a fine-tuned checkpoint may replace the start.
    assert runs[1e6]["best_iteration"]["loss"] == runs[0.0]["best_iteration"]["loss"]


def test_run_script_help_lists_original_flags(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "experiment_user_model/main_gan_user_model.py", "--helpfull"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    for flag in (
        "data_folder",
        "dataset",
        "save_dir",
        "resplit",
        "learning_rate",
        "batch_size",
        "num_itrs",
        "rnn_hidden_dim",
        "pw_dim",
        "pw_band_size",
        "dims",
        "user_model",
    ):
        assert re.search(rf"--(\[no\])?{flag}:", out.stdout), flag


def test_fine_tuning_accepts_a_pretraining_that_predates_an_option(tmp_path):
    dataset = tiny_dataset(n_users=20)
    pre = _config(tmp_path / "pre", num_itrs=2, eval_every=2)
    _runner(pre, dataset).run()
    config_path = os.path.join(pre.save_dir, "config.json")
    with open(config_path) as f:
        saved = json.load(f)
    del saved["model"]["choice_history"]  # as written before the option existed
    with open(config_path, "w") as f:
        json.dump(saved, f)
    adv = _config(
        tmp_path / "adv", regularizer="L2", pretrain_dir=pre.save_dir, num_itrs=2, eval_every=2
    )
    assert "test" in _runner(adv, dataset).run()
    # An option the pre-training did use still has to match.
    saved["model"]["choice_history"] = True
    with open(config_path, "w") as f:
        json.dump(saved, f)
    other = _config(
        tmp_path / "other", regularizer="L2", pretrain_dir=pre.save_dir, num_itrs=2, eval_every=2
    )
    with pytest.raises(ValueError, match="choice_history"):
        _runner(other, dataset).run()


def test_runner_fits_a_share_of_the_training_users_only(tmp_path):
    dataset = tiny_dataset(n_users=40)
    full = SplitData.from_dataset(dataset)
    runner = _runner(_config(tmp_path, train_share=0.5), dataset)
    kept = runner.splits["train"].user_ids.tolist()
    assert kept == full.with_training_share(0.5, 3).splits["train"].user_ids.tolist()
    assert len(kept) == round(0.5 * full.splits["train"].n_users)
    assert runner.splits["vali"].n_users == full.splits["vali"].n_users
    assert _runner(_config(tmp_path), dataset).splits["train"].n_users == len(
        dataset.users("train")
    )


def test_a_run_killed_after_a_newer_best_than_its_checkpoint_resumes_as_uninterrupted(tmp_path):
    # The resumable checkpoint is saved at most every `checkpoint_secs`, the best ones at
    # every improvement: a kill can leave a best checkpoint newer than the resumable one.
    # Here the run reduces the learning rate at 12 (back to the best of 10), improves at 14,
    # and is killed there with its last resumable checkpoint at 10. Resumed from 10, it must
    # still reduce at 12 from the weights of 10, not read the best of 14 as already reached.
    dataset = tiny_dataset()
    model = ModelConfig(user_model="PW", dims="16-8", item_dim=8, pw_dim=2, pw_band_size=3)
    extra = dict(model=model, lr_plateau=1, lr_plateau_times=3, learning_rate=0.5, num_itrs=20)
    full = _config(tmp_path / "full", **extra)
    _runner(full, dataset).run()

    class Killed(Exception):
        pass

    def die_at_14(line):
        if re.search(r"itr\s+14 ", line):
            raise Killed

    killed = _config(tmp_path / "killed", **extra)
    runner = _runner(killed, dataset, progress=die_at_14)
    save = runner.latest.save
    runner.latest.save = lambda checkpoint_number: (
        save(checkpoint_number=checkpoint_number) if checkpoint_number <= 10 else None
    )
    with pytest.raises(Killed):
        runner.run()
    assert runner._best_loss_iteration() == 14  # the premise: a best newer than the latest
    lines = []
    _runner(killed, dataset, progress=lines.append).run()
    assert any("resuming" in line and "iteration 10" in line for line in lines)
    assert any("iteration 12: back to the best-loss weights of iteration 10" in x for x in lines)
    assert _figures(killed.save_dir) == _figures(full.save_dir)
    for metric in ("loss", "prec1", "prec2"):  # one checkpoint each, as before
        folder = tmp_path / "killed" / "run" / "checkpoints" / f"best_{metric}"
        assert len(list(folder.glob("*.index"))) == 1
