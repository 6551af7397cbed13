"""Choosing a backend from the operands' types (no array library imported
until an operand of it arrives).

>>> import numpy as np
>>> backend_for([np.ones(2), 3.0]).name
'numpy'
"""

from __future__ import annotations

import importlib

from .errors import BackendError

# The top-level module of an array type -> the backend module that runs it.
_MODULES = {"numpy": "numpy", "torch": "torch", "jax": "jax", "jaxlib": "jax"}


_LIBRARY = {}  # type -> backend name; a dict lookup that torch.compile traces


def library_of(x) -> str:
    """The backend name for one operand ("python" for scalars and lists)."""
    kind = type(x)
    name = _LIBRARY.get(kind)
    if name is None:
        top = kind.__module__.split(".")[0]
        # A Python number of a NumPy type (float64 subclasses float) goes with anything too.
        number = top == "builtins" or issubclass(kind, (int, float, complex))
        name = _LIBRARY[kind] = "python" if number else _MODULES.get(top, top)
    return name


_LOADED = {}  # backend name -> module (a dict, again so that torch.compile traces it)


def load(name: str):
    module = _LOADED.get(name)
    if module is None:
        try:
            module = _LOADED[name] = importlib.import_module(f"einvjp.backends.{name}")
        except ModuleNotFoundError as err:
            raise BackendError(f"no einvjp backend for arrays of type {name!r}") from err
    return module


def backend_for(operands):
    """The backend module of the operands.  Python scalars go with anything
    and NumPy arrays go with JAX (as constants, like `jnp.einsum`); any
    other mix of array libraries is an error naming the operands."""
    names = {}
    for k, x in enumerate(operands):
        names.setdefault(library_of(x), []).append(k)
    names.pop("python", None)
    if "jax" in names:
        names.pop("numpy", None)
    if len(names) > 1:
        detail = "; ".join(f"operand(s) {ks} are {n}" for n, ks in names.items())
        raise BackendError(f"operands come from different array libraries: {detail}")
    return load(next(iter(names), "numpy"))
