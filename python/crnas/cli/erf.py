"""Effective receptive fields of FPN levels, model against model (the paper's Fig. 1, docs/design.md#erf).

Writes DIR/erf.png (rows = models, columns = levels, anchor boxes drawn), DIR/erf_<model>.png,
DIR/erf.json and DIR/erf.csv (r50 / r90: radii holding 50% / 90% of the ERF; anchor_mass: its share
inside the level's 8 x stride anchor). Without --checkpoint the weights are random: the ERFs then
show the architecture's receptive-field structure, not what training made of it (the paper used
trained detectors).

Examples:
  crnas erf --arch resnet50 --arch scr_resnet50 --out runs/erf
  crnas erf --arch resnet50 --checkpoint runs/r50/last.pt --arch cr_resnet50 --checkpoint runs/cr50/last.pt --out runs/erf
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from crnas.cli.common import CLIUsageError, parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", action="append", required=True, help="a name, architecture JSON or result.json (repeat to compare)")
    parser.add_argument(
        "--checkpoint", action="append", help="detector state dict or crnas train's last.pt, one per --arch in order (default: random weights)"
    )
    parser.add_argument("--levels", nargs="+", default=["P3", "P4", "P5"], help="P2..P6 (FPN) or C2..C5 (backbone); default P3 P4 P5")
    parser.add_argument("--input", type=parse_size, default=(512, 512), metavar="HxW", help="input plate size (default 512, the paper's)")
    parser.add_argument("--n", type=int, default=8, help="inputs averaged (default 8)")
    parser.add_argument("--images", choices=("noise", "synthetic"), default="noise", help="Gaussian noise (default) or synthetic images")
    parser.add_argument("--width", type=float, help="override the width multiplier (must match a checkpoint's)")
    parser.add_argument("--fpn-channels", type=int, help="FPN width of random-weight models (default 256; read from checkpoints)")
    parser.add_argument("--gamma", type=float, default=1.0, help="colour-scale exponent of the maps (< 1 shows faint tails)")
    parser.add_argument("--dpi", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and the noise inputs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, type=Path, help="output directory")


def _label(spec: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(spec).stem if Path(spec).suffix == ".json" else spec)[:40]
    label, k = base, 2
    while label in taken:
        label, k = f"{base}_{k}", k + 1
    taken.add(label)
    return label


def run(args: argparse.Namespace) -> int:
    from crnas.analysis import erf_levels, erf_table, load_backbone, plot_erf
    from crnas.arch import get_architecture

    checkpoints = args.checkpoint or [None] * len(args.arch)
    if len(checkpoints) != len(args.arch):
        raise CLIUsageError(f"--checkpoint: expected one per --arch ({len(args.arch)}), got {len(checkpoints)}")
    if args.n < 1:
        raise CLIUsageError(f"--n: expected a positive int, got {args.n}")
    images = None
    if args.images == "synthetic":
        from crnas.data import SyntheticDetection

        images = SyntheticDetection(args.n, image_size=args.input, seed=args.seed)
    taken: set[str] = set()
    results, models = {}, {}
    for spec, checkpoint in zip(args.arch, checkpoints):
        arch = get_architecture(spec, width=args.width)
        label = _label(spec, taken)
        model = load_backbone(arch, checkpoint, fpn_channels=args.fpn_channels, seed=args.seed)
        results[label] = erf_levels(model, args.levels, input_size=args.input, images=images, n=args.n, device=args.device, seed=args.seed)
        models[label] = {"architecture": arch.to_dict(), "weights": str(checkpoint) if checkpoint else "random"}
    args.out.mkdir(parents=True, exist_ok=True)
    plot_erf(results, gamma=args.gamma, dpi=args.dpi, path=args.out / "erf.png")
    for label, per_level in results.items():
        plot_erf({label: per_level}, gamma=args.gamma, dpi=args.dpi, path=args.out / f"erf_{label}.png")
    table = erf_table(results)
    table.to_csv(args.out / "erf.csv", index=False)
    summary = {
        "input_size": list(args.input), "n": args.n, "inputs": args.images, "seed": args.seed,
        "models": {label: {**models[label], "levels": {lv: r.as_dict() for lv, r in per_level.items()}} for label, per_level in results.items()},
    }
    (args.out / "erf.json").write_text(json.dumps(summary, indent=2) + "\n")
    random = [label for label, m in models.items() if m["weights"] == "random"]
    if random:
        print(f"weights: random for {', '.join(random)} (no --checkpoint): the ERFs show the architecture's receptive-field "
              "structure, not a trained detector's (the paper's Fig. 1 used trained detectors)")
    print(table.to_string(index=False))
    print(f"figures and numbers: {args.out}")
    return 0
