import contextlib
import os
import sys

import pytest

# `tests/corpus.py` is imported as a plain module by the test files.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def jax_x64():
    """jax with float64/complex128 enabled for the test only (as a context,
    so that other tests keep JAX's default); skipped without jax."""
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        yield jax


@contextlib.contextmanager
def jax_fast_x64():
    """float64 on and XLA's optimizations off (they cost compile time, not
    accuracy), restored afterwards: for a whole jax test module."""
    import jax
    flags = {"jax_enable_x64": True, "jax_disable_most_optimizations": True,
             "jax_optimization_level": "O0"}
    previous = {flag: jax.config.values[flag] for flag in flags}
    for flag, value in flags.items():
        jax.config.update(flag, value)
    try:
        yield
    finally:
        for flag, value in previous.items():
            jax.config.update(flag, value)
