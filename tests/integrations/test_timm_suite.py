"""timm's own model tests (``tests/test_models.py`` of the installed timm release, from its sdist) pass for
every model crnas registers.

``scripts/fetch-timm-tests.sh`` fetches the file once into a cache outside the repository (make test
does it ahead); the file runs in a subprocess (it changes TorchScript's global executor settings) with
``timm_suite_plugin`` selecting crnas's models.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import crnas.integrations.timm as crnas_timm

HERE = Path(__file__).resolve().parent
FETCH = HERE.parents[1] / "scripts" / "fetch-timm-tests.sh"

#: The tests of timm 1.0.31's test_models.py that take every registered model (the others are
#: parametrized over timm's own model modules or fixed model names).
TESTS = (
    "test_model_forward",
    "test_model_backward",
    "test_model_default_cfgs",
    "test_model_forward_torchscript",
    "test_model_forward_features",
    "test_model_forward_fx",
    "test_model_backward_fx",
    "test_model_forward_fx_torchscript",
)


def _outcomes(report: Path) -> dict[tuple[str, str], str]:
    """``{(test, model): 'passed' | 'failed' | 'skipped' | 'error'}`` from a JUnit XML report."""
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        match = re.fullmatch(r"(\w+)\[\d+-(\w+)\]", case.get("name", ""))
        assert match, f"unexpected test id {case.get('name')!r}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[match.groups()] = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(
            kinds[0] if kinds else "", "passed"
        )
    return outcomes


def test_timm_model_suite_passes_for_every_crnas_model(tmp_path):
    fetched = subprocess.run(
        [str(FETCH)], env=dict(os.environ, PYTHON=sys.executable), capture_output=True, text=True, timeout=600
    )
    assert fetched.returncode == 0, f"{FETCH} (fetches timm's tests from its sdist) failed:\n{fetched.stderr}"
    suite = Path(fetched.stdout.strip())
    report = tmp_path / "report.xml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    env.pop("GITHUB_ACTIONS", None)  # the file drops its FX + TorchScript test on GitHub's runners; run all of it
    command = [
        sys.executable, "-m", "pytest", str(suite / "test_models.py"), "--rootdir", str(suite),
        "-p", "timm_suite_plugin", "-p", "no:cacheprovider", "-q", "-W", "ignore::pytest.PytestUnknownMarkWarning",
        f"--junitxml={report}",
    ]  # fmt: skip
    run = subprocess.run(command, cwd=suite, env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, f"timm's test_models.py failed for crnas's models:\n{run.stdout[-8000:]}\n{run.stderr[-2000:]}"
    outcomes = _outcomes(report)
    assert {model for _, model in outcomes} == set(crnas_timm.MODEL_NAMES)
    assert {test for test, _ in outcomes} >= set(TESTS)
    missing = [(test, model) for test in TESTS for model in crnas_timm.MODEL_NAMES if outcomes.get((test, model)) != "passed"]
    assert not missing, f"not passed: {missing}"
