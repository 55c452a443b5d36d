"""Pure maths of the mixture figures in metrics.json (edgecnn.mixture): coverage, modes, junction shares.
Plain arrays, no TensorFlow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgecnn.junction import ROAD, JunctionLabel
from edgecnn.mixture import (
    IDEAL_COVERAGE,
    LOG_SIGMA_MIN,
    coverage,
    has_both_sides,
    hdr_level,
    junction_metrics,
    modes,
    nll,
    nll_many,
    side,
    significant_modes,
)


def vec(weights, means, sigmas) -> np.ndarray:
    """A raw gmm vector from weights/means/sigmas (logits = log weights)."""
    w = np.maximum(np.asarray(weights, float), 1e-12)
    return np.concatenate([np.log(w), np.asarray(means, float), np.log(np.asarray(sigmas, float))])


def test_ideal_coverage_is_the_gaussian_k_sigma_mass():
    assert IDEAL_COVERAGE["1"] == pytest.approx(0.6827, abs=1e-4)
    assert IDEAL_COVERAGE["2"] == pytest.approx(0.9545, abs=1e-4)
    assert IDEAL_COVERAGE["3"] == pytest.approx(0.9973, abs=1e-4)


def test_single_gaussian_level_is_k_sigma():
    out = np.stack([vec([1, 0, 0], [0.1, 0, 0], [0.2, 1, 1])] * 3)
    level = hdr_level(out, np.array([0.1 + 0.2, 0.1 - 0.4, 0.1]))  # 1 sigma, 2 sigma, at the mean
    assert level[0] == pytest.approx(math.erf(1 / math.sqrt(2)), abs=3e-3)
    assert level[1] == pytest.approx(math.erf(2 / math.sqrt(2)), abs=3e-3)
    assert level[2] == pytest.approx(0.0, abs=1e-3)


def test_calibrated_samples_reach_ideal_coverage():
    rng = np.random.default_rng(0)
    n = 3000
    mu, s = rng.uniform(-0.6, 0.6, n), rng.uniform(0.05, 0.2, n)
    out = np.stack([vec([1, 0, 0], [m, 0, 0], [si, 1, 1]) for m, si in zip(mu, s)])
    cov = coverage(out, mu + rng.normal(0, 1, n) * s)
    for k in ("1", "2", "3"):
        assert abs(cov[k] - IDEAL_COVERAGE[k]) < 0.025
    over = coverage(out, mu + rng.normal(0, 1, n) * s * 3)  # the model is overconfident: far below ideal
    assert over["1"] < 0.35


def test_bimodal_region_excludes_the_middle():
    out = vec([0.5, 0.5, 0], [-0.5, 0.5, 0], [0.05, 0.05, 1])[None]
    assert hdr_level(out, np.array([0.0]))[0] > 0.99  # straight on at a T: outside even the 3-sigma region
    assert hdr_level(out, np.array([0.5]))[0] < 0.05


def test_modes_and_their_weights():
    found = modes(vec([0.3, 0.7, 0], [-0.5, 0.5, 0], [0.1, 0.1, 1]))
    assert [round(m.mean, 2) for m in found] == [0.5, -0.5]
    assert found[0].weight == pytest.approx(0.7, abs=0.01) and found[1].weight == pytest.approx(0.3, abs=0.01)
    assert sum(m.weight for m in found) == pytest.approx(1.0, abs=1e-6)
    # two overlapping components are one mode, as the density shows
    one = modes(vec([0.5, 0.5, 0], [-0.05, 0.05, 0], [0.2, 0.2, 1]))
    assert len(one) == 1 and one[0].weight == pytest.approx(1.0, abs=1e-6)
    # a component under the significance weight is a mode, but not a significant one
    three = vec([0.45, 0.45, 0.1], [-0.6, 0.6, 0.0], [0.05, 0.05, 0.05])
    assert len(modes(three)) == 3 and len(significant_modes(three)) == 2
    assert has_both_sides(significant_modes(three))
    assert not has_both_sides(significant_modes(vec([1, 0, 0], [0.4, 0, 0], [0.1, 1, 1])))


def test_narrowest_sigma_is_resolved():
    out = vec([1, 0, 0], [0.0, 0, 0], [math.exp(LOG_SIGMA_MIN), 1, 1])[None]
    assert hdr_level(out, np.array([math.exp(LOG_SIGMA_MIN)]))[0] == pytest.approx(0.6827, abs=0.01)


def test_batched_nll_equals_the_per_frame_one_including_clipped_parameters():
    rng = np.random.default_rng(3)
    raw = np.concatenate([rng.normal(0, 2, (40, 3)), rng.uniform(-1.5, 1.5, (40, 3)),
                          rng.uniform(LOG_SIGMA_MIN - 1, 0.5, (40, 3))], axis=1)  # means and sigmas past the clips
    t = rng.uniform(-1, 1, (40, 2))
    want = np.array([[nll(r, v) for v in row] for r, row in zip(raw, t)])
    np.testing.assert_allclose(nll_many(raw, t), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nll_many(raw, t[:, 0]), want[:, 0], rtol=1e-12, atol=1e-12)


def test_side():
    assert (side(-0.2), side(0.02), side(0.3)) == ("left", "straight", "right")


def test_junction_metrics_unrouted_and_routed():
    two = vec([0.5, 0.5, 0], [-0.5, 0.5, 0], [0.1, 0.1, 1])
    one_left = vec([0.9, 0.1, 0], [-0.5, 0.5, 0], [0.1, 0.1, 1])
    one_right = vec([0.1, 0.9, 0], [-0.5, 0.5, 0], [0.1, 0.1, 1])
    road = vec([1, 0, 0], [0.0, 0, 0], [0.05, 1, 1])
    # three T frames where the branch is taken, one early in the zone (still straight), two road frames
    out = np.stack([two, one_left, one_right, one_left, road, two])
    target = np.array([-0.5, -0.5, 0.5, 0.0, 0.0, 0.0])
    labels = [JunctionLabel(k, b) for k, b in zip(["T", "T", "T", "T", "", ""], ["left", "left", "right", "right", "", ""])]
    un = junction_metrics(out, target, labels, routed=False)
    assert un["t_frames"] == 4 and un["t_turning_frames"] == 3
    assert un["t_two_sided_share"] == pytest.approx(1 / 3)  # one_left/right: the 0.1 mode is not significant
    assert un["t_two_sided_share_all"] == pytest.approx(1 / 4)
    assert un["road_frames"] == 2 and un["road_one_mode_share"] == pytest.approx(1 / 2)
    ro = junction_metrics(out[1:4], target[1:4], labels[1:4], routed=True)
    assert ro["route_mode_frames"] == 2 and ro["route_mode_share"] == pytest.approx(1.0)
    assert ro["route_mode_share_all"] == pytest.approx(2 / 3)  # the early frame (heaviest left) counts against
    assert ro["per_kind"]["T"]["frames"] == 2
    empty = junction_metrics(out[4:], target[4:], [ROAD, ROAD], routed=True)
    assert empty["route_mode_share"] is None and empty["junction_frames"] == 0


def test_junction_decision_frames_are_the_shared_approach_before_the_turn_in():
    two = vec([0.5, 0.5, 0], [-0.5, 0.5, 0], [0.1, 0.1, 1])
    one_left = vec([0.9, 0.1, 0], [-0.5, 0.5, 0], [0.1, 0.1, 1])
    straight_right = vec([0.5, 0.5, 0], [0.0, 0.4, 0], [0.08, 0.08, 1])
    out = np.stack([two, one_left, two, straight_right, straight_right, two])
    target = np.array([0.2, -0.2, -0.4, 0.3, 0.3, 0.1])
    junction = ["T"] * 5 + ["cross"]
    branch = ["right", "left", "left", "right", "straight", "right"]
    options = ["left|right"] * 3 + ["straight|right"] * 2 + ["left|straight|right"]
    # frame 2 is past the turn-in (committed), frame 4 before the window: neither is a decision frame;
    # the crossroads frame is not a T frame
    to_turn = [0.3, 0.1, -0.2, 0.45, 0.9, 0.2]
    un = junction_metrics(out, target, [JunctionLabel(*c) for c in zip(junction, branch, options, to_turn)],
                          routed=False)
    assert un["t_decision_frames"] == 3
    assert un["t_decision_share"] == pytest.approx(2 / 3)  # one_left shows one branch only
    assert un["decision_window_m"] == 0.5
    old = junction_metrics(out, target, [JunctionLabel(k, b) for k, b in zip(junction, branch)], routed=False)
    assert old["t_decision_frames"] == 0 and old["t_decision_share"] is None


def test_decision_frames_judge_modes_against_the_branches_own_steering():
    # A car left of the lane centre: both branches steer right of 0 (left branch 0.05, right branch 0.45).
    # Modes at 0.05 and 0.45 cover both branches, though they sit on the same side of 0.
    shifted = vec([0.5, 0.5, 0], [0.05, 0.45, 0], [0.06, 0.06, 1])
    one = vec([0.5, 0.5, 0], [0.40, 0.50, 0], [0.06, 0.06, 1])  # both components nearest the right branch
    out = np.stack([shifted, one, shifted])
    target = np.array([0.45, 0.45, 0.05])
    junction, branch, options = ["T"] * 3, ["right", "right", "left"], ["left|right"] * 3
    commands = ["left:0.05|right:0.45", "left:0.05|right:0.45", ""]  # the last frame: older data, sign rule
    labels = [JunctionLabel(*c) for c in zip(junction, branch, options, [0.2, 0.3, 0.1], commands)]
    un = junction_metrics(out, target, labels, routed=False)
    assert un["t_decision_frames"] == 3 and un["t_decision_by_branch_steering"] == 2
    assert un["t_decision_share"] == pytest.approx(1 / 3)  # frame 0 by the branches, frame 2 fails the sign rule
    assert un["t_decision_share_sign"] == 0.0
    assert un["t_decision_separation"] == pytest.approx(0.4)
    assert un["t_decision_by_separation"] == {"<0.15": {"frames": 0, "share": None},
                                              "0.15-0.25": {"frames": 0, "share": None},
                                              ">=0.25": {"frames": 2, "share": 0.5}}


def test_decision_share_per_branch_separation():
    """Branches 0.1 apart under one mode, 0.2 apart under two: each counted in its own gap bin."""
    near = vec([0.5, 0.5, 0], [0.0, 0.0, 0], [0.07, 0.07, 1])
    two = vec([0.5, 0.5, 0], [-0.1, 0.1, 0], [0.04, 0.04, 1])
    labels = [JunctionLabel("T", "left", "left|right", 0.4, "left:-0.05|right:0.05"),
              JunctionLabel("T", "left", "left|right", 0.2, "left:-0.1|right:0.1")]
    un = junction_metrics(np.stack([near, two]), np.array([-0.05, -0.1]), labels, routed=False)
    assert un["t_decision_by_separation"]["<0.15"] == {"frames": 1, "share": 0.0}
    assert un["t_decision_by_separation"]["0.15-0.25"] == {"frames": 1, "share": 1.0}
    assert un["t_decision_share"] == 0.5


def test_junction_label_round_trips_split_json_cells():
    label = JunctionLabel("T", "left", "left|right", 0.25, "left:-0.3|right:0.2")
    assert JunctionLabel.from_cells(label.cells()) == label
    assert JunctionLabel.from_cells(["T", "left"]) == JunctionLabel("T", "left")  # a row from older data
    assert label.offered == {"left", "right"} and label.commands() == {"left": -0.3, "right": 0.2}
    assert ROAD.offered == set() and ROAD.commands() == {}


def test_parse_branch_steering_reads_cells_and_rejects_malformed_ones():
    from edgecnn.junction import parse_branch_steering

    assert parse_branch_steering("left:-0.31|right:0.12") == {"left": -0.31, "right": 0.12}
    assert parse_branch_steering("") == {} and parse_branch_steering("left:x|right:1") == {}
    assert parse_branch_steering("left:nan|right:0.1") == {}
