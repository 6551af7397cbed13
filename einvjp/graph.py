"""A program bound to input shapes, and its derivatives.

- `Graph`: Input and output nodes; the forward simplified; VJP and JVP programs
  derived, and code for them, cached
- `Autodiff`: a bound graph as a differentiable function, what a backend's
  autodiff hook (`differentiable`) receives
- `number_key`: a number as part of a cache key
"""

from __future__ import annotations

import copy

from .codegen import Straightline
from .execute import _inexact, _is_number, _shape, _tensor, evaluate
from .ir import Const, Input, axes, contract, topo
from .autodiff import jacobian_node, vjp_nodes
from .formats import Latex, Text
from .printing import render_program
from .rewrite import rebuild, remake
from .simplify import simplify

_CACHED = 64  # entries a per-graph cache keyed by number values keeps before it starts over


class Graph:
    """A program bound to input shapes: Input nodes and output nodes, the
    forward simplified, derivatives derived (and cached) on demand."""

    def __init__(self, inputs, outputs, output_names, factored=False):
        self.inputs = dict(inputs)
        self.output_names = list(output_names)
        self.raw = list(outputs)
        self.outputs = simplify(outputs, factored=factored)
        self.constants = {}  # Input node -> array, for arrays a traced function closed over
        self._derivatives = {}
        self._functions = {}  # (backend, array inputs, numbers) -> (Autodiff, B.differentiable)
        self._code_cache = {}  # (backend, outputs, given nodes) -> Straightline

    def feed(self, values, B):
        """Input nodes -> values (the program's inputs and its constants)."""
        feed = {self.inputs[n]: v for n, v in values.items() if n in self.inputs}
        feed.update({n: B.asarray(v) for n, v in self.constants.items()})
        return feed

    def code(self, outputs, given, B, fixed=()) -> Straightline:
        """`outputs` from the values of the `given` nodes as straight-line
        code (`einvjp.codegen.Straightline`), the (node, number) pairs of `fixed`
        written in as constants; cached."""
        key = (B.name, tuple(outputs), tuple(given), _exact(fixed))
        found = self._code_cache.get(key)
        if found is None:
            if len(self._code_cache) >= 4 * _CACHED:
                self._code_cache.clear()
            found = self._code_cache[key] = Straightline(outputs, given, B, dict(fixed))
        return found

    def evaluate(self, outputs, feed, B):
        """`evaluate(outputs, feed, ...)` through `code`."""
        return self.code(outputs, list(feed), B)(list(feed.values()))

    def cotangent_inputs(self):
        return [Input(f"∂l/∂{n}", o.shape) for n, o in zip(self.output_names, self.outputs)]

    def __str__(self):
        """The (simplified) forward program in index notation."""
        return render_program(Text(), self.outputs, self.output_names)[0]

    @property
    def sizes(self):
        """The sizes of the labels that no tensor carries in their statement
        (a broadcast, `y[i,j] = x[i] 1[j]`): `compile(str(g), sizes=g.sizes)`
        is this program again."""
        return render_program(Text(), self.outputs, self.output_names)[1]

    def latex(self):
        return " \\\\\n".join(render_program(Latex(), self.outputs,
                                               self.output_names)[0].split("\n"))

    def jacobian(self, name, k=0):
        """The (cached) node of ∂outputs[k]/∂name."""
        if ("jacobian", name, k) not in self._derivatives:
            self._derivatives["jacobian", name, k] = jacobian_node(self.outputs, k,
                                                               self.inputs[name])
        return self._derivatives["jacobian", name, k]

    def derived(self, kind, names):
        """A derivative of the program as a program of its own (cached),
        run, planned and differentiated again like any other:

        - ("jacobian", (x,)): ∂outputs[0]/∂x, shape out.shape + x.shape
        - ("grad", (x,)): ∂f/∂x of the scalar output f
        - ("hessian", (a, b)): ∂²f/∂a∂b of the scalar output f, shape
          a.shape + b.shape: the gradient program's Jacobian
        - ("hvp", (a,)): the Hessian times a tangent input named ∂a, the
          JVP of the gradient program (forward over reverse)"""
        key = ("graph", kind, names)
        if key not in self._derivatives:
            if kind == "jacobian":
                d = self._graph([self.jacobian(names[0])], [f"∂y/∂{names[0]}"])
            elif kind == "grad":
                d = self._gradient(names[0])
            elif kind == "hessian":
                a, b = names
                f = self.output_names[0]
                d = self._graph([self._gradient(a).jacobian(b)],
                                [f"∂²{f}/∂{a}²" if a == b else f"∂²{f}/∂{a}∂{b}"])
            else:
                a, = names
                (t,), (jvp,) = self._gradient(a).tangents((a,))
                if jvp is None:
                    jvp = contract([], axes(self.inputs[a]), 0)
                d = self._graph([jvp], [f"∂²{self.output_names[0]}/∂{a}² ∂{a}"], {t.name: t})
            self._derivatives[key] = d
        return self._derivatives[key]

    def _gradient(self, a):
        """∂f/∂a of the scalar output f as a program: the VJP program with
        its cotangent 1 written in (folded into the coefficients)."""
        if ("gradient", a) not in self._derivatives:
            cts, _, (g,) = self.gradients((a,))
            if g is None:
                g = contract([], axes(self.inputs[a]), 0)
            one = Const(1)
            g, = rebuild([g], lambda n, new, old: one if n is cts[0] else
                         n if new == old else remake(n, new))
            self._derivatives["gradient", a] = self._graph([g], [f"∂{self.output_names[0]}/∂{a}"])
        return self._derivatives["gradient", a]

    def _graph(self, outputs, names, extra=None):
        """A program over this one's inputs (and `extra` ones) and constants."""
        d = Graph({**self.inputs, **(extra or {})}, outputs, names, factored=True)
        d.constants = self.constants
        return d

    def differentiable(self, values, B):
        """(f, nodes): `B.differentiable(Autodiff(...))` at the numbers in
        `values`, a function of the values of `nodes` (the array inputs and
        constants); cached."""
        feed = self.feed(values, B)
        nodes = tuple(n for n, v in feed.items() if not _is_number(v))
        numbers = tuple((n, v) for n, v in feed.items() if _is_number(v))
        # The numbers are constants of the code (the fastest code) until, where
        # the backend allows (`numbers_vary`: torch), one is met with another
        # value: from then on they are arguments of the code, written once for
        # every value (not once a value).
        exact = _exact(numbers)
        vary = B.numbers_vary
        key = (B.name, nodes, tuple((n, type(v)) for n, v in numbers) if vary else exact)
        found = self._functions.get(key)
        if found is None:
            if len(self._functions) >= _CACHED:  # e.g. a number input that changes every call
                self._functions.clear()
            rule = Autodiff(self, nodes, numbers, B)
            found = self._functions[key] = (rule, B.differentiable(rule))
        rule, f = found
        if rule.exact != exact and not rule.vary:
            rule = Autodiff(self, nodes, numbers, B, vary=True)
            rule, f = self._functions[key] = (rule, B.differentiable(rule))
        if rule.exact != exact:
            f = B.differentiable(rule.at(numbers))
        return f, nodes

    def tangents(self, wrt):
        """(tangent inputs, one JVP node per output or None) for the inputs
        named in `wrt`: the VJP program transposed, i.e. its own VJP with
        respect to the cotangents, in which it is linear."""
        wrt = tuple(wrt)
        if ("jvp", wrt) not in self._derivatives:
            cts, _, grads = self.gradients(wrt)
            tangents = [Input(f"∂{n}", self.inputs[n].shape) for n in wrt]
            present = [(g, t) for g, t in zip(grads, tangents) if g is not None]
            outs = vjp_nodes([g for g, _ in present], [t for _, t in present], cts)
            simple = iter(simplify([o for o in outs if o is not None]))
            self._derivatives["jvp", wrt] = (tangents, [None if o is None else next(simple)
                                                    for o in outs])
        return self._derivatives["jvp", wrt]

    def gradients(self, wrt):
        """(cotangent inputs, forward outputs, gradient nodes or None) for the
        inputs named in `wrt`, simplified together."""
        wrt = tuple(wrt)
        if wrt not in self._derivatives:
            cts = self.cotangent_inputs()
            grads = vjp_nodes(self.outputs, cts, [self.inputs[n] for n in wrt])
            present = [g for g in grads if g is not None]
            both = simplify(list(self.outputs) + present)
            fwd, rest = both[:len(self.outputs)], iter(both[len(self.outputs):])
            self._derivatives[wrt] = (cts, fwd, [None if g is None else next(rest) for g in grads])
        return self._derivatives[wrt]


