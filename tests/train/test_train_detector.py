"""train_detector: learns, follows the schedule, resumes bit-identically, survives a kill mid-write."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from crnas.data import SyntheticDetection
from crnas.data import transforms as T
from crnas.eval import METRICS, coco_eval
from crnas.train import CHECKPOINT_NAME, StopTraining, WarmupMultiStep, train_detector
from tinydet import tiny_detector
from torch import nn

SCHEDULE = {"iterations": 12, "batch_size": 3, "lr": 0.02, "warmup_iters": 2, "checkpoint_every": 4, "progress": False}


def dataset(n: int = 10) -> SyntheticDetection:
    return SyntheticDetection(n, image_size=(96, 96), num_classes=2, max_objects=3,
                              transforms=T.RandomHorizontalFlip(0.5))


class ScaleImages:
    """Stands in for the search's sub-network sampler: a per-step random choice from its own state."""

    def __init__(self) -> None:
        self.generator = torch.Generator().manual_seed(0)
        self.steps: list[int] = []

    def on_step_start(self, step, images, targets, model) -> None:
        self.steps.append(step)
        factor = 0.5 + torch.rand((), generator=self.generator).item()
        for image in images:
            image.mul_(factor).clamp_(0, 1)

    def state_dict(self):
        return {"generator": self.generator.get_state(), "steps": list(self.steps)}

    def load_state_dict(self, state) -> None:
        self.generator.set_state(state["generator"])
        self.steps = list(state["steps"])


class StopAfter:
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, step, losses) -> None:
        assert set(losses) >= {"loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
        if step == self.step:
            raise StopTraining


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    torch.set_num_threads(1)
    model, callback = tiny_detector(2), ScaleImages()
    directory = tmp_path_factory.mktemp("ref")
    result = train_detector(model, dataset(), checkpoint_dir=directory, callbacks=[callback], **SCHEDULE)
    return model, result, callback


def test_resume_after_max_steps_is_bit_identical(uninterrupted, tmp_path: Path):
    ref_model, ref, ref_callback = uninterrupted
    assert ref.iteration == 12 and not ref.stopped_early and len(ref.loss_history) == 12
    first = train_detector(tiny_detector(2), dataset(), checkpoint_dir=tmp_path, callbacks=[ScaleImages()],
                           max_steps_this_run=5, **SCHEDULE)
    assert first.iteration == 5 and first.stopped_early
    model, callback = tiny_detector(2, seed=1), ScaleImages()  # other initial weights: all comes from the checkpoint
    second = train_detector(model, dataset(), checkpoint_dir=tmp_path, callbacks=[callback], **SCHEDULE)
    assert second.iteration == 12 and not second.stopped_early
    assert_same_weights(model, ref_model)
    assert second.loss_history == ref.loss_history and second.lr_history == ref.lr_history
    assert callback.steps == ref_callback.steps == list(range(12))


def test_resume_after_stop_training_with_two_workers_is_bit_identical(uninterrupted, tmp_path: Path):
    ref_model, ref, _ = uninterrupted
    first = train_detector(tiny_detector(2), dataset(), checkpoint_dir=tmp_path, num_workers=2,
                           callbacks=[ScaleImages(), StopAfter(6)], **SCHEDULE)
    assert first.iteration == 7 and first.stopped_early
    model = tiny_detector(2)
    second = train_detector(model, dataset(), checkpoint_dir=tmp_path, num_workers=2,
                            callbacks=[ScaleImages(), StopAfter(-1)], **SCHEDULE)
    assert second.iteration == 12
    assert_same_weights(model, ref_model)
    assert second.loss_history == ref.loss_history


def test_a_kill_while_writing_keeps_the_previous_checkpoint(uninterrupted, tmp_path: Path, monkeypatch):
    ref_model, ref, _ = uninterrupted
    real_save, calls = torch.save, []

    def dies_on_second_write(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"half a checkpoint")
            raise KeyboardInterrupt  # as if killed in the middle of the write
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dies_on_second_write)
    with pytest.raises(KeyboardInterrupt):
        train_detector(tiny_detector(2), dataset(), checkpoint_dir=tmp_path, callbacks=[ScaleImages()], **SCHEDULE)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["iteration"] == 4
    model = tiny_detector(2)
    result = train_detector(model, dataset(), checkpoint_dir=tmp_path, callbacks=[ScaleImages()], **SCHEDULE)
    assert result.loss_history == ref.loss_history
    assert_same_weights(model, ref_model)
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # the torn temporary file was replaced


def test_a_finished_run_resumes_to_itself(uninterrupted):
    ref_model, ref, _ = uninterrupted
    model = tiny_detector(2, seed=3)
    directory = ref.checkpoint.parent
    again = train_detector(model, dataset(), checkpoint_dir=directory, callbacks=[ScaleImages()], **SCHEDULE)
    assert again.iteration == 12 and again.loss_history == ref.loss_history
    assert_same_weights(model, ref_model)


