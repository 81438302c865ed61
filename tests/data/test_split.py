"""split(): seeded, disjoint, covering, never empty; subsets keep the dataset's metadata."""

from __future__ import annotations

import pytest
import torch
from crnas.data import DetectionSubset, SyntheticDetection, split
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), val_fraction=st.floats(0.001, 0.999), seed=st.integers(0, 2**31))
def test_split_properties(n, val_fraction, seed):
    ds = SyntheticDetection(n, image_size=(32, 32))
    train, val = split(ds, val_fraction, seed)
    assert set(train.indices).isdisjoint(val.indices)
    assert sorted(train.indices + val.indices) == list(range(n))
    assert len(val) == min(max(round(n * val_fraction), 1), n - 1) and len(train) >= 1
    assert train.indices == sorted(train.indices)
    again = split(ds, val_fraction, seed)
    assert (again[0].indices, again[1].indices) == (train.indices, val.indices)


def test_seeds_give_different_splits():
    ds = SyntheticDetection(100, image_size=(32, 32))
    assert split(ds, 0.1, 0)[1].indices != split(ds, 0.1, 1)[1].indices


def test_subsets_forward_metadata_and_samples():
    ds = SyntheticDetection(20, image_size=(48, 48), num_classes=3)
    _, val = split(ds, 0.25, seed=5)
    assert val.classes == ds.classes and val.label_to_cat_id == ds.label_to_cat_id and val.report is ds.report
    i = val.indices[1]
    assert torch.equal(val[1][0], ds[i][0])
    assert val.target(1)["image_id"] == ds.target(i)["image_id"] == i
    nested = DetectionSubset(val, [1])
    assert torch.equal(nested.load_image(0), ds.load_image(i))


def test_bad_arguments():
    with pytest.raises(ValueError, match="dataset: expected at least 2 samples to split, got 1"):
        split(SyntheticDetection(1), 0.5)
    with pytest.raises(ValueError, match=r"val_fraction: expected a float in \(0, 1\), got 1.0"):
        split(SyntheticDetection(4), 1.0)
    with pytest.raises(TypeError, match="dataset: expected a crnas.data.DetectionDataset, got list"):
        DetectionSubset([1, 2], [0])
    with pytest.raises(IndexError, match=r"indices: expected ints in \[0, 3\), got \[3\]"):
        DetectionSubset(SyntheticDetection(3), [0, 3])
