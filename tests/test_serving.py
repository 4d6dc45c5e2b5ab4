"""Batched serving (`recommend` for many users) and a read-only `load_policy`."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ganrl.policy.export import load_policy, padded_histories, recommend
from ganrl.policy.runner import PolicyConfig, PolicyRunner
from tests.policy_helpers import tiny_policy_config
from tests.test_policy import user_model_dir  # noqa: F401  (a fixture)


def _listing(folder: str) -> dict[str, float]:
    """Every file and folder under `folder` with its mtime."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = os.stat(path).st_mtime_ns
    return out


@pytest.fixture(scope="module")
def policy_dir(user_model_dir, tmp_path_factory):  # noqa: F811
    folder = str(tmp_path_factory.mktemp("policy") / "run")
    config = tiny_policy_config(
        user_model_dir, folder, policies=("cdqn", "gan_greedy"), k=3, history_length=4
    )
    PolicyRunner(config, progress=lambda _: None).run()
    return folder


def test_padded_histories_trim_pad_and_mask():
    h = np.array([[5, 4, 3, 2, 1], [7, -1, -1, -1, -1], [9, 8, 6, 0, 0]])
    # Width 3 keeps the 3 most recent; row 3 has 2 valid clicks by `lengths`.
    out = padded_histories(h, 3, lengths=[5, 1, 2])
    assert out.tolist() == [[5, 4, 3], [7, -1, -1], [9, 8, -1]]
    with pytest.raises(ValueError, match="histories: expected .* padded with -1 to one width"):
        padded_histories([[5, 4], [7]], 3)  # ragged rows
    mask = np.array([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool)
    assert padded_histories(h, 6, mask=mask).tolist() == [
        [5, 4, -1, -1, -1, -1],
        [7, -1, -1, -1, -1, -1],
        [9, 8, 6, 0, 0, -1],
    ]


@pytest.mark.parametrize("name", ["cdqn", "gan_greedy"])
def test_batched_recommend_matches_one_user_at_a_time(policy_dir, name):
    before = _listing(policy_dir)
    policy = load_policy(policy_dir, name)
    assert policy.history_length == 4  # from the run's config, not the default 10
    assert _listing(policy_dir) == before  # nothing written or touched
    rng = np.random.default_rng(0)
    users, n_items = 6, 12
    histories = np.full((users, 7), -1)
    for u in range(users):  # user u clicked u items (0..5), most recent first
        histories[u, :u] = rng.choice(n_items, u, replace=False)
    candidates = rng.permuted(np.tile(np.arange(n_items), (users, 1)), axis=1)[:, :8]
    slates = recommend(policy, histories, candidates)
    assert slates.shape == (users, 3)
    for u in range(users):
        assert len(set(slates[u])) == 3 and set(slates[u]) <= set(candidates[u])
        # The one-user form takes the history oldest first.
        oldest_first = [int(i) for i in histories[u][::-1] if i >= 0]
        assert (
            recommend(policy, history=oldest_first, candidates=candidates[u].tolist())
            == slates[u].tolist()
        )
    # A shared [C] candidate list is every user's; a smaller k keeps the first picks.
    shared = recommend(policy, histories, np.arange(n_items))
    each = recommend(policy, histories, np.tile(np.arange(n_items), (users, 1)))
    np.testing.assert_array_equal(shared, each)
    np.testing.assert_array_equal(
        recommend(policy, histories, np.arange(n_items), k=2), shared[:, :2]
    )
    with pytest.raises(ValueError, match="k=4"):
        recommend(policy, histories, np.arange(n_items), k=4)
    # Recent display sets: for this user model, which reads no display sets, events of the
    # clicks alone give the slates of the clicks alone; a malformed array is refused by name.
    clicks_alone = np.full((users, 7, 4), -1)
    clicks_alone[:, :, 0] = clicks_alone[:, :, 1] = histories
    np.testing.assert_array_equal(
        recommend(policy, histories, candidates, events=clicks_alone), slates
    )
    with pytest.raises(ValueError, match="events: expected"):
        recommend(policy, histories, candidates, events=clicks_alone[:, :, :1])
    assert _listing(policy_dir) == before


@pytest.mark.parametrize("name", ["cdqn", "gan_greedy"])
def test_recommend_refuses_ids_outside_the_catalogue_and_repeated_candidates(policy_dir, name):
    policy = load_policy(policy_dir, name)
    n = policy.n_items
    history = [[2, -1]]
    for bad, match in [
        ([3, 7, 8, 9, n], rf"candidates: item id {n} at index \[0, 4\]; expected an item id 0\.\."),
        ([3, 7, 8, 9, -1], r"candidates: item id -1 at index \[0, 4\]"),
        ([3, 7, 8, 3, 9], "candidates: user 0 has item 3 more than once"),
    ]:
        with pytest.raises(ValueError, match=match):
            recommend(policy, history, bad)
    with pytest.raises(ValueError, match=rf"histories: item id {n} at index \[0, 0\]"):
        recommend(policy, [[n, 2]], [3, 7, 8, 9, 10])
    with pytest.raises(ValueError, match=rf"histories: item id {n} "):
        recommend(policy, history=[2, n], candidates=[3, 7, 8, 9, 10])
    events = np.full((1, 2, 3), -1)
    events[0, 0] = [2, 2, n]
    with pytest.raises(ValueError, match=rf"events: item id {n} at index \[0, 0, 2\]"):
        recommend(policy, history, [3, 7, 8, 9, 10], events=events)
    # Events must be the same users' as the histories: their clicks the most recent ones.
    events[0, 0] = [4, 4, 5]
    with pytest.raises(
        ValueError, match=r"events: user 0's clicked items \[4\] .* histories \[2\]"
    ):
        recommend(policy, history, [3, 7, 8, 9, 10], events=events)
    events[0, 1] = [2, 2, 5]  # a click older than the history holds
    with pytest.raises(ValueError, match=r"clicked items \[4, 2\]"):
        recommend(policy, history, [3, 7, 8, 9, 10], events=events)
    events[0] = [[-1, 6, 5], [2, 2, 5]]  # a no-click event, then the history's click: agrees
    assert recommend(policy, history, [3, 7, 8, 9, 10], events=events).shape == (1, policy.k)
    # Only -1 pads a history: another negative id is a mistake, not padding.
    with pytest.raises(ValueError, match=r"histories: item id -2 at index \[0, 1\]; expected"):
        recommend(policy, [[2, -2]], [3, 7, 8, 9, 10])
    # Ids that a cast to int32 would wrap around or truncate into another item's id.
    wide = 2**32 + 5
    with pytest.raises(ValueError, match=rf"candidates: item id {wide} at index \[0, 4\]"):
        recommend(policy, history, np.array([3, 7, 8, 9, wide], dtype=np.int64))
    with pytest.raises(ValueError, match=rf"histories: item id {wide} at index \[0, 0\]"):
        recommend(policy, [[wide, 2]], [3, 7, 8, 9, 10])
    with pytest.raises(ValueError, match=r"candidates: expected integer item ids, got 0\.5"):
        recommend(policy, history, [0.5, 7.0, 8.0, 9.0, 10.0])
    with pytest.raises(ValueError, match=r"candidates: expected integer item ids \("):
        recommend(policy, history, [3, 7, 8, 9, 2**70])
    with pytest.raises(ValueError, match=r"histories: expected \[users, clicks\] integer"):
        recommend(policy, [["a", "b"]], [3, 7, 8, 9, 10])
    assert recommend(policy, history, [3.0, 7.0, 8.0, 9.0, 10.0]).shape == (1, policy.k)


def test_load_policy_names_a_folder_that_is_not_a_policy_run(user_model_dir):  # noqa: F811
    with pytest.raises(ValueError, match="not a policy run folder"):
        load_policy(user_model_dir)


def test_load_policy_refuses_a_policy_the_run_did_not_finish(policy_dir, tmp_path):
    # Not trained there: an untrained network would serve silently.
    with pytest.raises(FileNotFoundError, match="'wd_lr' is not among the run's policies"):
        load_policy(policy_dir, "wd_lr")
    # Killed before the CDQN finished: the episode-0 snapshot would serve silently.
    unfinished = tmp_path / "run"
    shutil.copytree(policy_dir, unfinished)
    os.remove(unfinished / "policies" / "cdqn.json")
    with pytest.raises(FileNotFoundError, match="'cdqn' has not finished .* rerun the run"):
        load_policy(str(unfinished), "cdqn")
    assert load_policy(str(unfinished), "gan_greedy").k == 3


def test_a_user_model_loads_under_op_determinism_without_a_seed(user_model_dir):  # noqa: F811
    # TF_DETERMINISTIC_OPS=1 makes an unseeded random op raise; loading must not draw one.
    code = (
        "import sys; from ganrl.user_model import load_user_model; "
        "m = load_user_model(sys.argv[1]); print(m.n_items)"
    )
    env = {**os.environ, "TF_DETERMINISTIC_OPS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code, user_model_dir], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 0


@pytest.mark.slow
def test_a_run_folder_older_than_the_cdqn_settings_loads_its_unbounded_network(
    user_model_dir,  # noqa: F811
    policy_dir,
    tmp_path,
):
    import json

    from ganrl.policy.runner import LEGACY_CDQN

    def strip_cdqn_settings(folder):  # what a config.json written before them holds
        path = os.path.join(folder, "config.json")
        with open(path) as f:
            saved = json.load(f)
        with open(path, "w") as f:
            json.dump({k: v for k, v in saved.items() if k not in LEGACY_CDQN}, f)

    old = str(tmp_path / "old")
    config = PolicyConfig.from_dict(
        {
            **json.load(open(os.path.join(policy_dir, "config.json"))),
            "save_dir": old,
            "policies": ["cdqn"],
            "cdqn_residual_bound": 0.0,
        }
    )
    PolicyRunner(config, progress=lambda _: None).run()
    histories, candidates = np.array([[0, 1, -1, -1], [2, -1, -1, -1]]), np.arange(6)
    slates = recommend(load_policy(old), histories, candidates)
    strip_cdqn_settings(old)
    policy = load_policy(old)
    assert policy.q.greedy_weight is None and policy.q.reward_weight is not None
    np.testing.assert_array_equal(recommend(policy, histories, candidates), slates)
