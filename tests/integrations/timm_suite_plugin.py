"""pytest plugin for timm's own ``tests/test_models.py`` (run by ``test_timm_suite.py``): registers crnas's
models with timm before that file is collected, and keeps only the tests of those models."""

import crnas.integrations.timm as crnas_timm
import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        model = callspec.params.get("model_name") if callspec is not None else None
        (keep if model in crnas_timm.MODEL_NAMES else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
