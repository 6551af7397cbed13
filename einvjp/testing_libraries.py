"""Running a user's differentiable function in its library (a test extra).

- `library(fn, backend=None)`: "numpy" for a (forward, vjp) pair, else "torch"
  or "jax", told from `fn` (its type, what it is bound to or wraps, the
  globals and closure its code names)
- `runner(library)`: `forward(fn, values, wrt)` -> (state, outputs),
  `backward(state, cotangents)` -> gradients, and for torch and jax
  `second(fn, values, wrt, cotangents, ws)` -> (the gradient of Σ ⟨w,
  gradient⟩ with respect to the inputs `wrt` and the cotangents, the
  positions of gradients autodiff sees as constants); NumPy arrays in and out

>>> library(np.sin, "torch"), library((np.sin, np.cos))
('torch', 'numpy')
"""

from __future__ import annotations

import types

import numpy as np

from .testing_linear import float64_array

_LIBRARIES = ("numpy", "torch", "jax")


def library(fn, backend=None):
    """"numpy", "torch" or "jax": `backend` if given, else told from `fn`."""
    if backend is not None:
        if backend not in _LIBRARIES:
            raise ValueError(f"check_backward: backend is one of {', '.join(_LIBRARIES)}, "
                             f"not {backend!r}")
        return backend
    if isinstance(fn, (tuple, list)):
        if len(fn) != 2 or not all(callable(f) for f in fn):
            raise TypeError("check_backward: a NumPy fn is a pair (forward, vjp)")
        return "numpy"
    found = {lib for obj in _objects(fn) for lib in [_library_of(obj)] if lib}
    if len(found) == 1:
        return found.pop()
    raise TypeError("check_backward: cannot tell whether fn is a torch or a jax function; "
                    "pass backend='torch' or backend='jax' (or a (forward, vjp) pair for "
                    "NumPy)")


def _objects(fn):
    """`fn`, what it is bound to or wraps, and the globals and closure its code names."""
    seen = [fn, getattr(fn, "__self__", None), getattr(fn, "__func__", None),
            getattr(fn, "func", None)]  # a method, a functools.partial
    inner = fn
    while hasattr(inner, "__wrapped__"):
        inner = inner.__wrapped__
        seen.append(inner)
    code = getattr(inner, "__code__", None)
    if code is not None:
        names = getattr(inner, "__globals__", {})
        seen += [names[n] for n in code.co_names if n in names]
        seen += [c.cell_contents for c in (inner.__closure__ or ()) if _filled(c)]
    return [obj for obj in seen if obj is not None]


def _filled(cell):
    try:
        cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return True


def _library_of(obj):
    """The library an object belongs to: a module by its name, a class by its
    bases' modules, anything else by its type's."""
    if isinstance(obj, types.ModuleType):
        modules = [obj.__name__]
    elif isinstance(obj, type):
        modules = [k.__module__ for k in obj.__mro__]
    elif isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        modules = [getattr(obj, "__module__", None) or ""]
    else:
        modules = [k.__module__ for k in type(obj).__mro__]
    roots = {m.split(".")[0] for m in modules}
    return "torch" if "torch" in roots else "jax" if roots & {"jax", "jaxlib"} else None


def runner(library):
    """The runner of a library: `forward`, `backward` and (torch, jax) `second`."""
    return {"numpy": _NumPyRun, "torch": _TorchRun, "jax": _JaxRun}[library]()


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


class _NumPyRun:
    """A (forward, vjp) pair: `vjp(cotangent, *inputs)`, one gradient per input."""

    def forward(self, fn, values, wrt):
        return (fn[1], values, wrt), [float64_array(y) for y in _outputs(fn[0](*values))]

    def backward(self, state, cts):
        vjp, values, wrt = state
        grads = vjp(tuple(cts) if len(cts) > 1 else cts[0], *values)
        grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
        return [grads[k] for k in wrt] if len(grads) == len(values) != len(wrt) else grads


class _TorchRun:
    """Autograd: `torch.autograd.grad`, with `create_graph` for order 2."""

    def __init__(self):
        import torch
        self.torch = torch

    def forward(self, fn, values, wrt):
        T = self.torch
        args = [T.tensor(v, requires_grad=k in wrt) if isinstance(v, np.ndarray) else v
                for k, v in enumerate(values)]
        outs = _outputs(fn(*args))
        return ([args[k] for k in wrt], outs), [float64_array(y) for y in outs]

    def _grads(self, state, cts, create_graph):
        leaves, outs = state
        cts = [self.torch.tensor(c, requires_grad=create_graph) for c in cts]
        live = [(y, c) for y, c in zip(outs, cts) if y.requires_grad]
        grads = self.torch.autograd.grad(
            [y for y, _ in live], leaves, [c for _, c in live], create_graph=create_graph,
            allow_unused=True) if live and leaves else [None] * len(leaves)
        return [self.torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)], cts

    def backward(self, state, cts):
        return [float64_array(g) for g in self._grads(state, cts, False)[0]]

    def second(self, fn, values, wrt, cts, ws):
        state, _ = self.forward(fn, values, wrt)
        grads, cts = self._grads(state, cts, True)
        live = [(g, self.torch.tensor(w)) for g, w in zip(grads, ws) if g.requires_grad]
        targets = state[0] + cts
        second = self.torch.autograd.grad([g for g, _ in live], targets, [w for _, w in live],
                                          allow_unused=True) if live else [None] * len(targets)
        constant = [k for k, g in enumerate(grads) if not g.requires_grad]
        return [np.zeros(x.shape) if g is None else float64_array(g)
                for x, g in zip(targets, second)], constant


class _JaxRun:
    """`jax.vjp` in float64; order 2 is the VJP of the VJP."""

    def __init__(self):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp

    def _function(self, fn, values, wrt):
        """`fn` of the differentiated inputs alone, and those inputs, as jax arrays."""
        args = [self.jnp.asarray(v) if isinstance(v, np.ndarray) else v for v in values]

        def f(*xs):
            given = list(args)
            for k, x in zip(wrt, xs):
                given[k] = x
            return fn(*given)
        return f, [args[k] for k in wrt]

    def forward(self, fn, values, wrt):
        with self.jax.enable_x64(True):
            f, xs = self._function(fn, values, wrt)
            out, pullback = self.jax.vjp(f, *xs)
            return (out, pullback), [float64_array(y) for y in _outputs(out)]

    def _pull(self, out, pullback, cts):
        return pullback(type(out)(cts) if isinstance(out, (tuple, list)) else cts[0])

    def backward(self, state, cts):
        with self.jax.enable_x64(True):
            grads = self._pull(*state, [self.jnp.asarray(c) for c in cts])
            return [float64_array(g) for g in grads]

    def second(self, fn, values, wrt, cts, ws):
        jax, jnp = self.jax, self.jnp
        with jax.enable_x64(True):
            f, xs = self._function(fn, values, wrt)

            def gradients(xs, cts):
                return tuple(self._pull(*jax.vjp(f, *xs), cts))
            _, pullback = jax.vjp(gradients, xs, [jnp.asarray(c) for c in cts])
            dxs, dcs = pullback(tuple(jnp.asarray(w) for w in ws))
            return [float64_array(g) for g in list(dxs) + list(dcs)], []
