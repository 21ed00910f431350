"""The CIFAR-10 copy in ../shared/data/cifar10 (JPEGs in ImageFolder layout) loads as CIFAR-10 should:
5000 training and 1000 test images per class, 32x32 colour, classes in the standard order."""

from __future__ import annotations

import numpy as np
import pytest
from clitools import ROOT

from tmu_core.config import DataConfig
from tmu_core.data import load_dataset

CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.mark.skipif(not (CIFAR / "train").is_dir(), reason=f"no CIFAR-10 copy at {CIFAR}")
def test_shared_cifar10_copy_loads_with_5000_and_1000_per_class(lasting_runs_dir, monkeypatch):
    monkeypatch.setenv("TMU_RUNS_DIR", str(lasting_runs_dir))  # decoded once, then read from its cache
    data = load_dataset(DataConfig(dataset="imagefolder", data_root=str(CIFAR)), seed=0)
    assert data.classes == CLASSES
    assert tuple(data.x.shape) == (50000, 3, 32, 32) and tuple(data.x_test.shape) == (10000, 3, 32, 32)
    assert np.bincount(data.y.numpy()).tolist() == [5000] * 10
    assert np.bincount(data.y_test.numpy()).tolist() == [1000] * 10
    assert np.bincount(data.y[data.aux_ids].numpy()).tolist() == [500] * 10  # the default 10% aux pool
    assert data.mean == pytest.approx((0.491, 0.482, 0.447), abs=0.01)  # the original CIFAR-10 mean pixel
