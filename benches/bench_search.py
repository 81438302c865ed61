"""Benchmark the search's inner loops (run by hand, not a test).

1. One greedy dilation step: its 9 candidates scored together (one pass, per-image paths through the
   fused convolution) vs one by one (each with its own BatchNorm recalibration), same random
   completions; time ratio and how close the APs are.
2. Operation-supernet training steps with per-image paths (one fused call per block) vs per-batch
   paths (the paper's single-path sampling, plain convolutions); median step time.

Settings follow the demo preset (ResNet50 at width 0.25, 192-px images, small heads) unless overridden.

    python benches/bench_search.py [--threads 2] [--steps 20] [--width 0.25] [--size 192]
"""

from __future__ import annotations

import argparse
import statistics
import time

import crnas
import torch
from crnas.data import SyntheticDetection, split
from crnas.search import PathSampler, Scorer, preset, supernet_of
from crnas.search.driver import supernet_detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--images", type=int, default=160)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = preset("demo", width=args.width, min_size=args.size, max_size=int(args.size * 4 / 3))
    dataset = SyntheticDetection(args.images, image_size=(int(args.size * 4 / 3),) * 2, seed=0)
    archtrain, archval = split(dataset, config.val_fraction, 0)
    model = supernet_detector(config, config.space(), len(dataset.classes) + 1)
    supernet = supernet_of(model)
    supernet.set_allocation([1, 3, 5, 7])
    print(f"crnas {crnas.__version__}, torch {torch.__version__}, {args.threads} threads; ResNet50 supernet width {args.width}, "
          f"{args.size}-px images, archval {len(archval)} images in batches of {config.eval_batch_size}, "
          f"recalibration {config.recal_batches} batches")

    scorer = Scorer(model, archtrain, archval, config.eval_batch_size, config.recal_batches, 0)
    prefixes = [[a, b] for a in (1, 2, 3) for b in (1, 2, 3)]  # a step-2 beam of 3 x 3 dilations
    scorer.score_candidates(prefixes[:1], 1, joint=True)  # warm-up
    t0 = time.perf_counter()
    joint = scorer.score_candidates(prefixes, 1, joint=True)
    t_joint = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = scorer.score_candidates(prefixes, 1, joint=False)
    t_single = time.perf_counter() - t0
    diff = max(abs(a["AP"] - b["AP"]) for a, b in zip(joint, single))
    print(f"greedy step, 9 candidates: together {t_joint:.2f} s, one by one {t_single:.2f} s "
          f"-> {t_single / t_joint:.2f}x faster together (max AP difference {diff:.4f}: shared vs per-candidate BN statistics)")

    images, targets = zip(*(archtrain[i] for i in range(config.batch_size)))
    images = list(images)
    targets = [{k: t[k] for k in ("boxes", "labels")} for t in targets]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    model.train()
    times: dict[str, list[float]] = {"per-image paths (fused op)": [], "per-batch paths (plain conv)": []}
    samplers = {"per-image paths (fused op)": PathSampler(0, per_sample=True), "per-batch paths (plain conv)": PathSampler(0, per_sample=False)}
    for step in range(args.steps + 2):
        for name, sampler in samplers.items():
            sampler.on_step_start(step, images, targets, model)
            t0 = time.perf_counter()
            loss = sum(model(images, targets).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step >= 2:
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["per-batch paths (plain conv)"])
    for name, values in times.items():
        print(f"supernet step, batch {config.batch_size}, {name}: {statistics.median(values) * 1e3:.0f} ms "
              f"({statistics.median(values) / base:.2f}x per-batch)")


if __name__ == "__main__":
    main()
