"""`contract_expression`: an einsum planned once for fixed shapes, with
constant operands contracted ahead of time.

>>> import numpy as np
>>> w = np.arange(6.0).reshape(2, 3)
>>> expr = contract_expression("ij,jk,kl->il", (4, 2), w, (3, 5), constants=[1])
>>> expr
<ContractExpression('ij,jk,kl->il', constants=[1], shapes=[(4, 2), (3, 5)])>
>>> x, y = np.ones((4, 2)), np.ones((3, 5))
>>> expr(x, y)[0]
array([15., 15., 15., 15., 15.])
>>> gx, gy = expr.vjp((x, y), np.ones((4, 5)))
>>> gx.shape, gy.shape
((4, 2), (3, 5))
"""

from __future__ import annotations

import operator

from .backend import Entry, backend_for, caller, shape_of
from .core import _itemsize, _limit
from .equation import bind, check_shape, parse, wanted
from .errors import BackendError, CotangentError, OperandCountError, SignatureError
from .ge import GE
from .plan import check_optimize, path_for, plan_for
from .slicing import cotengra_slices, limited


def contract_expression(equation: str, *shapes, constants=(), optimize="auto",
                        memory_limit=None):
    """An einsum planned once for these operand shapes.

    `shapes` gives each operand's shape, except at the positions listed in
    `constants`, where the operand itself is given.  The constants are
    contracted together once, as far as the contraction path allows, and kept
    (converted once per array library).  Call the result with the other
    operands, in order: `expr(*operands)`; `expr.vjp(operands, cotangent,
    wrt=None)` gives their gradients (a tuple, as `einvjp.vjp`).  On torch
    tensors and jax arrays `expr(*operands)` is differentiable by that
    library's autodiff.

    `memory_limit=` (bytes) bounds the peak of what a call allocates beyond
    the operands, the folded constants, the cotangent and the results, for
    `expr(...)` and `expr.vjp(...)` alike (see `einvjp.plan`); a cotengra
    optimizer's slices are kept.  Print the expression for its steps and
    costs; `expr.cost` has the figures (float64; `expr.cost_at(itemsize)`).
    """
    return ContractExpression(equation, shapes, constants, optimize, memory_limit)


class ContractExpression:
    """An equation bound to shapes, planned once, constants folded once."""

    def __init__(self, equation, shapes, constants=(), optimize="auto", memory_limit=None):
        self.equation = equation
        self.memory_limit = _limit(memory_limit)
        self._spec = spec = parse(equation)
        n = len(shapes)
        self.constants = _positions(constants, n, equation)
        self.variables = [k for k in range(n) if k not in set(self.constants)]
        values = {k: shapes[k] for k in self.constants}
        bound = [shape_of(values[k]) if k in values else _as_shape(shapes[k], k, equation)
                 for k in range(n)]
        self.shapes = [bound[k] for k in self.variables]
        ge = bind(spec, bound)
        check_optimize(optimize, n)
        self.path = path_for(ge, optimize)
        folds, reduced, path = _fold(ge, self.path, set(self.constants))
        self._plan = plan_for(reduced, path if len(reduced.terms) > 2 else optimize)
        carried = {lab for t in reduced.terms for lab in t}
        self._sliced = [lab for lab in (cotengra_slices(ge, optimize) if callable(optimize)
                                        else []) if lab in carried]
        self._limited = {}  # itemsize -> the plan that fits memory_limit
        self._folded = _run_folds(folds, values)
        self._by_backend = {}
        self._out = tuple(idx.size for idx in ge.out)
        self._entry = Entry(self._call)

    def __repr__(self):
        return (f"<ContractExpression({self.equation!r}, constants={self.constants}, "
                f"shapes={self.shapes})>")

    def __str__(self):
        """The steps a call runs and their costs (float64)."""
        return repr(self) + "\n" + repr(self._planned(8))

    @property
    def cost(self):
        """The figures of `einvjp.plan(...).cost` for a call (float64)."""
        return self._planned(8).cost

    def cost_at(self, itemsize):
        return self._planned(itemsize).cost_at(itemsize)

    def _planned(self, itemsize):
        """The plan a call runs on operands of `itemsize` bytes an element."""
        if self.memory_limit is None and not self._sliced:
            return self._plan
        found = self._limited.get(itemsize)
        if found is None:
            found = self._limited[itemsize] = limited(
                self._plan.ge, self._plan.path if self._plan.n > 2 else "auto",
                self.memory_limit, itemsize, True, self._sliced)
        return found

    def __call__(self, *operands):
        # The folded constants are arguments too: a graph capture (torch.compile)
        # then sees them as the tensors they are, not as values of the call.
        return caller(operands or self._folded).call(self._entry, operands, self._folded)

    def _call(self, operands, folded):
        B, arrays = self._arrays(operands)
        everything = arrays + self._constants(B, arrays, folded)
        return self._planned(_itemsize(everything)).evaluate(B, everything)

    def vjp(self, operands, cotangent, *, wrt=None):
        """The gradients of the non-constant operands (None for those not in
        `wrt`, which counts among the non-constant operands)."""
        operands = tuple(operands)
        B, arrays = self._arrays(operands, (cotangent,))
        cot = B.asarray(cotangent)
        if shape_of(cot) != self._out:
            raise CotangentError(f"the cotangent has shape {shape_of(cot)} but the output of "
                                 f"the expression has shape {self._out}",
                                 equation=self.equation, position=len(self.equation))
        want = wanted(wrt, len(arrays), self.equation)
        everything = arrays + self._constants(B, arrays)
        plan = self._planned(_itemsize(everything + [cot]))
        return plan.gradients(B, everything, cot, want)[:len(arrays)]

    def _arrays(self, operands, extra=()):
        """The backend and the operands as its arrays, their shapes checked."""
        if len(operands) != len(self.variables):
            raise OperandCountError(f"the expression takes {len(self.variables)} operand(s) "
                                    f"(those not among constants={self.constants}) but "
                                    f"{len(operands)} were given", equation=self.equation)
        B = backend_for(operands + extra if operands or extra else self._folded)
        arrays = [B.asarray(x) for x in operands]
        for j, (k, x) in enumerate(zip(self.variables, arrays)):
            check_shape(self._spec, k, shape_of(x), self.shapes[j], j)
        return B, arrays

    def _constants(self, B, arrays, folded=None):
        """The folded constants (`folded`, by default the expression's own) as
        operands for backend `B`: as they are when they go with the operands
        (NumPy constants go with JAX: converted on each call, so that no traced
        value is kept), else converted once."""
        folded = self._folded if folded is None else folded
        found = self._by_backend.get(B)
        if found is None:
            try:
                same = backend_for(list(self._folded) + arrays[:1]) is B
            except BackendError:
                same = False
            found = self._by_backend[B] = (same, None if same else
                                           [B.asarray(c) for c in self._folded])
        same, converted = found
        return [B.asarray(c) for c in folded] if same else list(converted)


