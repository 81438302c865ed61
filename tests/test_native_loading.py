"""Import contract: `import crnas` works without a usable native core; native calls then raise
one clear error naming both torch versions."""

import subprocess
import sys
import textwrap

import crnas
import torch
from crnas._native import built_for_torch


def test_core_is_loaded_and_matches_torch():
    assert crnas.native_available()
    from crnas._native import core

    assert core().__torch_version__.split("+")[0] == torch.__version__.split("+")[0]
    assert built_for_torch() is not None and built_for_torch().split("+")[0] == torch.__version__.split("+")[0]


def test_import_survives_a_torch_version_mismatch():
    script = textwrap.dedent(
        """
        import torch
        torch.__version__ = "1.99.0+cu130"  # pretend the user has another torch
        import crnas
        from crnas.ops import reference
        assert not crnas.native_available()
        x, w, mix = torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3), torch.ones(3)
        assert reference.multi_dilation_conv2d(x, w, mix).shape == (1, 2, 5, 5)
        try:
            crnas.ops.multi_dilation_conv2d(x, w, mix)
        except crnas.NativeCoreUnavailable as err:
            print(err)
        else:
            raise SystemExit("the native op ran against a mismatched torch")
        import crnas.analysis, crnas.detection, crnas.arch  # importable; only using the core fails
        for use in (lambda: crnas.Architecture.paper("cr_resnet50"), lambda: crnas.StageSpace("resnet50", [[1]] * 4),
                    lambda: len(crnas.arch.DILATIONS), lambda: "resnet50" in crnas.arch.FAMILIES):
            try:
                use()
            except crnas.NativeCoreUnavailable:
                pass
            else:
                raise SystemExit("a native class or constant worked without the core")
        assert not isinstance(object(), crnas.Architecture)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert f"built for torch {built_for_torch()}" in out
    assert "torch 1.99.0+cu130 is installed" in out
