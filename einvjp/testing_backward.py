"""Checking a hand-written backward against einvjp (a test extra).

- `check_backward(fn, spec)`: your differentiable function — a torch
  `autograd.Function`'s `apply`, a `jax.custom_vjp` function, or a NumPy
  `(forward, vjp)` pair — against einvjp's forward and VJP of `spec` (an
  einsum equation or a compiled program), on drawn shapes, operands and
  cotangents; with `order=2`, its double backward too

>>> import numpy as np
>>> forward = lambda x, w: x @ w
>>> vjp = lambda g, x, w: (g @ w.T, x.T @ g)
>>> check_backward((forward, vjp), "ij,jk->ik", examples=20)
>>> wrong = lambda g, x, w: (g @ w.T, (x.T @ g)[::-1])
>>> check_backward((forward, wrong), "ij,jk->ik")  # doctest: +ELLIPSIS
Traceback (most recent call last):
AssertionError: check_backward: the gradient of operand 1 is wrong at index (0, 0): expected ...
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, settings, strategies as st
from hypothesis import seed as _seed
from hypothesis.extra.numpy import arrays

import einvjp
from .equation import parse
from .errors import EinvjpError
from .lang import TextProgram
from .program import Program
from .syntax import Ref, walk
from .testing_libraries import library, runner
from .testing_linear import float64_array, label_shapes

_SHOWN = 24  # arrays up to this many entries are printed in a failure
# slow cases are fine; a check_backward call inside a @given test is too
_SUPPRESSED = [h for h in HealthCheck if h.name in ("too_slow", "nested_given")]


def check_backward(fn, spec, shapes=None, *, sizes=None, exact=None, order=1, examples=50,
                   seed=0, rtol=1e-7, atol=None, min_size=0, max_size=4, broadcast=False,
                   domains=None, fixed=None, backend=None):
    """Check `fn`'s forward and gradients against einvjp's on drawn cases.

    `fn` is what you differentiate: a torch callable (`MyFunction.apply`, a
    function of tensors), a jax function (`jax.custom_vjp` or any function
    `jax.vjp` accepts), or a NumPy pair `(forward, vjp)` where
    `vjp(cotangent, *operands)` returns one gradient per operand.  The
    library is told from `fn` (its type, or the globals its code names);
    `backend="torch"`, `"jax"` or `"numpy"` says it outright.

    `spec` is an einsum equation (`sizes=` sizes its output-only labels) or
    an `einvjp.compile(...)` program, whose inputs `fn` takes positionally in
    `prog.input_names` order.  Operand shapes are drawn (`min_size` to
    `max_size` per label, equal sizes and sizes 0 and 1 included; with
    `broadcast`, size-1 dimensions against larger ones) unless `shapes`
    gives them: a list of shapes, or for a program a {name: shape} dict.  A
    text program's shapes follow its labels; a traced one needs `shapes`.

    `exact` (the default for an equation) draws operands and cotangents as
    integers in [-3, 3] and compares exactly: an einsum of small integers is
    exact in float64, so a wrong gradient cannot hide in a tolerance.  It is
    right for programs that are polynomials with integer coefficients.
    `exact=False` (the default for a program) draws floats in [-1, 1] and
    compares to `rtol` (and `atol`, by default `rtol` times the largest
    expected entry).  `domains={input: (lo, hi)}` (an input's name, or an
    operand's position) draws that input elsewhere, e.g. positive for a
    `log`; `fixed={input: value}` holds an input at a value (a Python number
    stays a number) without differentiating it.  Cases where einvjp's value
    or gradients are not finite are skipped.

    `order=2` checks the double backward too (torch, jax): the gradient of
    Σ ⟨w, gradient⟩ with respect to the operands and the cotangent, against
    the same taken through einvjp in that library.

    The cases are drawn by hypothesis (`examples` of them, `seed` fixes the
    draw, None draws afresh) and a failure is shrunk to a small case: an
    `AssertionError` names the operand, the first wrong index, the expected
    and the computed entry, the equation and the shapes.
    """
    __tracebackhide__ = True  # pytest shows the caller's line and the message
    lib = library(fn, backend)
    if order not in (1, 2):
        raise ValueError(f"check_backward: order must be 1 or 2, not {order!r}")
    if order == 2 and lib == "numpy":
        raise ValueError("check_backward: a (forward, vjp) pair has no double backward; "
                         "order=2 needs a torch or a jax function")
    spec = _spec(spec, sizes, fixed or {})
    exact = isinstance(spec, _Equation) if exact is None else exact
    draw = _Draw(spec, shapes, exact, domains or {}, order, (min_size, max_size, broadcast))
    run = runner(lib)
    compare = _Compare(exact, rtol, atol)

    @settings(max_examples=examples, deadline=None, database=None, report_multiple_bugs=False,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=_SUPPRESSED)
    @given(draw.cases())
    def check_backward_case(case):
        __tracebackhide__ = True
        _check_case(run, fn, spec, case, compare, order)

    if seed is not None:
        check_backward_case = _seed(seed)(check_backward_case)
    check_backward_case()


def _check_case(run, fn, spec, case, compare, order):
    __tracebackhide__ = True
    where = case.describe(spec)
    state, ys = _user(lambda: run.forward(fn, case.values, spec.wrt), where, "fn raised")
    if len(ys) != len(case.ys):
        raise AssertionError(f"check_backward: fn returned {len(ys)} output(s), einvjp "
                             f"{len(case.ys)}\n{where}")
    outputs = spec.outputs(len(ys))
    for y, want, name in zip(ys, case.ys, outputs):
        compare(f"the {name}", y, want, where)
    grads = _user(lambda: run.backward(state, case.cts), where, "fn's backward raised")
    if len(grads) != len(case.grads):
        raise AssertionError(f"check_backward: {len(grads)} gradient(s) for "
                             f"{len(case.grads)} operand(s)\n{where}")
    for g, want, k in zip(grads, case.grads, spec.wrt):
        compare(f"the gradient of {spec.names[k]}", g, want, where)
    if order == 1:
        return
    want, _ = run.second(spec.function(), case.values, spec.wrt, case.cts, case.ws)
    got, constant = _user(lambda: run.second(fn, case.values, spec.wrt, case.cts, case.ws),
                          where, "order 2: differentiating fn's gradients raised")
    if constant:
        names = ", ".join(spec.names[spec.wrt[k]] for k in constant)
        where += (f"\n  fn's gradient of {names} is a constant to autodiff (detached, or "
                  f"computed outside it)" if len(constant) == 1 else
                  f"\n  fn's gradients of {names} are constants to autodiff (detached, or "
                  f"computed outside it)")
    wrt = [spec.names[k] for k in spec.wrt] + [f"cotangent of the {name}" for name in outputs]
    for g, w, name in zip(got, want, wrt):
        compare(f"order 2: the derivative of Σ <w, gradient> with respect to {name}",
                g, w, where)


def _user(call, where, what):
    """`call()`, a call into the user's function: what it raises becomes an
    AssertionError that says where."""
    __tracebackhide__ = True
    try:
        return call()
    except Exception as err:  # noqa: BLE001 - whatever fn raises is reported
        raise AssertionError(f"check_backward: {what} {type(err).__name__}: {err}"
                             f"\n{where}") from err


# --- what is checked: an equation or a program --------------------------------

class _Equation:
    def __init__(self, equation, sizes):
        self.equation, self.sizes = equation, sizes
        self.terms = [term.labels for term in parse(equation).inputs]
        self.keys = list(range(len(self.terms)))  # what domains= and shapes= name
        self.names = [f"operand {k}" for k in self.keys]
        self.wrt, self.fixed = list(self.keys), {}

    def outputs(self, count):
        return ["output"] * count

    def shapes(self, min_size, max_size, broadcast):
        return label_shapes(self.terms, min_size, max_size, broadcast=broadcast)

    def forward(self, values):
        return [np.asarray(einvjp.einsum(self.equation, *values, sizes=self.sizes))]

    def vjp(self, values, cts):
        return [np.asarray(g) for g in einvjp.vjp(self.equation, values, cts[0],
                                                  sizes=self.sizes)]

    def function(self):
        return lambda *xs: einvjp.einsum(self.equation, *xs, sizes=self.sizes)

    def header(self):
        return f"  equation {self.equation!r}" + (f", sizes {self.sizes}" if self.sizes else "")


class _Program:
    def __init__(self, prog, fixed):
        unknown = sorted(set(fixed) - set(prog.input_names))
        if unknown:
            raise ValueError(f"check_backward: fixed= names {', '.join(unknown)}, not inputs "
                             f"of the program ({', '.join(prog.input_names)})")
        self.prog, self.fixed, self.keys = prog, fixed, list(prog.input_names)
        self.names = [f"input {n!r}" for n in prog.input_names]
        self.wrt = [k for k, n in enumerate(prog.input_names) if n not in fixed]

    def outputs(self, count):
        names = self.prog.returns if isinstance(self.prog, TextProgram) else ()  # traced: unnamed
        return [f"output {n!r}" for n in names] if len(names) == count else \
            ["output"] if count == 1 else [f"output {k}" for k in range(count)]

    def shapes(self, min_size, max_size, broadcast):
        if not isinstance(self.prog, TextProgram):
            raise ValueError("check_backward: give shapes= for a traced program (its inputs' "
                             "ranks are known only once it is called)")
        if broadcast:
            raise ValueError("check_backward: broadcast= is for an equation; a program's "
                             "labels have one size each")
        terms, known = _program_terms(self.prog)
        return label_shapes([terms[self.keys[k]] for k in self.wrt], min_size, max_size,
                            known=known)

    def forward(self, values):
        out = self.prog(*values)
        return [np.asarray(y) for y in (out if isinstance(out, tuple) else (out,))]

    def vjp(self, values, cts):
        grads = self.prog.vjp(tuple(cts) if len(cts) > 1 else cts[0], *values)
        return [np.asarray(grads[self.keys[k]]) for k in self.wrt]

    def function(self):
        return self.prog

    def header(self):
        text = "\n".join(f"    {line.strip()}" for line in str(self.prog).splitlines())
        return f"  program\n{text}" + (f"\n  fixed {self.fixed}" if self.fixed else "")


def _spec(spec, sizes, fixed):
    if isinstance(spec, str):
        if fixed:
            raise ValueError("check_backward: fixed= is for a program's inputs")
        return _Equation(spec, sizes)
    if isinstance(spec, Program):
        if sizes:
            raise ValueError("check_backward: sizes= is for an equation; give a program's "
                             "sizes to einvjp.compile")
        return _Program(spec, fixed)
    raise TypeError(f"check_backward: spec is an einsum equation or an einvjp program "
                    f"(einvjp.compile), not {type(spec).__name__}")


def _program_terms(prog):
    """{input: its labels} of a text program, with the labels that must have
    one size (an input or a result indexed by two names) made one; and the
    sizes the program fixes."""
    parent = {}

    def find(lab):
        while parent.setdefault(lab, lab) != lab:
            lab = parent[lab]
        return lab

    labels = {}
    for st_ in prog.statements:
        for e in walk(st_.expr):
            if isinstance(e, Ref):
                labs = [lab for lab, _ in e.labels]
                for a, b in zip(labels.setdefault(e.name, labs), labs):
                    parent[find(b)] = find(a)
        labels.setdefault(st_.name, [lab for lab, _ in st_.labels])
    terms = {n: tuple(find(lab) for lab in labels.get(n, ())) for n in prog.input_names}
    return terms, {find(lab): size for lab, size in prog.sizes.items()}


# --- the cases ------------------------------------------------------------------

class _Case:
    """One drawn case: the inputs (fixed ones included), cotangents, second-order
    cotangents `ws`, and einvjp's outputs and gradients."""

    def __init__(self, values, cts, ws, ys, grads):
        self.values, self.cts, self.ws, self.ys, self.grads = values, cts, ws, ys, grads

    def __repr__(self):
        return "case(" + ", ".join(f"{np.shape(v)}" for v in self.values) + ")"

    def describe(self, spec):
        lines = [spec.header()]
        shapes = ", ".join(f"{np.shape(v)}" for v in self.values)
        lines.append(f"  shapes {shapes} -> " + ", ".join(f"{y.shape}" for y in self.ys))
        shown = [(spec.names[k], v) for k, v in enumerate(self.values) if k in spec.wrt]
        shown += [(f"cotangent of the {n}", c)
                  for n, c in zip(spec.outputs(len(self.cts)), self.cts)]
        shown += [(f"w for the gradient of {spec.names[k]}", w) for k, w in zip(spec.wrt, self.ws)]
        if all(np.size(v) <= _SHOWN for _, v in shown):
            for name, v in shown:
                prefix = f"  {name} = "
                lines.append(prefix + np.array2string(np.asarray(v), separator=", ",
                                                      prefix=prefix))
        return "\n".join(lines)


class _Draw:
    def __init__(self, spec, shapes, exact, domains, order, shape_opts):
        self.spec, self.exact, self.domains, self.order = spec, exact, domains, order
        self.shape_opts = shape_opts
        self.given = None if shapes is None else self._given(shapes)

    def _given(self, shapes):
        spec = self.spec
        if isinstance(shapes, dict):
            missing = [str(spec.keys[k]) for k in spec.wrt if spec.keys[k] not in shapes]
            if missing:
                raise ValueError(f"check_backward: shapes= gives no shape for "
                                 f"{', '.join(missing)}")
            return [tuple(shapes[spec.keys[k]]) for k in spec.wrt]
        shapes = [tuple(s) for s in shapes]
        if len(shapes) == len(spec.names):
            return [shapes[k] for k in spec.wrt]
        if len(shapes) != len(spec.wrt):
            raise ValueError(f"check_backward: {len(shapes)} shape(s) for "
                             f"{len(spec.wrt)} operand(s)")
        return shapes

    def _array(self, shape, key=None):
        lo, hi = self.domains.get(key, (-3, 3) if self.exact else (-1, 1))
        if self.exact:
            elements = st.integers(int(np.ceil(lo)), int(np.floor(hi))).map(float)
        else:
            elements = st.floats(lo, hi, allow_nan=False, allow_subnormal=False)
        return arrays(np.float64, shape, elements=elements, fill=st.nothing())

    def _oracle(self, call):
        """einvjp's results, or the case skipped: where they are not finite, at
        a singular matrix, or at drawn sizes the program does not accept (a
        matrix function's two labels)."""
        try:
            results = call()
        except np.linalg.LinAlgError:
            assume(False)
        except EinvjpError:
            if self.given is not None:
                raise
            assume(False)
        assume(all(np.all(np.isfinite(r)) for r in results))
        return results

    def cases(self):
        @st.composite
        def case(draw):
            spec = self.spec
            shapes = self.given or draw(spec.shapes(*self.shape_opts))
            values = [spec.fixed.get(key) for key in spec.keys]
            for k, shape in zip(spec.wrt, shapes):
                values[k] = draw(self._array(shape, spec.keys[k]))
            ys = self._oracle(lambda: spec.forward(values))
            cts = [draw(self._array(y.shape)) for y in ys]
            grads = self._oracle(lambda: spec.vjp(values, cts))
            ws = [draw(self._array(values[k].shape)) for k in spec.wrt] \
                if self.order == 2 else []
            return _Case(values, cts, ws, ys, grads)
        return case()


class _Compare:
    def __init__(self, exact, rtol, atol):
        self.exact, self.rtol, self.atol = exact, rtol, atol

    def __call__(self, what, got, want, where):
        __tracebackhide__ = True
        if got is None:
            raise AssertionError(f"check_backward: {what} is None\n{where}")
        got = float64_array(got)
        if got.shape != want.shape:
            raise AssertionError(f"check_backward: {what} has shape {got.shape}, expected "
                                 f"{want.shape}\n{where}")
        if self.exact:
            bad = got != want
        else:
            atol = self.atol if self.atol is not None else \
                self.rtol * float(np.max(np.abs(want), initial=0.0))
            bad = ~(np.abs(got - want) <= atol + self.rtol * np.abs(want))
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            tol = "" if self.exact else f" (rtol {self.rtol:g})"
            raise AssertionError(
                f"check_backward: {what} is wrong at index {at}: expected {float(want[at])!r}, "
                f"got {float(got[at])!r}{tol}; {int(bad.sum())} of {bad.size} entries "
                f"differ\n{where}")
