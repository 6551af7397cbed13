"""Backends: what one declares, and choosing one from the operands' types.

* `Backend`: the operations a lowered step runs, the kernels of the
  primitives, and declared capabilities (no probing, no name checks);
* `backend_for(operands)`: the backend of some arrays (no array library is
  imported until an operand of it arrives);
* `Entry`: a public function of arrays, called through `Backend.call`, so
  that a library's graph capture (torch.compile) records the array
  operations it runs and never reads the planning around them.

>>> import numpy as np
>>> backend_for([np.ones(2), 3.0]).name
'numpy'
"""

from __future__ import annotations

import sys

from . import backends
from .errors import BackendError


class Backend:
    """One array library, as the compiler sees it.  Each module of
    `einvjp.backends` makes one instance, `BACKEND`.

    Declared capabilities (class attributes):

    * `name` — the library;
    * `staged` — a call may be a trace compiled once (jax.jit): code written
      for a signature runs on that very call;
    * `numbers_vary` — a program's Python numbers may become arguments of
      its code (written once for every value);
    * `numbers_as_arrays` — elementwise kernels take numbers as arrays (of
      the operands' dtype), not as Python numbers;
    * `scalar_constants` — `scalar(value, like)` makes a constant its ops
      read faster than a Python number (torch's 0-d tensor);
    * `autodiff` — `differentiable(rule)` plugs a program into the
      library's own autodiff; `apply(plan, arrays)` does so for one GE.

    Operations a lowered step runs (`einvjp.ops`): transpose, reshape,
    matmul, multiply, add, subtract, sum, swap_last, scale, broadcast_to,
    diagonal, diag_embed, add_product, add_matmul.  A sliced contraction
    (`einvjp.slicing`) also runs `index(x, {axis: position})` (a view where
    the library has them) and `add_at(acc, {axis: position}, x)` (in place
    where the library allows it).  `kernels` maps each
    primitive's name to its function on this library's arrays.
    """
    name = ""
    staged = False
    numbers_vary = False
    numbers_as_arrays = True
    scalar_constants = False
    autodiff = False
    kernels: dict = {}

    def __repr__(self):
        return f"<einvjp backend {self.name}>"

    def add_product(self, acc, a, b, c):
        """acc + c a b."""
        ab = self.multiply(a, b)
        return self.add(acc, ab if c == 1 else self.scale(ab, c))

    def add_matmul(self, acc, a, b, c):
        """acc + c a @ b."""
        ab = self.matmul(a, b)
        return self.add(acc, ab if c == 1 else self.scale(ab, c))

    def tracing(self):
        """Is a graph capture (torch.compile) tracing the call being made?
        Code written for a traced call holds no array constants (see
        `scalar`), and code is written per answer."""
        return False

    def call(self, entry, *args, **kwargs):
        """`entry.fn(*args, **kwargs)`, an `Entry` called on this library's
        arrays: where the library captures graphs by reading Python
        (torch.compile), the capture calls it as one opaque function and
        records only the array operations it runs."""
        return entry.fn(*args, **kwargs)

    def apply(self, plan, arrays):
        """A planned GE on these arrays (a backend with autodiff records it)."""
        return plan(self, arrays)

    def writeable(self, x):
        """A result handed back to the caller."""
        return x

    def scalar(self, value, like):
        return value

    def differentiable(self, rule):
        raise BackendError(f"the {self.name} backend has no autodiff of its own")

    def full(self, shape, value, like):
        """An array of `shape` filled with `value`, in `like`'s dtype (an
        array, or None for the library's default)."""
        raise NotImplementedError

    def zeros_like(self, x):
        raise NotImplementedError

    def owner(self, x):
        """What an array's memory belongs to (arrays of different owners
        never share memory): by default each array its own."""
        return id(x)

# The top-level module of an array type -> the backend module that runs it.
_MODULES = {"numpy": "numpy", "torch": "torch", "jax": "jax", "jaxlib": "jax"}

