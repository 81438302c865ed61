"""scripts/gpu-check.py on the CPU paths (the GPU run itself needs a CUDA machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_every_check_on_cpu(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu-check.py"), "--device", "cpu", "--quick", "--reps", "1", "--iterations", "1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((out / "gpu-check.json").read_text())
    checks = {c["name"]: c for c in data["checks"]}
    assert len(checks) == 10 and all(c["passed"] for c in checks.values())
    assert data["environment"]["core_built_for_torch"].split("+")[0] == data["environment"]["torch"].split("+")[0]
    bench = checks["benchmark"]["details"]
    assert {r["mix"] for r in bench["rows"]} == {"softmax", "onehot"} and all(r["fused_ms"] > 0 for r in bench["rows"])
    assert all(r["grouped_ms"] > 0 for r in bench["rows"] if r["mix"] == "onehot")
    cost = checks["search cost (paper preset)"]["details"]
    projection = cost["projection"]
    phases = ("stage_supernet", "stage_search", "op_supernet", "dilation_search_joint")
    assert all(projection[p]["1gpu_wall_h"] > projection[p]["8gpu_wall_h"] > 0 for p in phases)
    assert abs(projection["total"]["8gpu_gpu_hours"] - sum(projection[p]["8gpu_gpu_hours"] for p in phases)) < 1e-9
    assert projection["assumptions"]["dilation_candidates"] == 3 + 15 * 9  # 16 blocks, beam 3, dilations 1, 2, 3
    assert checks["inference latency"]["details"]["rows"]
    markdown = (out / "gpu-check.md").read_text()
    assert markdown.startswith("# crnas GPU check") and "| benchmark | pass |" in markdown
    assert "Projected COCO search" in markdown and "Backbone inference latency" in markdown
