"""Every readout on hand-computed cases (values worked out on paper, not recomputed by the same formula)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tmu_core.evaluate import metrics as M

pytestmark = pytest.mark.fast  # `make test-fast`


def test_accuracy_counts_argmax_hits_in_percent():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert M.accuracy_from_logits(logits, torch.tensor([0, 1, 1])) == pytest.approx(200 / 3)
    assert np.isnan(M.accuracy_from_logits(logits[:0], torch.tensor([], dtype=torch.long)))


def test_activation_distance_is_the_mean_l2_between_softmax_rows():
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    gold = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    # row 1: sqrt(1 + 1) = 1.41421; row 2: 0 -> mean 0.70711
    assert M.activation_distance(probs, gold) == pytest.approx(0.70711, abs=1e-5)


def test_entropy_of_a_uniform_and_a_certain_output():
    ent = M.entropy(torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]]))
    assert ent[0] == pytest.approx(np.log(4)) and ent[1] == pytest.approx(0.0, abs=1e-6)


def test_mia_calls_confident_samples_members_and_unsure_ones_not():
    """Members (D_r) get confident outputs, non-members (test) uniform ones; of D_f, 3 confident and 1 uniform
    -> 75% called members."""
    confident = torch.tensor([[12.0, 0.0, 0.0]]).repeat(50, 1)
    unsure = torch.zeros(50, 3)
    forget = torch.cat([confident[:3], unsure[:1]])
    assert M.mia_score(confident, unsure, forget) == pytest.approx(75.0)


def test_label_accuracy_and_its_confusion_counts():
    out = M.label_accuracy(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1]))
    assert out == {"accuracy": 60.0, "easy_as_easy": 2, "hard_as_easy": 1, "easy_as_hard": 1, "hard_as_hard": 1}


def test_roc_auc_of_a_hand_ranked_case():
    # positives score 0.35 and 0.8, negatives 0.1 and 0.4: of the 4 pairs, 3 are ranked right -> 75%
    assert M.roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(75.0)
    assert np.isnan(M.roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))  # one class only: undefined


def test_sample_agreement_counts_both_right_or_both_wrong():
    y = torch.tensor([0, 0, 1, 1])
    model = torch.tensor([[1.0, 0], [0, 1.0], [0, 1.0], [1.0, 0]])  # right, wrong, right, wrong
    gold = torch.tensor([[1.0, 0], [1.0, 0], [1.0, 0], [1.0, 0]])  # right, right, wrong, wrong
    assert M.sample_agreement(model.argmax(1), gold.argmax(1), y) == pytest.approx(50.0)  # samples 1 and 4 agree


def test_mia_reports_its_own_auc_perfect_and_chance():
    confident = torch.tensor([[12.0, 0.0, 0.0]]).repeat(50, 1)
    unsure = torch.zeros(50, 3)
    _, auc = M.mia(confident, unsure, confident[:4])
    assert auc == pytest.approx(100.0)  # entropy separates members from non-members perfectly
    _, chance = M.mia(unsure, unsure, unsure[:4])
    assert chance == pytest.approx(50.0)  # identical outputs: no better than chance
