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

from .backend import Entry, backend_for, caller
from .emit import source as emit_source
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

    def _ordered(self, args, kwargs):
        """The inputs as a list in `input_names` order (checked by `_values`
        unless given exactly: all by position, or all by name)."""
        names = self.input_names
        if not kwargs and len(args) == len(names):
            return list(args)
        if not args and len(kwargs) == len(names):
            try:
                return [kwargs[n] for n in names]
            except KeyError:
                pass
        named = self._values(args, kwargs)
        return [named[n] for n in names]

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
        return caller(args + tuple(kwargs.values())).call(self._entry, *args, **kwargs)

    def _call(self, *args, **kwargs):
        out = self._run(None, self._ordered(args, kwargs))
        return out[0] if len(out) == 1 else tuple(out)

    def _run(self, what, values):
        """The outputs of the program (`what` None) or of a derivative
        program (`what` = (kind, names) for `Graph.derived`) at `values`, the
        inputs in `input_names` order (then an HVP's tangent): through code
        built once per signature of types, shapes and numbers."""
        runs = self.__dict__.setdefault("_runs", {})
        try:
            key = (what,) + tuple(number_key(v) if isinstance(v, _NUMBERS) else
                                  (type(v), tuple(v.shape), v.dtype) for v in values)
            run = runs.get(key)
        except (AttributeError, TypeError):  # a list, or symbolic sizes (torch.compile's
            key = run = None                 # dynamic shapes, unhashable): no fast path
        if run is None:
            run = self._runner(values, what)
            if key is not None:
                if len(runs) >= _CACHED:  # e.g. a number input that changes every call
                    runs.clear()
                runs[key] = run
        return run(values)

    def _runner(self, values, what=None):
        """A function of the input values (in `input_names` order, then an
        HVP's tangent) giving the outputs, for inputs of these types, shapes
        and numbers: what is decided once per signature (the backend, the
        bound graph, the lowered code) decided here."""
        names = list(self.input_names)
        named, B, g = self._setup(values[:len(names)], {}, values[len(names):])
        if what is not None:
            kind, wrt = what
            for n in dict.fromkeys(wrt):
                self._differentiable(n, named, kind)
            if kind != "jacobian" and g.outputs[0].shape != ():
                raise ProgramError(f"{kind} needs a scalar output, not one of shape "
                                   f"{_shape(g.outputs[0])}; use jacobian")
            g, base = g.derived(*what), g
            extra = [n for n in g.inputs if n not in base.inputs]  # an HVP's tangent
            for n, v in zip(extra, values[len(names):]):
                x = named[wrt[0]]
                if tuple(getattr(v, "shape", ())) != tuple(x.shape):
                    raise ProgramError(f"{kind}({wrt[0]!r}): the vector has shape "
                                       f"{tuple(getattr(v, 'shape', ()))} but {wrt[0]!r} "
                                       f"has shape {tuple(x.shape)}")
                named[n] = B.asarray(v)
            names += extra
        if B.autodiff:  # torch, jax: differentiated by derived programs
            f, given = g.differentiable(named, B)
        else:
            given = list(g.feed(named, B))
            f = g.code(g.outputs, given, B)
        position = {n: k for k, n in enumerate(names)}
        # A constant (an array the traced function closed over) is converted
        # on every call, as the inputs are: it may have changed in place, and
        # under jax.jit a converted one would be a tracer of that trace.
        picks = [(position[n.name], None) if n.name in position and g.inputs.get(n.name) is n
                 else (None, g.constants[n]) for n in given]
        asarray = B.asarray
        if B.autodiff:
            run = lambda vals: f(*[asarray(c if k is None else vals[k])  # noqa: E731
                                   for k, c in picks])
        elif all(k is not None and (isinstance(values[k], _NUMBERS) or asarray(values[k])
                                    is values[k]) for k, _ in picks):
            # Arrays the backend takes as they are (the key holds their type):
            # straight into the function written for their dtypes.
            fn, ks = f.function([values[k] for k, _ in picks]), [k for k, _ in picks]
            writeable = B.writeable
            run = lambda vals: tuple(map(writeable, fn(*[vals[k] for k in ks])))  # noqa: E731
        else:
            run = lambda vals: tuple(map(B.writeable, f([  # noqa: E731
                vals[k] if k is not None and isinstance(vals[k], _NUMBERS)
                else asarray(c if k is None else vals[k]) for k, c in picks])))
        flags = _aliased(g.outputs)  # `return x, x`, an input or a view of one: copied
        if any(flags):
            inner = run
            run = lambda vals: tuple(_owned(B, inner(vals), flags))  # noqa: E731
        if what is not None:  # a derivative in the dtype of (the first of) its inputs
            x, cast = position[what[1][0]], B.cast_like
            return lambda vals: (cast(run(vals)[0], vals[x]),)
        return run

    def wrt_names(self, values):
        return [n for n in self.input_names if _is_array(values[n]) and _inexact(values[n])]

    def vjp(self, cotangent, /, *args, **kwargs):
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

    def jacobian(self, name, /, *args, **kwargs):
        """∂out/∂name as one tensor of shape out.shape + name.shape (of the
        only output, or the first): one program, the VJP batched over an
        identity cotangent, derived once per signature of the inputs."""
        return self._derived("jacobian", (name,), args, kwargs)

    def grad(self, name, /, *args, **kwargs):
        """∂f/∂name of the scalar output f, shape name.shape: the VJP program
        at cotangent 1, derived once per signature of the inputs and run as
        straight-line code (the one gradient; `vjp` gives every input's)."""
        return self._derived("grad", (name,), args, kwargs)

    def hessian(self, name, /, *args, **kwargs):
        """∂²f/∂name² of the scalar output f, shape name.shape + name.shape,
        or with `name` a pair (a, b) the block ∂²f/∂a∂b, shape a.shape +
        b.shape: the gradient program's Jacobian, derived symbolically once
        per signature of the inputs and run as straight-line code (on torch
        and JAX, differentiable again)."""
        pair = name if isinstance(name, tuple) and len(name) == 2 else (name, name)
        return self._derived("hessian", pair, args, kwargs)

    def hvp(self, name, v, /, *args, **kwargs):
        """The Hessian of the scalar output f with respect to `name` times
        `v` (an array of name's shape), without building the Hessian: the
        JVP of the gradient program (forward over reverse), planned as any
        program, at a few times the cost of a gradient."""
        return self._derived("hvp", (name,), args, kwargs, v)

    def _derived(self, kind, names, args, kwargs, *extra):
        """A derivative program's result, through `_run`."""
        args = self._ordered(args, kwargs)
        for n in names:
            if not isinstance(n, str):
                self._differentiable(n, {}, kind)
        return self._run((kind, names), args + list(extra))[0]

    def derivative(self, name, /, *args, order=1, **kwargs):
        """The VJP of the output with respect to `name`, printed as a program
        in index notation (`str()`) or LaTeX (`.latex()`).

        `order=2`: the Hessian of the scalar output f with respect to `name`
        (or, `name` a pair (a, b), the block ∂²f/∂a∂b) as the program that
        `hessian` runs: the forward tensors it reads, then ∂²f/∂name²."""
        if args or kwargs:
            g = self.graph(*args, **kwargs)
        else:
            g = self._symbolic_graph()
        pair = name if order == 2 and isinstance(name, tuple) and len(name) == 2 else (name,)
        for n in pair:
            if not isinstance(n, str) or n not in g.inputs:
                raise ProgramError(f"{n!r} is not an input; the inputs are "
                                   f"{', '.join(g.inputs)}")
        if order == 2:
            if g.outputs[0].shape != ():
                raise ProgramError(f"a Hessian needs a scalar output, not one of shape "
                                   f"{_shape(g.outputs[0])}")
            return g.derived("hessian", pair * (3 - len(pair)))
        if order != 1:
            raise ProgramError(f"derivative(order={order!r}): the order is 1 or 2")
        cts, fwd, grads = g.gradients((name,))
        return Derivative(g, name, grads[0], fwd)

    def source(self, backend, *args, name="program", **kwargs):
        """A standalone Python module computing this program and its VJP
        with `backend` ("numpy", "torch" or "jax") and no einvjp, planned
        for these inputs: a shape (a tuple of sizes), an example array or a
        Python number (written into the code as a constant) per input.  See
        `einvjp.emit` for what the module holds."""
        return emit_source(self, backend, self._values(args, kwargs), name)

    def _symbolic_graph(self):
        raise ProgramError("give the inputs (their shapes) to print a derivative")
