"""Agreement of scores and labels: hand-counted cases, the AUC as the share of correctly ordered
(positive, negative) pairs, unsure and unscored slices left out, the plot's notion of a hit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.review.agreement import agreement, roc_auc
from app.runs import regions_above


def test_hand_counted_case():
    scores = np.array([0.9, 0.2, 0.7, 0.4, 0.6, 0.1, 0.8, np.nan])
    labels = {0: "1", 1: "0", 2: "0", 3: "1", 4: "1", 5: "0", 6: "?", 7: "1"}
    result = agreement(scores, labels, threshold=0.5)
    # scored 1/0 slices: 0 (0.9, 1), 1 (0.2, 0), 2 (0.7, 0), 3 (0.4, 1), 4 (0.6, 1), 5 (0.1, 0)
    assert result.confusion == ((2, 1), (1, 2))  # TN 1,5; FP 2; FN 3; TP 0,4
    assert result.sensitivity == pytest.approx(2 / 3) and result.specificity == pytest.approx(2 / 3)
    assert result.false_positives == [2] and result.false_negatives == [3]
    assert result.disagreements == [(2, "FP"), (3, "FN")]
    assert (result.positives, result.negatives, result.unsure, result.unscored) == (3, 3, 1, 1)
    # pairs (pos, neg): 0.9 beats all three; 0.4 beats 0.2 and 0.1; 0.6 beats 0.2 and 0.1 → 7 of 9
    assert result.roc_auc == pytest.approx(7 / 9)
    assert "sensitivity 0.667" in result.summary() and "2 (FP), 3 (FN)" in result.summary()
    assert result.as_dict()["confusion"] == [[2, 1], [1, 2]]


def pairwise_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    pos, neg = scores[truth == 1], scores[truth == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_and_counts_on_random_runs(seed):
    rng = np.random.default_rng(seed)
    depth = 300
    scores = np.round(rng.random(depth), 2)  # ties included
    truth = (rng.random(depth) < scores * 0.8).astype(int)
    labels = {int(i): str(truth[i]) for i in rng.choice(depth, 200, replace=False)}
    index = np.array(sorted(labels))
    assert roc_auc(scores, labels) == pytest.approx(pairwise_auc(scores[index], truth[index]))
    for threshold in (0.0, 0.3, 0.5, 0.99, 1.0):
        result = agreement(scores, labels, threshold)
        called = scores[index] > threshold
        t = truth[index] == 1
        assert result.confusion == ((int((~t & ~called).sum()), int((~t & called).sum())), (int((t & ~called).sum()), int((t & called).sum())))
        assert result.false_positives == index[~t & called].tolist()
        assert result.false_negatives == index[t & ~called].tolist()


def test_one_class_has_no_auc_and_empty_labels_have_nothing():
    scores = np.linspace(0, 1, 10)
    only_positive = agreement(scores, {2: "1", 8: "1"}, 0.5)
    assert only_positive.roc_auc is None and only_positive.specificity is None
    assert only_positive.sensitivity == 0.5 and only_positive.false_negatives == [2]
    nothing = agreement(scores, {}, 0.5)
    assert nothing.roc_auc is None and nothing.confusion == ((0, 0), (0, 0)) and nothing.disagreements == []
    assert agreement(scores, {3: "?", 4: "?"}, 0.5).unsure == 2


def test_a_hit_is_what_the_plot_calls_above_the_threshold():
    scores = np.array([0.2, 0.5, 0.5000001, 0.8])
    labels = {i: "1" for i in range(4)}
    hits = {i for first, last in regions_above(scores, 0.5) for i in range(first, last + 1)}
    result = agreement(scores, labels, 0.5)
    assert set(range(4)) - set(result.false_negatives) == hits == {2, 3}


def test_labels_outside_the_run_are_ignored():
    result = agreement(np.array([0.9, 0.1]), {0: "1", 1: "0", 5: "1"}, 0.5)
    assert result.positives == 1 and result.confusion == ((1, 0), (0, 1))
