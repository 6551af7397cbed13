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
