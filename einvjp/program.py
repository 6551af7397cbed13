"""Programs: what `einvjp.compile` returns.

- `Program`: call it, `vjp`, `jacobian`, `hessian`, `derivative`, on any backend
  (its frontends, `TextProgram` and `TracedProgram`, bind it to a `Graph`)

>>> import numpy as np
>>> import einvjp
>>> prog = einvjp.compile('''
...     m[b]    = x[b,h] / H
...     mu[b,h] = x[b,h] - m[b]
...     v[b]    = mu[b,h]^2 / H
...     s[b]    = sqrt(v[b] + eps)
...     y[b,h]  = mu[b,h] / s[b] * gamma[h] + beta[h]
... ''')
>>> print(prog.derivative("gamma"))
∂l/∂gamma[p] = ∂l/∂y[b,p] mu[b,p] / s[b]
"""

from __future__ import annotations

from .backend import Entry, backend_for
from .errors import CotangentError, ProgramError
from .execute import _NUMBERS, _inexact, _shape, evaluate
from .graph import _CACHED, Graph, number_key
from .ir import Contract, Input, axes, contract
from .printing import Derivative
from . import prims

def _is_array(v):
    return not isinstance(v, (int, float, complex, bool)) and hasattr(v, "shape")


def _aliased(nodes):
    """Which of `nodes`, results handed to a caller, may share memory with a
    value the caller gave (an Input: an input, a cotangent, a constant) or
    with an earlier result: a node that is an Input, or a view of one or of
    an earlier result's node (a one-operand Contract that only relabels:
    transpose, diagonal, broadcast), or an earlier result's node again."""
    roots, flags = set(), []
    for node in nodes:
        while isinstance(node, Contract) and len(node.args) == 1 and node.coeff.is_one \
                and set(node.terms[0]) <= set(node.out):
            node = node.args[0]
        flags.append(node is not None and (isinstance(node, Input) or node in roots))
        roots.add(node)
    return flags


def _owned(B, results, flags):
    """The results with those `flags` marks (see `_aliased`), or that are
    the same object as an earlier one, copied: results never share memory
    with each other or with the caller's values."""
    out = []
    for y, flag in zip(results, flags):
        out.append(B.copy(y) if flag or any(y is o for o in out) else y)
    return out