def number_key(v):
    """A number as part of a cache key: its type and exact value, so that
    2, 2.0 and True are apart, 0.0 and -0.0 too, and a NaN finds itself."""
    if isinstance(v, float):  # and its subclasses (NumPy's float64), by their type
        return type(v), v.hex()
    if isinstance(v, complex):
        return type(v), v.real.hex(), v.imag.hex()
    return type(v), v


def _exact(numbers):
    """(node, number) pairs as a key: each number by its type and exact value."""
    return tuple((n, number_key(v)) for n, v in numbers)


class Autodiff:
    """A bound graph as a function of its array inputs (`nodes`) at the
    Python `numbers` ((node, value) pairs), for a backend's `differentiable`:
    `run` evaluates the forward program, `vjp` the derived VJP program and
    `jvp` its transpose, all with B's ops (which the library can
    differentiate again).

    The numbers are written into the code as constants, or, with `vary`
    (see `Graph.differentiable`), passed to it after the arrays;
    `at(numbers)` is then the same rule, and the same code, at other
    values.

    `vjp` and `jvp` recompute the forward tensors they read from the
    inputs, so that under autograd they connect to them; a backward that is
    not differentiated again can pass the `residuals` that `forward` kept
    instead.  Equal (and hashed) by graph, inputs and numbers: a parameter
    fit for a JAX primitive."""

    def __init__(self, graph, nodes, numbers, B, vary=False):
        self.graph, self.nodes, self.B, self.vary = graph, nodes, B, vary
        self.numbers, self.exact = numbers, _exact(numbers)
        self.n_outputs = len(graph.outputs)
        # Shared by `at`: the residual nodes, the Straightline outputs + residuals,
        # and per (wanted, dtypes, with residuals) what vjp needs.
        self._cache = {"residuals": None, "forward": None, "vjps": {}}

    def at(self, numbers):
        """This rule at other values of its numbers (`vary`: the code, shared,
        takes them as arguments)."""
        assert self.vary, "a rule with its numbers in its code cannot change them"
        other = copy.copy(self)
        other.numbers, other.exact = numbers, _exact(numbers)
        return other

    def _key(self):
        return (self.graph, self.B.name, self.nodes, self.exact)

    def __eq__(self, other):
        return isinstance(other, Autodiff) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"Autodiff({', '.join(self.graph.output_names)})"

    def _feed(self, arrays):
        feed = dict(zip(self.nodes, arrays))
        feed.update(self.numbers)
        return feed

    def _outputs(self, outs, arrays):
        return tuple(_tensor(self.B, y, arrays[0]) if _is_number(y) else y
                     for y in outs)

    def run(self, *arrays):
        """The outputs."""
        return self._outputs(self._evaluate(self.graph.outputs, (), arrays), arrays)

    def _code(self, outputs, given=()):
        """Code for `outputs` of the arrays (then the numbers, when
        they vary) and further `given` nodes; see `_args`."""
        if self.vary:
            return self.graph.code(outputs, self.nodes + tuple(n for n, _ in self.numbers)
                                   + tuple(given), self.B)
        return self.graph.code(outputs, self.nodes + tuple(given), self.B, self.numbers)

    def _args(self, arrays, values=()):
        """The arguments of `_code`'s code: the arrays, the numbers when
        they vary, the values of the further given nodes."""
        numbers = [v for _, v in self.numbers] if self.vary else []
        return list(arrays) + numbers + list(values)

    def _evaluate(self, outputs, given, arrays, values=()):
        """`outputs` from the arrays and further `given` nodes (with their
        `values`), through the graph's code."""
        return self._code(outputs, given)(self._args(arrays, values))

    def forward(self, *arrays):
        """(outputs, residuals): the residuals are the forward tensors other
        than the outputs that the VJP program (for every inexact array)
        reads."""
        cache = self._cache
        if cache["residuals"] is None:
            known = {}
            evaluate(self.graph.outputs, self._feed(arrays), self.B, known)
            names = tuple(n.name for n, x in zip(self.nodes, arrays) if _inexact(x))
            _, _, grads = self.graph.gradients(names)
            grads = [g for g in grads if g is not None]
            forward = set(topo(self.graph.outputs))
            # What the VJP program reads of the forward: not their ancestors.
            reads = set(grads).union(*(getattr(n, "args", ()) for n in topo(grads)
                                       if n not in forward))
            skip = set(self.graph.outputs)
            cache["residuals"] = [n for n in topo(self.graph.outputs) if n in reads
                                  and n not in skip and not isinstance(n, (Input, Const))
                                  and not _is_number(known[n])]
            cache["forward"] = self._code(list(self.graph.outputs) + cache["residuals"])
        vals = cache["forward"](self._args(arrays))
        return self._outputs(vals[:self.n_outputs], arrays), tuple(vals[self.n_outputs:])

    def vjp(self, arrays, cotangents, wanted, residuals=None):
        """One gradient per array (None where not wanted or not inexact),
        given one cotangent per output (None for zero); `residuals`, when
        given, are the outputs followed by `forward`'s residuals."""
        key = (tuple(wanted), tuple(getattr(x, "dtype", None) for x in arrays),
               residuals is None)
        vjps = self._cache["vjps"]
        found = vjps.get(key)
        if found is None:
            found = vjps[key] = self._prepare_vjp(arrays, wanted, residuals is not None)
        wanted, cts, grads, code = found
        like = next(c for c in cotangents if c is not None)
        values = [self.B.full(_shape(n), 0, like) if c is None else c
                  for n, c in zip(cts, cotangents)]
        vals = iter(code(self._args(arrays, values if residuals is None
                                       else values + list(residuals))))
        result, grads = [], iter(grads)
        for x, w in zip(arrays, wanted):
            if not w:
                result.append(None)
                continue
            gnode = next(grads)
            result.append(self.B.zeros_like(x) if gnode is None
                          else self.B.cast_like(self.B.asarray(next(vals)), x))
        return tuple(result)

    def _prepare_vjp(self, arrays, wanted, with_residuals):
        """(wanted, cotangent nodes, gradient nodes, their Straightline code)."""
        wanted = [w and _inexact(x) for w, x in zip(wanted, arrays)]
        names = tuple(n.name for n, w in zip(self.nodes, wanted) if w)
        cts, _, grads = self.graph.gradients(names)
        given = tuple(cts)
        if with_residuals:
            given += tuple(self.graph.outputs) + tuple(self._cache["residuals"])
        code = self._code([x for x in grads if x is not None], given)
        return wanted, cts, grads, code

    def jvp(self, arrays, tangents):
        """One tangent per output, given one per array (None for zero)."""
        moving = [(n, t) for n, x, t in zip(self.nodes, arrays, tangents)
                  if t is not None and _inexact(x)]
        ts, outs = self.graph.tangents(n.name for n, _ in moving)
        vals = iter(self._evaluate([o for o in outs if o is not None], ts, arrays,
                                   [t for _, t in moving]))
        like = moving[0][1] if moving else arrays[0]
        return tuple(self.B.full(_shape(y), 0, like) if o is None
                     else _tensor(self.B, next(vals), like)
                     for y, o in zip(self.graph.outputs, outs))
