"""Start-up: lazy imports and the first-run compile notice (each check in a fresh process)."""

from __future__ import annotations

import os
import subprocess
import sys

import selfinterp
from selfinterp._core._notice import MESSAGE

HEAVY = ("numba", "xarray", "scipy", "pandas", "jax", "torch", "transformers", "openai", "httpx",
         "matplotlib", "numpy")


def _python(code, **env):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return out


def test_cli_parser_and_package_import_nothing_heavy():
    code = ("import sys, selfinterp, selfinterp.cli; selfinterp.cli.build_parser(); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert _python(code).stdout.strip() == "[]"


def test_lazy_names_are_the_public_api():
    for name in selfinterp.__all__:
        assert getattr(selfinterp, name) is not None
        assert name in dir(selfinterp)
    from selfinterp.logit import fit_logit

    assert selfinterp.fit_logit is fit_logit
    assert selfinterp.design.draw_target_weights is not None
    assert selfinterp.logit.fit_logit is fit_logit  # submodules as attributes, as before
    try:
        selfinterp.no_such_name
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_compile_notice_on_a_cold_cache_only(tmp_path):
    """One line on stderr when a kernel is compiled; nothing when it comes from the cache."""
    code = ("import numpy as np; from selfinterp._core.rng import mix64, mix64_np; "
            "z = np.arange(3, dtype=np.uint64); np.seterr(over='ignore'); "
            "print(all(mix64(x) == y for x, y in zip(z, mix64_np(z))))")
    cold = _python(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert cold.stdout.strip() == "True"
    assert cold.stderr.splitlines() == [MESSAGE]
    assert "first run only" in MESSAGE
    warm = _python(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert warm.stdout.strip() == "True"
    assert warm.stderr == ""


def test_masked_unmasked_and_fused_fits_share_one_compiled_kernel():
    """fit_logit with and without a mask and simulate_and_fit run one compiled kernel per P
    (each further signature would be a further first-run compilation), with equal results."""
    import numpy as np
    from numba import types

    from selfinterp._core import logit_numba as ln

    w = np.random.default_rng(0).normal(0, 1, (130, 5))
    X, y = selfinterp.simulate_choices(w, 20, rng=1)
    plain = selfinterp.fit_logit(X, y)
    masked = selfinterp.fit_logit(X, y, mask=np.ones(y.shape, dtype=bool))
    fused = selfinterp.simulate_and_fit(w, 20, rng=1)
    np.testing.assert_array_equal(plain.coef, masked.coef)
    np.testing.assert_array_equal(plain.coef, fused.coef)
    tag6 = types.UniTuple(types.int64, 6)
    assert len([s for s in ln._fit_worker.signatures if s[0] == tag6]) == 1