class Program:
    """A compiled program (from index-notation text or a traced function).

    `prog(**inputs)` evaluates it; `prog.vjp(cotangent, **inputs)` returns
    {name: gradient} for every array input (None for an integer one); `jacobian` and
    `hessian` build full derivative tensors; `derivative(name)` prints the
    VJP program in index notation.
    """

    input_names: list = []

    def __init__(self):
        self._entry = Entry(self._call)  # how `__call__` runs (made here, outside any trace)

    def _graph_for(self, values) -> Graph:
        """The graph bound to these inputs' shapes (None for a number), built
        once a signature by `_bind`."""
        sig = tuple((n, None if isinstance(values[n], (int, float, complex)) else
                     tuple(int(d) for d in values[n].shape)) for n in self.input_names)
        graphs = self.__dict__.setdefault("_graphs", {})
        g = graphs.get(sig)
        if g is None:
            g = graphs[sig] = self._bind(sig)
        self._last = g
        return g

    def _bind(self, sig) -> Graph:
        """The graph for input signature `sig`: ((name, shape or None), …)."""
        raise NotImplementedError

    def _values(self, args, kwargs):
        names = list(self.input_names)
        if len(args) > len(names):
            raise ProgramError(f"the program takes {len(names)} input(s) "
                               f"({', '.join(names)}), {len(args)} were given")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k in values:
                raise ProgramError(f"input {k!r} given twice")
            if k not in names:
                raise ProgramError(f"unknown input {k!r}; the inputs are {', '.join(names)}")
            values[k] = v
        missing = [n for n in names if n not in values]
        if missing:
            raise ProgramError(f"missing input(s) {', '.join(missing)}")
        return values

    def _setup(self, args, kwargs, extra=()):
        values = self._values(args, kwargs)
        B = backend_for(list(values.values()) + list(extra))
        values = {n: (B.asarray(v) if not isinstance(v, (int, float, complex)) else v)
                  for n, v in values.items()}
        return values, B, self._graph_for(values)

    def graph(self, *args, **kwargs) -> Graph:
        """The bound graph at these inputs' shapes."""
        return self._setup(args, kwargs)[2]

    def __call__(self, *args, **kwargs):
        return backend_for(args + tuple(kwargs.values())).call(self._entry, *args, **kwargs)

    def _call(self, *args, **kwargs):
        if kwargs or len(args) != len(self.input_names):
            named = self._values(args, kwargs)
            args = [named[n] for n in self.input_names]
        values = args
        runs = self.__dict__.setdefault("_runs", {})
        try:
            key = tuple(number_key(v) if isinstance(v, _NUMBERS) else (type(v), tuple(v.shape))
                        for v in values)
            run = runs.get(key)
        except (AttributeError, TypeError):  # a list, or symbolic sizes (torch.compile's
            key = run = None                 # dynamic shapes, unhashable): no fast path
        if run is None:
            run = self._runner(dict(zip(self.input_names, values)))
            if key is not None:
                if len(runs) >= _CACHED:  # e.g. a number input that changes every call
                    runs.clear()
                runs[key] = run
        out = run(values)
        return out[0] if len(out) == 1 else tuple(out)

    def _runner(self, values):
        """A function of the input values (in `input_names` order) giving the
        outputs, for inputs of these types, shapes and numbers: what is
        decided once per signature (the backend, the bound graph, the
        lowered code) decided here."""
        values, B, g = self._setup((), values)
        if B.autodiff:  # torch, jax: differentiated by derived programs
            f, given = g.differentiable(values, B)
        else:
            given = list(g.feed(values, B))
            f = g.code(g.outputs, given, B)
        position = {n: k for k, n in enumerate(self.input_names)}
        # A constant (an array the traced function closed over) is converted
        # on every call, as the inputs are: it may have changed in place, and
        # under jax.jit a converted one would be a tracer of that trace.
        picks = [(position[n.name], None) if n.name in position and g.inputs.get(n.name) is n
                 else (None, g.constants[n]) for n in given]
        asarray = B.asarray
        if B.autodiff:
            run = lambda vals: f(*[asarray(c if k is None else vals[k])  # noqa: E731
                                   for k, c in picks])
        else:
            run = lambda vals: tuple(map(B.writeable, f([  # noqa: E731
                vals[k] if k is not None and isinstance(vals[k], _NUMBERS)
                else asarray(c if k is None else vals[k]) for k, c in picks])))
        flags = _aliased(g.outputs)  # `return x, x`, an input or a view of one: copied
        if not any(flags):
            return run
        return lambda vals: tuple(_owned(B, run(vals), flags))

    def wrt_names(self, values):
        return [n for n in self.input_names if _is_array(values[n]) and _inexact(values[n])]

    def vjp(self, cotangent, *args, **kwargs):
        """{name: ∂l/∂name} for every array input, given ∂l/∂ (each output)
        — a tuple when the program returns several.

        A floating-point (or complex) array input gets its gradient, an
        array of its shape and dtype (zeros where the output does not depend
        on it); an integer or boolean array input gets None, as in PyTorch,
        where such a tensor has no gradient.  Python numbers are constants of
        the program and get no entry.  Every gradient is an array of its own,
        sharing memory with no input, cotangent or other gradient."""

        cots = tuple(cotangent) if isinstance(cotangent, (tuple, list)) else (cotangent,)
        values, B, g = self._setup(args, kwargs, cots)
        wrt = self.wrt_names(values)
        cts, fwd, grads = g.gradients(wrt)
        if len(cots) != len(cts):
            raise CotangentError(f"{len(cts)} cotangent(s) expected, one per output, "
                                 f"got {len(cots)}")
        feed = g.feed(values, B)
        for node, c, name in zip(cts, cots, g.output_names):
            c = c if isinstance(c, (int, float, complex)) else B.asarray(c)
            shape = () if isinstance(c, (int, float, complex)) else tuple(c.shape)
            if shape != tuple(int(s) for s in node.shape):
                raise CotangentError(f"the cotangent of {name!r} has shape {shape} but "
                                     f"{name!r} has shape {_shape(node)}")
            feed[node] = c
        present = [x for x in grads if x is not None]
        vals = iter(g.evaluate(present, feed, B))
        result = {}
        for n, gnode in zip(wrt, grads):
            x = values[n]
            result[n] = B.zeros_like(x) if gnode is None else \
                B.cast_like(B.asarray(next(vals)), x)
        # A gradient that is the cotangent (y = x + z), an input, or another one: copied.
        owned = dict(zip(result, _owned(B, list(result.values()), _aliased(grads))))
        return {n: owned.get(n) for n in self.input_names if _is_array(values[n])}

    def _differentiable(self, name, values, what):
        """Check that `name` names an array input of floating point type."""
        if not isinstance(name, str) or name not in values:
            raise ProgramError(f"{what}({name!r}): not an input; the inputs are "
                               f"{', '.join(self.input_names)}")
        x = values[name]
        if not _is_array(x):
            raise ProgramError(f"{what}({name!r}): {name!r} is a Python number here; give "
                               f"it as a 0-d array (numpy.asarray(2.0), not 2.0) to "
                               f"differentiate with respect to it")
        if not _inexact(x):
            raise ProgramError(f"{what}({name!r}): {name!r} has dtype {x.dtype}, which "
                               f"cannot be differentiated; give it as floating point")

    def jacobian(self, name, *args, **kwargs):
        """∂out/∂name as one tensor of shape out.shape + name.shape (of the
        only output, or the first): one program, the VJP batched over an
        identity cotangent."""
        values, B, g = self._setup(args, kwargs)
        self._differentiable(name, values, "jacobian")
        j = g.jacobian(name)
        return B.cast_like(evaluate([j], g.feed(values, B), B)[0], values[name])

    def hessian(self, name, *args, **kwargs):
        """∂²out/∂name² of a scalar output, shape name.shape + name.shape: the
        gradient program's Jacobian, derived symbolically again."""
        values, B, g = self._setup(args, kwargs)
        self._differentiable(name, values, "hessian")
        if g.outputs[0].shape != ():
            raise ProgramError("hessian needs a scalar output; use jacobian")
        cts, fwd, (gnode,) = g.gradients((name,))
        x = g.inputs[name]
        if gnode is None:
            gnode = contract([], axes(x), 0)
        second = Graph({**g.inputs, cts[0].name: cts[0]}, [gnode], [f"∂l/∂{name}"])
        second.constants = g.constants
        feed = second.feed(values, B)
        feed[cts[0]] = 1.0
        return B.cast_like(evaluate([second.jacobian(name)], feed, B)[0], values[name])

    def derivative(self, name, *args, **kwargs):
        """The VJP of the output with respect to `name`, printed as a program
        in index notation (`str()`) or LaTeX (`.latex()`)."""
        if args or kwargs:
            g = self.graph(*args, **kwargs)
        else:
            g = self._symbolic_graph()
        if name not in g.inputs:
            raise ProgramError(f"{name!r} is not an input; the inputs are "
                               f"{', '.join(g.inputs)}")
        cts, fwd, grads = g.gradients((name,))
        return Derivative(g, name, grads[0], fwd)

    def _symbolic_graph(self):
        raise ProgramError("give the inputs (their shapes) to print a derivative")