def test_training_lowers_the_loss_and_the_model_evaluates():
    model = tiny_detector(2)
    data = SyntheticDetection(32, image_size=(96, 96), num_classes=2, max_objects=3)
    result = train_detector(model, data, iterations=40, batch_size=4, lr=0.02, progress=False)
    first, last = sum(result.loss_history[:8]) / 8, sum(result.loss_history[-8:]) / 8
    assert last < 0.85 * first, result.loss_history
    assert model.training  # the previous mode is restored
    metrics = coco_eval(model, SyntheticDetection(4, image_size=(96, 96), num_classes=2, seed=1), batch_size=4)
    assert set(metrics) == set(METRICS) and all(-1.0 <= v <= 1.0 for v in metrics.values())


def test_learning_rate_schedule():
    schedule = WarmupMultiStep(warmup_iters=4, warmup_factor=0.001, milestones=(6, 9), gamma=0.1)
    assert schedule(0) == pytest.approx(0.001)
    assert schedule(2) == pytest.approx(0.001 * 0.5 + 0.5)
    assert [schedule(i) for i in (4, 5, 6, 8, 9, 11)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    result = train_detector(tiny_detector(2), dataset(6), iterations=12, batch_size=2, lr=0.01, warmup_iters=4,
                            steps=(0.5, 0.75), progress=False)
    assert result.lr_history == pytest.approx([0.01 * schedule(i) for i in range(12)])
    default = train_detector(tiny_detector(2), dataset(6), iterations=1, batch_size=2, progress=False)
    assert default.lr_history == [pytest.approx(0.00125 * 2)]  # lr_per_image × batch_size; no warm-up in 1 step


def test_epochs_become_iterations_and_global_rng_is_left_alone():
    model_a = tiny_detector(2)
    torch.manual_seed(7)
    a = train_detector(model_a, dataset(5), epochs=2, batch_size=2, progress=False)  # 3 batches per epoch
    model_b = tiny_detector(2)
    torch.manual_seed(8)
    after = torch.get_rng_state()
    train_detector(model_b, dataset(5), epochs=2, batch_size=2, progress=False)
    assert torch.equal(torch.get_rng_state(), after)  # the caller's RNG is given back
    assert a.iteration == a.total_iterations == 6
    assert_same_weights(model_a, model_b)  # the run depends on `seed`, not on the caller's RNG


class CrowdFirst(SyntheticDetection):
    """The first object of every image is a crowd region."""

    def target(self, index):
        target = super().target(index)
        target["iscrowd"][:1] = 1
        return target

    def load(self, index):
        image, target = super().load(index)
        target["iscrowd"][:1] = 1
        return image, target


def test_callbacks_see_targets_without_crowd_regions():
    data = CrowdFirst(4, image_size=(96, 96), num_classes=2, max_objects=3)
    seen = []

    class Check:
        def on_step_start(self, step, images, targets, model):
            assert model.training and all(image.shape == (3, 96, 96) for image in images)
            for target in targets:
                assert (target["iscrowd"] == 0).all()
                full = data.target(target["image_id"])
                assert len(target["boxes"]) == len(full["boxes"]) - 1
                seen.append(target["image_id"])

    train_detector(tiny_detector(2), data, iterations=2, batch_size=2, callbacks=[Check()], progress=False)
    assert sorted(seen) == [0, 1, 2, 3]


class NotADetector(nn.Module):
    def __init__(self, loss: float | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.loss = loss

    def forward(self, images, targets):
        if self.loss is None:
            return [self.weight]
        return {"loss": self.weight * self.loss}


def test_bad_arguments_and_models(tmp_path: Path):
    data = dataset(4)
    message = "iterations, epochs: expected exactly one of them, got iterations=2, epochs=1"
    with pytest.raises(ValueError, match=message):
        train_detector(tiny_detector(2), data, iterations=2, epochs=1)
    message = "iterations, epochs: expected exactly one of them, got iterations=None, epochs=None"
    with pytest.raises(ValueError, match=message):
        train_detector(tiny_detector(2), data)
    with pytest.raises(ValueError, match="amp: True needs a CUDA device, got device='cpu'"):
        train_detector(tiny_detector(2), data, iterations=1, amp=True)
    message = r"steps: expected non-decreasing fractions of the schedule in \(0, 1\], got \(0.9, 0.5\)"
    with pytest.raises(ValueError, match=message):
        train_detector(tiny_detector(2), data, iterations=1, steps=(0.9, 0.5))
    with pytest.raises(TypeError, match="model: expected a dict of losses in train mode .* got list"):
        train_detector(NotADetector(), data, iterations=1, progress=False)
    with pytest.raises(FloatingPointError, match="step 0: the loss is nan"):
        train_detector(NotADetector(math.nan), data, iterations=1, progress=False)
    train_detector(tiny_detector(2), data, iterations=2, batch_size=2, checkpoint_dir=tmp_path, progress=False)
    message = r"last.pt: the checkpoint was written with batch_size=2 \(now 1\).*resume=False"
    with pytest.raises(ValueError, match=message):
        train_detector(tiny_detector(2), data, iterations=2, batch_size=1, checkpoint_dir=tmp_path, progress=False)
    fresh = train_detector(tiny_detector(2), data, iterations=2, batch_size=1, checkpoint_dir=tmp_path,
                           resume=False, progress=False)
    assert fresh.iteration == 2 and len(fresh.loss_history) == 2


def test_stop_training_before_a_step_skips_it(tmp_path: Path):
    class StopBefore:
        def on_step_start(self, step, images, targets, model):
            if step == 3:
                raise StopTraining

    result = train_detector(tiny_detector(2), dataset(6), iterations=6, batch_size=2, callbacks=[StopBefore()],
                            checkpoint_dir=tmp_path, progress=False)
    assert result.stopped_early and result.iteration == 3 and len(result.loss_history) == 3
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["iteration"] == 3
    resumed = train_detector(tiny_detector(2), dataset(6), iterations=6, batch_size=2, checkpoint_dir=tmp_path,
                             progress=False)
    assert resumed.iteration == 6 and not resumed.stopped_early


def test_resuming_needs_the_same_stateful_callbacks(tmp_path: Path):
    train_detector(tiny_detector(2), dataset(4), iterations=2, batch_size=2, callbacks=[ScaleImages()],
                   checkpoint_dir=tmp_path, max_steps_this_run=1, progress=False)
    message = r"last.pt: the checkpoint has 1 callback states, got 0 callbacks with state_dict"
    with pytest.raises(ValueError, match=message):
        train_detector(tiny_detector(2), dataset(4), iterations=2, batch_size=2, checkpoint_dir=tmp_path,
                       progress=False)


def test_a_step_of_several_passes_takes_their_mean_gradient():
    """train_step with passes: one optimizer step on the mean of the passes' gradients (each pass after
    before_pass(i)), the losses averaged over the passes (a loss missing from a pass counts 0)."""
    from crnas.train.loop import train_step

    class Fit(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
            self.target = torch.zeros(2, dtype=torch.float64)

        def forward(self, images, targets):
            losses = {"loss_fit": ((self.w - self.target) ** 2).sum()}
            if self.target.sum() > 0:
                losses["loss_extra"] = self.w.sum() * 0 + 1.0
            return losses

    model, aims = Fit(), [torch.tensor([0.0, 0.0], dtype=torch.float64), torch.tensor([3.0, 1.0], dtype=torch.float64)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    w = model.w.detach().clone()

    def before(i):
        model.target = aims[i]

    losses = train_step(model, [], [], optimizer, torch.amp.GradScaler("cpu", enabled=False), False, torch.device("cpu"), 0,
                        passes=2, before_pass=before)
    expected = w - 0.1 * sum(2 * (w - t) for t in aims) / 2
    torch.testing.assert_close(model.w.detach(), expected, rtol=0, atol=1e-15)
    fits = [float(((w - t) ** 2).sum()) for t in aims]
    assert losses["loss_fit"] == pytest.approx(sum(fits) / 2) and losses["loss_extra"] == pytest.approx(0.5)
    assert losses["loss"] == pytest.approx((fits[0] + fits[1] + 1.0) / 2)


def test_callbacks_ask_for_passes_and_see_each_one():
    """passes_per_step of one callback sets the passes of every step; on_pass_start runs before each pass,
    after on_step_start; two callbacks asking, or fewer than one pass, is an error."""
    from crnas.train.loop import step_passes

    class Passes:
        passes_per_step = 3

        def __init__(self) -> None:
            self.calls: list[tuple[str, int, int]] = []

        def on_step_start(self, step, images, targets, model):
            self.calls.append(("step", step, -1))

        def on_pass_start(self, step, index, model):
            assert model.training
            self.calls.append(("pass", step, index))

    sandwich = Passes()
    result = train_detector(tiny_detector(2), dataset(6), iterations=2, batch_size=2, callbacks=[sandwich, ScaleImages()], progress=False)
    assert result.iteration == 2 and all(math.isfinite(x) for x in result.loss_history)
    assert sandwich.calls == [(kind, s, i) for s in range(2) for kind, i in [("step", -1), ("pass", 0), ("pass", 1), ("pass", 2)]]
    assert step_passes([ScaleImages()]) == 1 and step_passes([sandwich, ScaleImages()]) == 3
    with pytest.raises(ValueError, match=r"callbacks: expected at most one with passes_per_step != 1, got \[\('Passes', 3\), \('Passes', 3\)\]"):
        step_passes([sandwich, Passes()])
    none = Passes()
    none.passes_per_step = 0
    with pytest.raises(ValueError, match="callbacks: expected passes_per_step >= 1, got 0 from Passes"):
        train_detector(tiny_detector(2), dataset(6), iterations=2, batch_size=2, callbacks=[none], progress=False)
