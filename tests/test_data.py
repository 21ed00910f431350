"""Data: the train / aux / test split (disjoint, stratified, reproducible from the seed) and forget sets.

Expectations are counted by hand from the digits data: 1797 images; the fixed test split holds
round(0.2 n_c) of each class, the aux pool round(0.1 n_c) of each class's training images.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tmu_core.config import DataConfig, ForgetSpec
from tmu_core.data import channel_stats, load_dataset, resolve_class, resolve_forget, split_test, to_float

pytestmark = pytest.mark.fast  # `make test-fast`


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(), seed=0)


def test_test_split_is_stratified_and_fixed():
    from sklearn.datasets import load_digits

    counts = np.bincount(load_digits().target)  # 178, 182, 177, 183, 181, 182, 181, 179, 174, 180
    data = load_dataset(DataConfig(), seed=0)
    assert len(data.y) + len(data.y_test) == 1797
    assert np.bincount(data.y_test.numpy()).tolist() == [int(round(0.2 * n)) for n in counts]
    assert torch.equal(load_dataset(DataConfig(), seed=5).x_test, data.x_test), (
        "the test split must not move with the seed"
    )


def test_train_and_aux_partition_the_training_set(digits):
    train, aux = digits.train_ids, digits.aux_ids
    assert len(np.intersect1d(train, aux)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, aux])), np.arange(len(digits.y)))
    y = digits.y.numpy()
    for c in range(10):
        n_c = int((y == c).sum())
        assert len(digits.class_ids(c, pool="aux")) == int(round(0.1 * n_c)), c
        assert len(digits.class_ids(c)) == n_c - int(round(0.1 * n_c)), c
        assert (y[digits.class_ids(c, pool="aux")] == c).all()


def test_split_is_reproducible_from_the_seed(digits):
    again = load_dataset(DataConfig(), seed=0)
    other = load_dataset(DataConfig(), seed=1)
    assert np.array_equal(again.train_ids, digits.train_ids) and np.array_equal(again.aux_ids, digits.aux_ids)
    assert not np.array_equal(other.aux_ids, digits.aux_ids)
    assert torch.equal(other.x, digits.x), "sample ids index the same images whatever the seed"


def test_train_per_class_caps_the_training_pool_only():
    data = load_dataset(DataConfig(train_per_class=30), seed=0)
    full = load_dataset(DataConfig(), seed=0)
    assert np.bincount(data.y[data.train_ids].numpy()).tolist() == [30] * 10
    assert np.array_equal(data.aux_ids, full.aux_ids)
    assert np.isin(data.train_ids, full.train_ids).all()


def test_images_are_uint8_and_become_floats_in_unit_range(digits):
    assert digits.x.dtype == torch.uint8 and digits.x.shape[1:] == (1, 8, 8)
    assert int(digits.x.max()) == 255 and int(digits.x.min()) == 0  # 16 -> 255 scaling of sklearn's 0..16
    xf = to_float(digits.x[:50])
    assert xf.dtype == torch.float32 and float(xf.min()) >= 0.0 and float(xf.max()) <= 1.0
    assert torch.allclose(xf * 255, digits.x[:50].float())


def test_channel_stats_match_a_hand_computation():
    x = torch.tensor([0, 255, 0, 255], dtype=torch.uint8).view(2, 1, 1, 2)  # pixels 0, 1, 0, 1
    mean, std = channel_stats(x, chunk=1)
    assert mean == pytest.approx((0.5,)) and std == pytest.approx((np.sqrt(1 / 3),))  # unbiased: 4 * 0.25 / 3


def test_split_test_takes_a_fifth_of_each_class():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    y = torch.tensor([0] * 5 + [1] * 5)
    xtr, ytr, xte, yte = split_test(x, y, 0.2)
    assert yte.tolist() == [0, 1] and len(ytr) == 8
    assert sorted(xtr.flatten().tolist() + xte.flatten().tolist()) == list(range(10))


def test_forget_by_count_draws_that_many_of_one_class_from_the_training_pool(digits):
    f = resolve_forget(digits, ForgetSpec(forget_class="8", forget_count=100), seed=0)
    assert f.class_index == 8 and len(f.ids) == 100 and len(np.unique(f.ids)) == 100
    assert (digits.y[f.ids].numpy() == 8).all()
    assert np.isin(f.ids, digits.train_ids).all() and not np.isin(f.ids, digits.aux_ids).any()
    assert np.array_equal(f.ids, np.sort(f.ids))
    n8 = len(digits.class_ids(8))
    assert len(f.remain_class_ids(digits)) == n8 - 100
    assert len(f.remain_ids(digits)) == len(digits.train_ids) - 100


def test_forget_set_is_reproducible_and_seeded(digits):
    spec = ForgetSpec(forget_class="3", forget_count=40)
    a, b = resolve_forget(digits, spec, 0), resolve_forget(digits, spec, 0)
    c = resolve_forget(digits, spec, 1)
    assert np.array_equal(a.ids, b.ids) and not np.array_equal(a.ids, c.ids)


def test_forget_by_fraction_and_by_explicit_ids(digits):
    n = len(digits.class_ids(2))
    f = resolve_forget(digits, ForgetSpec(forget_class="2", forget_fraction=0.5), 0)
    assert len(f.ids) == int(round(0.5 * n))
    chosen = digits.class_ids(2)[[4, 0, 9]]
    g = resolve_forget(digits, ForgetSpec(forget_class="2", forget_ids=tuple(int(i) for i in chosen)), 0)
    assert g.ids.tolist() == sorted(chosen.tolist())


def test_class_resolves_by_index_or_name(digits):
    assert resolve_class(digits, "7") == 7 and resolve_class(digits, " 0 ") == 0