# Each library's array types, by the module that defines them (a library not
# imported yet has no arrays): (backend, module, type names).
_ARRAYS = (("torch", "torch", ("Tensor",)), ("jax", "jax", ("Array",)),
           ("numpy", "numpy", ("ndarray", "generic")))

_PYTHON = (int, float, complex, str, list, tuple, dict, type(None), type(Ellipsis))


_LIBRARY = {}  # type -> backend name, for `backend_for` (no graph capture reads it: `caller`)


def library_of(x) -> str:
    """The backend name for one operand ("python" for scalars and lists)."""
    kind = type(x)
    name = _LIBRARY.get(kind)
    if name is None:
        name = _LIBRARY[kind] = _library(kind)
    return name


def _library(kind) -> str:
    """`library_of` an instance of `kind`, decided afresh: by `issubclass`
    against the array types of each library imported, any other type by the
    top-level module it comes from.  torch.compile reads this (see `caller`)
    and can read neither the `__module__` of every class
    (`torch.nn.Parameter`'s) nor a cache that the call it records changes."""
    # A Python number of a NumPy type (float64 subclasses float) goes with anything too.
    if issubclass(kind, _PYTHON):
        return "python"
    for name, module, types in _ARRAYS:
        library = sys.modules.get(module)
        if library is not None:
            for t in types:
                if issubclass(kind, getattr(library, t)):
                    return name
    top = kind.__module__.partition(".")[0]
    return _MODULES.get(top, top)


def caller(values) -> Backend:
    """The backend whose `call` runs a public function given `values`: that
    of the first array among them (NumPy's when there is none; the function
    itself checks that the others go with it).  What a graph capture
    (torch.compile) reads before the call, so decided afresh each time."""
    for x in values:
        name = _library(type(x))
        if name != "python":
            return load(name)
    return load("numpy")


def load(name: str) -> Backend:
    """The `Backend` of the module `einvjp.backends.<name>`: an attribute of
    the package, imported on first use (see `einvjp.backends.__getattr__`),
    which torch.compile reads where it refuses `importlib`."""
    try:
        return getattr(backends, name).BACKEND
    except (AttributeError, ModuleNotFoundError) as err:
        raise BackendError(f"no einvjp backend for arrays of type {name!r}") from err


class Entry:
    """A public function of arrays and plain values (numbers, strings,
    lists, dicts), `fn`, made once outside any traced code and called as
    `caller(arrays).call(entry, ...)`.  Equal only to itself: a
    library's graph capture may keep it as a constant and check that it is
    the same one on the next call."""
    __slots__ = ("fn", "__weakref__")

    def __init__(self, fn):
        self.fn = fn

    def __eq__(self, other):
        return self is other

    __hash__ = object.__hash__

    def __repr__(self):
        return f"Entry({getattr(self.fn, '__qualname__', self.fn)!r})"


def backend_for(operands) -> Backend:
    """The backend of the operands.  Python scalars go with anything
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


def basic_index(positions, rank) -> tuple:
    """The index of fixed positions of some axes ({axis: position}), every
    other axis whole: `x[basic_index(...)]` is a view in NumPy and torch.

    >>> basic_index({1: 2}, 3)
    (slice(None, None, None), 2, slice(None, None, None))
    """
    return tuple(positions.get(a, slice(None)) for a in range(rank))


def shape_of(x) -> tuple:
    """An array's shape as a tuple of Python ints."""
    return tuple(int(d) for d in x.shape)


def unshared(B, results, given):
    """The results, each copied where it shares memory with a `given` array
    or an earlier result (the cotangent itself is the gradient of "ij->ij").
    Only arrays on the same buffer (`B.owner`) are compared: linear in the
    number of arrays, not quadratic."""
    groups = {}
    for x in given:
        groups.setdefault(B.owner(x), []).append(x)
    out = []
    for g in results:
        if g is not None:
            if any(B.shares_memory(g, o) for o in groups.get(B.owner(g), ())):
                g = B.copy(g)
            groups.setdefault(B.owner(g), []).append(g)
        out.append(g)
    return out
