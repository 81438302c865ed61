"""make_loader: seeded order per epoch, augmentation per (seed, epoch, index), resumable, worker-independent."""

from __future__ import annotations

import pytest
import torch
from crnas.data import SyntheticDetection, collate_fn, make_loader
from crnas.data import transforms as T


def image_ids(loader) -> list[list[int]]:
    return [[t["image_id"] for t in targets] for _, targets in loader]


@pytest.fixture(scope="module")
def dataset() -> SyntheticDetection:
    return SyntheticDetection(11, image_size=(48, 64), transforms=T.RandomHorizontalFlip(0.5))


def test_order_is_a_function_of_seed_and_epoch(dataset):
    a = image_ids(make_loader(dataset, 3, shuffle=True, seed=1, epoch=0))
    assert a == image_ids(make_loader(dataset, 3, shuffle=True, seed=1, epoch=0))
    assert sorted(i for batch in a for i in batch) == list(range(11)) and [len(b) for b in a] == [3, 3, 3, 2]
    assert a != image_ids(make_loader(dataset, 3, shuffle=True, seed=1, epoch=1))
    assert a != image_ids(make_loader(dataset, 3, shuffle=True, seed=2, epoch=0))
    assert [i for batch in image_ids(make_loader(dataset, 3, shuffle=False)) for i in batch] == list(range(11))
    assert [len(b) for b in image_ids(make_loader(dataset, 3, shuffle=True, drop_last=True))] == [3, 3, 3]


def test_start_batch_resumes_the_epoch(dataset):
    full = image_ids(make_loader(dataset, 2, shuffle=True, seed=4, epoch=3))
    tail = make_loader(dataset, 2, shuffle=True, seed=4, epoch=3, start_batch=2)
    assert len(tail) == len(full) - 2
    assert image_ids(tail) == full[2:]


def test_batches_do_not_depend_on_workers_or_global_rng(dataset):
    torch.manual_seed(0)
    state = torch.get_rng_state()
    serial = list(make_loader(dataset, 4, shuffle=True, seed=9, epoch=2))
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(123)
    parallel = list(make_loader(dataset, 4, shuffle=True, seed=9, epoch=2, num_workers=2))
    assert len(serial) == len(parallel) == 3
    flips = 0
    for (images_a, targets_a), (images_b, targets_b) in zip(serial, parallel):
        for a, b, ta, tb in zip(images_a, images_b, targets_a, targets_b):
            assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"])
            flips += not torch.equal(a, dataset.load_image(ta["image_id"]))
    assert 0 < flips < 11  # augmentation happened, and not to everything


def test_augmentation_changes_between_epochs(dataset):
    def images_by_id(epoch):
        loader = make_loader(dataset, 4, shuffle=True, epoch=epoch)
        return {t["image_id"]: im for ims, ts in loader for im, t in zip(ims, ts)}

    e0, e1 = images_by_id(0), images_by_id(1)
    assert any(not torch.equal(e0[i], e1[i]) for i in e0)


def test_collate_fn_keeps_images_apart():
    a, b = (torch.zeros(3, 4, 5), {"image_id": 0}), (torch.ones(3, 6, 2), {"image_id": 1})
    images, targets = collate_fn([a, b])
    assert images == (a[0], b[0]) and targets == (a[1], b[1])


def test_argument_checks(dataset):
    with pytest.raises(ValueError, match="batch_size: expected a positive int, got 0"):
        make_loader(dataset, 0, shuffle=True)
    with pytest.raises(ValueError, match="start_batch: expected an int >= 0, got -1"):
        make_loader(dataset, 2, shuffle=True, start_batch=-1)
