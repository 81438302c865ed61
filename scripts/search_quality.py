"""Search-quality experiment: train the baseline allocation and a searched one under the same budget
and schedule, several seeds each, and report COCO AP (mean ± std) and MACs.

    python scripts/search_quality.py runs/demo/result.json --seeds 0 1 2 --iterations 1000 --out runs/quality

Both detectors are built exactly alike (the result's width and detector settings), trained from
scratch on the same synthetic training set with :func:`crnas.train.train_detector` and evaluated
with :func:`crnas.eval.coco_eval` on a held-out set of the same distribution that the search never
saw (a different data seed). Prints a Markdown table; ``--out`` keeps checkpoints and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    from crnas.data.spec import load_dataset
    from crnas.detection import build_detector
    from crnas.eval import coco_eval
    from crnas.search.result import SearchResult
    from crnas.train import train_detector

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result", type=Path, help="a search's result.json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--train-images", type=int, default=600)
    ap.add_argument("--val-images", type=int, default=150)
    ap.add_argument("--data-seed", type=int, default=101, help="seed of the fresh synthetic data (not the search's)")
    ap.add_argument("--out", type=Path, default=Path("runs/quality"))
    args = ap.parse_args()

    result = SearchResult.load(args.result)
    config = result.config
    if config.data.get("kind") != "synthetic":
        raise SystemExit(f"result: expected a search on synthetic data, got {config.data.get('kind')!r} data")
    # the search's synthetic data (image size, size mix) at data seeds it never saw
    train_set = load_dataset({**config.data, "num_images": args.train_images, "seed": args.data_seed})
    val_set = load_dataset({**config.data, "num_images": args.val_images, "seed": args.data_seed + 1})
    rows = []
    # the search counted both MACs at config.macs_input with the detector's convention
    for name, arch, macs in (("baseline", result.baseline, result.macs.baseline), ("searched", result.architecture, result.macs.found)):
        aps = []
        for seed in args.seeds:
            run_dir = args.out / f"{name}-seed{seed}"
            torch.manual_seed(seed)
            model = build_detector(
                config.detector, arch, num_classes=len(train_set.classes) + 1, fpn_channels=config.fpn_channels,
                representation_size=config.representation_size, min_size=config.min_size, max_size=config.max_size,
                **config.detector_kwargs,
            )
            t0 = time.time()
            train_detector(
                model, train_set, iterations=args.iterations, batch_size=config.batch_size, lr_per_image=config.lr_per_image,
                warmup_iters=config.lr_warmup, seed=seed, checkpoint_dir=run_dir, checkpoint_every=200, progress=False,
            )
            metrics = coco_eval(model, val_set, batch_size=config.eval_batch_size)
            aps.append(metrics)
            print(f"{name} seed {seed}: AP {100 * metrics['AP']:.2f} (AP50 {100 * metrics['AP50']:.2f}) in {time.time() - t0:.0f} s", flush=True)
        rows.append({"model": name, "blocks": arch.blocks, "dilations": arch.stage_dilations, "macs": macs, "runs": aps})
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"result": str(args.result), "args": vars(args) | {"out": str(args.out), "result": str(args.result)}, "rows": rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print()
    macs_header = f"GMACs ({config.detector}, {config.macs_input[0]}x{config.macs_input[1]})"
    print(f"| model | blocks | dilations | {macs_header} | AP | AP50 | APs | APm | APl |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        dil = " \\| ".join(" ".join(map(str, s)) for s in r["dilations"])
        stats = " | ".join(mean_std(r["runs"], key) for key in ("AP", "AP50", "APs", "APm", "APl"))
        print(f"| {r['model']} | {r['blocks']} | {dil} | {r['macs'] / 1e9:.2f} | {stats} |")


def mean_std(runs: list[dict[str, float]], key: str) -> str:
    """``mean ± std`` in percent over the runs (pycocotools' -1, no ground truth, left out)."""
    values = [100 * m[key] for m in runs if m[key] >= 0]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


if __name__ == "__main__":
    main()
