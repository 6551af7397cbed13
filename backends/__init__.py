"""One small module per array library, installed as `einvjp.backends`.

* `numpy`, `torch`, `jax`: each makes its `Backend` (`einvjp.backend`),
  `BACKEND`: the operations a lowered step runs (`einvjp.ops`), its kernels,
  its declared capabilities and autodiff hook; imported on first use;
* `_array_api`: the kernels NumPy and JAX share, written against `xp`;
* `_torch_kernels`: PyTorch's kernels;
* `_torch_program`: PyTorch's autograd Function for a whole program.
"""

import importlib as _importlib


def __getattr__(name):
    """`einvjp.backends.<name>`, imported on first use (`einvjp.backend.load`)."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _importlib.import_module(f"{__name__}.{name}")
