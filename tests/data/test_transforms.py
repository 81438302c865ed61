"""Transforms: geometry of flips and resizes, torchvision's resize rule, randomness only from the generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from crnas.data import transforms as T
from PIL import Image
from torchvision.models.detection.transform import GeneralizedRCNNTransform


def sample(h: int = 30, w: int = 50):
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(2, h, w, dtype=torch.uint8)
    masks[0, 2:10, 3:7] = 1
    masks[1, 5:h, 20:w] = 1
    target = {
        "boxes": torch.tensor([[3.0, 2, 7, 10], [20, 5, w, h]]),
        "labels": torch.tensor([1, 2]),
        "area": torch.tensor([32.0, (w - 20) * (h - 5)]),
        "masks": masks,
        "image_id": 4,
    }
    return image, target


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_horizontal_flip_moves_boxes_masks_and_pixels_together():
    image, target = sample()
    flipped, out = T.RandomHorizontalFlip(1.0)(image, target, gen())
    assert torch.equal(flipped, image.flip(-1))
    assert out["boxes"].tolist() == [[43.0, 2, 47, 10], [0, 5, 30, 30]]
    for box, mask in zip(out["boxes"].tolist(), out["masks"]):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert box == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    back, again = T.RandomHorizontalFlip(1.0)(flipped, out, gen())
    assert torch.equal(back, image) and torch.equal(again["boxes"], target["boxes"])
    same, kept = T.RandomHorizontalFlip(0.0)(image, target, gen())
    assert same is image and kept is target


def test_randomness_comes_only_from_the_generator():
    image, target = sample()
    flip = T.Compose([T.RandomHorizontalFlip(0.5), T.Resize((20, 24, 28), 64)])
    results = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        state = torch.get_rng_state()
        results.append([flip(image, target, gen(s)) for s in range(6)])
        assert torch.equal(state, torch.get_rng_state())  # the global RNG was not drawn from
    for (i1, t1), (i2, t2) in zip(*results):
        assert torch.equal(i1, i2) and torch.equal(t1["boxes"], t2["boxes"])
    assert len({r[0].shape for r in results[0]}) > 1  # the scale choice varied with the generator seed


def test_resize_matches_generalized_rcnn_transform():
    image, target = sample(30, 50)
    resized, out = T.Resize(45, 60)(image, target, gen())
    ref = GeneralizedRCNNTransform(45, 60, [0.0] * 3, [1.0] * 3).eval()
    ref_image, ref_target = ref.resize(image, {k: v.clone() if torch.is_tensor(v) else v for k, v in target.items()})
    assert resized.shape == ref_image.shape == (3, 36, 60)  # max_size bound: 30·1.2, 50·1.2
    assert torch.equal(resized, ref_image)
    torch.testing.assert_close(out["boxes"], ref_target["boxes"])
    assert out["masks"].shape == (2, 36, 60) and out["masks"].dtype == torch.uint8
    torch.testing.assert_close(out["area"], target["area"] * 1.2 * 1.2)
    assert torch.equal(T.Resize(30, 100)(image, target, gen())[0], image)  # already the right size


def test_to_tensor_converts_pil_of_any_mode():
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    for mode in ("RGB", "L", "RGBA", "P"):
        image = Image.fromarray(pixels).convert(mode)
        tensor, _ = T.ToTensor()(image, {"boxes": torch.zeros(0, 4)}, gen())
        assert tensor.shape == (3, 4, 6) and tensor.dtype == torch.float32
        expected = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255
        assert torch.equal(tensor, expected)
    as_uint8 = torch.from_numpy(pixels).permute(2, 0, 1)
    assert torch.equal(T.ToTensor()(as_uint8, {}, gen())[0], as_uint8.float() / 255)
    message = "image: expected a PIL image or a uint8/float tensor, got Tensor of dtype torch.int32"
    with pytest.raises(TypeError, match=message):
        T.ToTensor()(as_uint8.int(), {}, gen())


def test_argument_checks():
    with pytest.raises(ValueError, match=r"p: expected a probability in \[0, 1\], got 1.5"):
        T.RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match=r"max_size: expected an int >= max\(min_size\) = 800, got 600"):
        T.Resize(800, 600)
    with pytest.raises(ValueError, match="min_size: expected a positive int or a non-empty sequence of them, got"):
        T.Resize((), 600)
