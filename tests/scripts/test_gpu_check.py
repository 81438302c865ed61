"""scripts/gpu-check.py on the CPU paths (the GPU run itself needs a CUDA machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_every_check_on_cpu(tmp_path):
    report = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu-check.py"), "--device", "cpu", "--quick", "--reps", "1", "--report", str(report)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(report.with_suffix(".json").read_text())
    names = [c["name"] for c in data["checks"]]
    assert len(names) == 7 and all(c["passed"] for c in data["checks"])
    assert data["environment"]["core_built_for_torch"].split("+")[0] == data["environment"]["torch"].split("+")[0]
    bench = next(c for c in data["checks"] if c["name"] == "benchmark")["details"]
    assert {r["mix"] for r in bench["rows"]} == {"softmax", "onehot"} and all(r["fused_ms"] > 0 for r in bench["rows"])
    markdown = report.with_suffix(".md").read_text()
    assert markdown.startswith("# crnas GPU check") and "| benchmark | pass |" in markdown