def _positions(constants, n, equation):
    try:
        ks = sorted({operator.index(k) for k in constants})
    except TypeError:
        raise SignatureError(f"constants={constants!r} must be a sequence of operand "
                             f"positions") from None
    bad = [k for k in ks if not 0 <= k < n]
    if bad:
        raise OperandCountError(f"constants={list(constants)}: position(s) {bad} are not "
                                f"operands; there are {n}, 0 to {n - 1}", equation=equation)
    return ks


def _as_shape(shape, k, equation):
    try:
        return tuple(operator.index(d) for d in shape)
    except TypeError:
        raise SignatureError(f"operand {k}: {type(shape).__name__} is not a shape (a tuple "
                             f"of ints); give the operand itself only at the positions in "
                             f"constants=", equation=equation) from None


def _fold(ge, path, constant):
    """Split the contraction `path` of `ge`: the steps over constants only
    (one GE and path per group of constants they join) and the rest, a GE
    over the non-constant operands then the groups' results, with its path."""
    entries = list(range(len(ge.terms)))
    groups = {k: (k,) for k in constant}  # entry -> the constants it holds
    const_steps, rest = [], []
    for positions in path:
        ins = [entries[p] for p in positions]
        for p in sorted(positions, reverse=True):
            del entries[p]
        out = len(ge.terms) + len(const_steps) + len(rest)
        if all(i in groups for i in ins):
            groups[out] = tuple(sorted(k for i in ins for k in groups[i]))
            const_steps.append((ins, out))
        else:
            rest.append((ins, out))
        entries.append(out)
    used = {i for ins, _ in rest for i in ins} | set(entries)
    folded = sorted(i for i in groups if i in used)
    folds, terms = [], [ge.terms[k] for k in range(len(ge.terms)) if k not in constant]
    for i in folded:
        members = groups[i]
        if len(members) == 1:
            folds.append((members, None))
            terms.append(ge.terms[members[0]])
            continue
        outside = set(ge.out).union(*(t for k, t in enumerate(ge.terms) if k not in members))
        labels = list(dict.fromkeys(lab for k in members for lab in ge.terms[k]
                                    if lab in outside))
        steps = [(ins, out) for ins, out in const_steps if set(groups[out]) <= set(members)]
        sub = GE([ge.terms[k] for k in members], labels)
        folds.append((members, plan_for(sub, _linear(members, steps))))
        terms.append(tuple(labels))
    start = [k for k in range(len(ge.terms)) if k not in constant] + folded
    return folds, GE(terms, ge.out, ge.coeff), _linear(start, rest)


def _linear(start, steps):
    """Steps over entry numbers as a linear path (positions in the list left)."""
    entries, path = list(start), []
    for ins, out in steps:
        positions = tuple(entries.index(i) for i in ins)
        for p in sorted(positions, reverse=True):
            del entries[p]
        entries.append(out)
        path.append(positions)
    return path


def _run_folds(folds, values):
    """Each group of constants contracted, on the constants' own library."""
    if not folds:
        return []
    B = backend_for([values[k] for members, _ in folds for k in members])
    out = []
    for members, plan in folds:
        arrays = [B.asarray(values[k]) for k in members]
        out.append(arrays[0] if plan is None else plan(B, arrays))
    return out
