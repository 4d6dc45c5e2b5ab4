"""`ganrl.reporting.curves`: lines told apart, coinciding curves named, every panel labelled."""

import matplotlib.pyplot as plt

from ganrl.reporting.curves import (
    LINE_STYLES,
    MARKERS,
    legend_labels,
    line_style,
    policy_run_figure,
)


def test_the_first_lines_differ_in_colour_style_and_marker():
    styles = [line_style(i) for i in range(40)]
    looks = {(s["color"], s["linestyle"], s["marker"]) for s in styles}
    assert len(looks) == 40
    # Within the first four, every one of the three differs.
    for key in ("color", "linestyle", "marker"):
        assert len({styles[i][key] for i in range(4)}) == 4
    assert len(LINE_STYLES) == 4 and len(MARKERS) == 11


def test_a_curve_equal_to_an_earlier_one_is_named_in_the_legend():
    labels = legend_labels(
        {"random": [1.0, 2.0], "most_popular": [1.0, 2.5], "wd_lr": [1.0, 2.0], "short": [1.0]}
    )
    assert labels == {
        "random": "random",
        "most_popular": "most_popular",
        "wd_lr": "wd_lr (= random)",
        "short": "short",
    }


def test_policy_run_panels_have_titles_axis_labels_and_distinct_lines():
    policies = {
        name: {"reward_curve": [0.5, 1.0, 1.5], "ctr_curve": [0.5, 0.5, 0.5]}
        for name in ("cdqn", "random", "gan_greedy")
    }
    results = {
        "has_no_click": True,
        "policies": policies,
        "adaptation": {"pretrained": [0.4, 0.5], "scratch": [0.1, 0.3], "metric": "ctr"},
        "regret": {"linucb": [0.1, 0.2], "gan_greedy": [0.0, 0.1], "random": [0.3, 0.6]},
    }
    fig = policy_run_figure(results)
    try:
        axes = fig.get_axes()
        assert len(axes) == 4
        for ax in axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
            lines = ax.get_lines()
            looks = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in lines}
            assert len(looks) == len(lines) >= 2
        # All three policies have the same curves: the later ones say so in the legend.
        legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
        assert legend == ["cdqn", "random (= cdqn)", "gan_greedy (= cdqn)"]
    finally:
        plt.close(fig)
