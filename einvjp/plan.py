"""Planning a GE: a list of steps over numbered slots (the operands first,
then one slot per step), each a small GE of one kind, laid out once and
lowered once to backend operations (`einvjp.ops`):

* `Unary` — one operand: diagonal extraction, sums, transpose, broadcast of
  output-only labels (a zero-copy view), diagonal embedding (a write into a
  diagonal view of zeros), coefficient;
* `Binary` — two operands with distinct labels: a pairwise contraction as a
  `matmul` over (batch, kept, contracted) labels, a batch of dot products,
  or a broadcast multiply when nothing is contracted;
* `Plan` — opt_einsum orders the binary steps; its VJP walks the steps
  backwards, each step's VJP the role swap (a step of the same kind), so the
  backward reuses the forward's intermediates;
* `plan_for` — plans cached by the GE's canonical key.
"""

from __future__ import annotations

import math
import operator
from collections import Counter

import opt_einsum

from .backend import unshared
from .cost import plan_cost, table
from .errors import EinvjpError
from .ge import GE
from .ops import permutation, binary_ops, unary_ops
from .paths import auto_path


def _distinct(labels):
    return list(dict.fromkeys(labels))


class Unary:
    """One operand: term -> out, with every GE feature a single operand has."""
    __slots__ = ("groups", "sum_axes", "squeeze", "perm", "expand_shape",
                 "broadcast_shape", "embed", "out_shape", "coeff", "in_shape")

    def __init__(self, term, out, coeff=1):
        self.in_shape = tuple(lab.size for lab in term)
        out_set = set(out)
        distinct = _distinct(term)
        groups = tuple(tuple(a for a, lab in enumerate(term) if lab is d) for d in distinct)
        self.groups = groups if any(len(g) > 1 for g in groups) else None
        self.sum_axes = tuple(a for a, lab in enumerate(distinct) if lab not in out_set)
        kept = [lab for lab in distinct if lab in out_set]
        self.squeeze = None
        if self.sum_axes and all(distinct[a].size == 1 for a in self.sum_axes):
            # Summing size-1 axes is a reshape (the broadcast labels of §1).
            self.squeeze, self.sum_axes = tuple(lab.size for lab in kept), ()
        out_distinct = _distinct(out)
        present = [lab for lab in out_distinct if lab in set(kept)]
        self.perm = permutation(kept, present)
        self.expand_shape = self.broadcast_shape = None
        if len(present) < len(out_distinct):
            self.expand_shape = tuple(lab.size if lab in set(kept) else 1 for lab in out_distinct)
            self.broadcast_shape = tuple(lab.size for lab in out_distinct)
        self.embed = None
        if len(out_distinct) < len(out):
            self.embed = tuple(tuple(a for a, lab in enumerate(out) if lab is d)
                               for d in out_distinct)
        self.out_shape = tuple(lab.size for lab in out)
        self.coeff = coeff


class Binary:
    """Two operands with distinct labels -> `lc` (every label of an operand is
    either in the other operand or in `lc`)."""
    __slots__ = ("mode", "perm_a", "shape_a", "swap_a", "perm_b", "shape_b", "swap_b",
                 "flip", "shape_c", "perm_c", "sum_axes", "in_shapes")

    def __init__(self, la, lb, lc):
        self.in_shapes = (tuple(lab.size for lab in la), tuple(lab.size for lab in lb))
        sa, sb, sc = set(la), set(lb), set(lc)
        batch = [lab for lab in la if lab in sb and lab in sc]
        a_keep = [lab for lab in la if lab in sc and lab not in sb]
        b_keep = [lab for lab in lb if lab in sc and lab not in sa]
        con = [lab for lab in la if lab in sb and lab not in sc]
        size = lambda labs: math.prod(lab.size for lab in labs)  # noqa: E731
        sizes = lambda labs: tuple(lab.size for lab in labs)  # noqa: E731
        if size(con) == 1:  # nothing (or only size-1 labels) to contract: broadcast multiply
            # Each side is laid out in lc's order with size-1 axes for the
            # labels it lacks, so the product comes out in lc's order.
            self.mode = "mul"
            self.perm_a = permutation(la, [lab for lab in lc if lab in sa] + con)
            self.shape_a = tuple(lab.size if lab in sa else 1 for lab in lc)
            self.perm_b = permutation(lb, [lab for lab in lc if lab in sb] + con)
            self.shape_b = tuple(lab.size if lab in sb else 1 for lab in lc)
            self.swap_a = self.swap_b = self.flip = False
            natural = list(lc)
        elif batch and not a_keep and not b_keep:
            # A batch of dot products: multiply and sum, not a bmm of 1xk @ kx1.
            # In a's layout (b brought to it), the contracted axes summed
            # where they are: no transposed copy of a (as `_Writer.dot`).
            self.mode = "dot"
            self.perm_a = None
            self.perm_b = permutation(lb, list(la))
            self.shape_a = self.shape_b = None  # as they are
            self.sum_axes = tuple(k for k, lab in enumerate(la) if lab not in sc)
            self.swap_a = self.swap_b = self.flip = False
            natural = batch
        else:
            self.mode = "mm"
            lead = (size(batch),) if batch else ()
            # Each side keeps whichever of its two matrix layouts it already
            # has; the other one is handed to matmul as a transposed view.
            self.swap_a = permutation(la, batch + a_keep + con) is not None and \
                permutation(la, batch + con + a_keep) is None
            self.perm_a = permutation(la, batch + (con + a_keep if self.swap_a else a_keep + con))
            self.shape_a = lead + ((size(con), size(a_keep)) if self.swap_a
                                   else (size(a_keep), size(con)))
            self.swap_b = permutation(lb, batch + b_keep + con) is None and \
                permutation(lb, batch + con + b_keep) is not None
            self.perm_b = permutation(lb, batch + (b_keep + con if self.swap_b else con + b_keep))
            self.shape_b = lead + ((size(b_keep), size(con)) if self.swap_b
                                   else (size(con), size(b_keep)))
            # When lc wants b's labels first, compute (b^T a^T) = c^T: the
            # result then comes out in lc's order instead of as a transposed view.
            self.flip = permutation(batch + a_keep + b_keep, list(lc)) is not None and \
                permutation(batch + b_keep + a_keep, list(lc)) is None
            # A transposed matrix times a column vector: computed as the row
            # vector times the matrix as it is laid out (XLA's CPU dot is
            # several times slower on the first; BLAS does not mind).
            if size(b_keep) == 1 and self.swap_a and not self.swap_b:
                self.flip = True
            natural = batch + (b_keep + a_keep if self.flip else a_keep + b_keep)
        self.shape_c = sizes(natural)
        self.perm_c = permutation(natural, list(lc))


class Step:
    """`slots[out] = ops(B, *slots[ins])`: the step's layout `op`, lowered
    once to backend operations `ops`, with the step's own GE for its VJP."""
    __slots__ = ("ge", "op", "ops", "ins", "out", "optimize", "vjp_plans")

    def __init__(self, ge, ins, out, optimize):
        self.ge, self.ins, self.out, self.optimize = ge, ins, out, optimize
        self.vjp_plans = [None] * len(ins)
        if len(ins) == 1:
            self.op = Unary(ge.terms[0], ge.out, ge.coeff)
            self.ops = unary_ops(self.op)
        else:
            self.op = Binary(ge.terms[0], ge.terms[1], ge.out)
            self.ops = binary_ops(self.op)

    def vjp(self, B, j, cotangent, slots):
        """Cotangent of input j of this step: the role swap, run as a plan."""
        if self.vjp_plans[j] is None:
            self.vjp_plans[j] = plan_for(self.ge.vjp(j), self.optimize)
        others = [slots[i] for n, i in enumerate(self.ins) if n != j]
        return self.vjp_plans[j](B, [cotangent] + others)


class Contraction:
    """What every planned GE offers (a `Plan`, or one run slice by slice):
    `evaluate` and `gradients` (what `einvjp.einsum` and `einvjp.vjp` run),
    its `cost`, and a printed table of its steps and costs.  A subclass
    defines `ge`, `n`, `__call__`, `forward` and `vjp`."""

    def __repr__(self):
        return table(self)

    @property
    def cost(self):
        """Flops and peak bytes of the forward and the all-operand VJP, for
        float64 operands (`cost_at(itemsize)` for others): `einvjp.cost.PlanCost`."""
        return self.cost_at(8)

    def cost_at(self, itemsize):
        costs = self.__dict__.setdefault("_costs", {})
        if itemsize not in costs:
            costs[itemsize] = plan_cost(self, itemsize)
        return costs[itemsize]

    def evaluate(self, B, arrays):
        """What `einvjp.einsum` runs: the result, writeable."""
        return B.writeable(B.apply(self, arrays))

    def gradients(self, B, arrays, cotangent, wanted):
        """What `einvjp.vjp` runs: the forward's intermediates, then the
        gradients of the operands in `wanted`, each in its operand's dtype
        and sharing memory with no operand, the cotangent or another one."""
        slots = self.forward(B, arrays, keep_output=False)
        grads = self.vjp(B, slots, cotangent, wanted)
        grads = [None if g is None else B.cast_like(g, x) for g, x in zip(grads, arrays)]
        return tuple(unshared(B, grads, list(arrays) + [cotangent]))


class Plan(Contraction):
    """A GE compiled to steps; call it to evaluate, or `vjp` for gradients."""

    def __init__(self, ge: GE, optimize="auto"):
        self.ge = ge
        self.n = len(ge.terms)
        self.steps = []
        self.path = [(0,)]  # the linear contraction path run (opt_einsum's format)
        if self.n == 1:
            self._add(GE(ge.terms, ge.out, ge.coeff), (0,), optimize)
            return
        keeps, final = _kept(ge)
        slots = []  # (slot, labels) of the operands still to contract
        for k, (term, keep) in enumerate(zip(ge.terms, keeps)):
            if keep != list(term):
                slots.append((self._add(GE((term,), keep), (k,), optimize), keep))
            else:
                slots.append((k, list(term)))
        path = self.path = [tuple(p) for p in _path(keeps, final, optimize)]
        for positions in path:
            picked = [slots[p] for p in positions]
            for p in sorted(positions, reverse=True):
                del slots[p]
            while len(picked) > 1:
                (sa, la), (sb, lb) = picked[0], picked[1]
                needed = set(final).union(*(set(lab) for _, lab in slots + picked[2:]))
                lc = [lab for lab in _distinct(la + lb) if lab in needed]
                if not slots and len(picked) == 2 and sorted(map(id, lc)) == sorted(map(id, final)):
                    lc = final  # the last contraction writes the final order
                picked = [(self._add(GE((la, lb), lc), (sa, sb), optimize), lc)] + picked[2:]
            slots.append(picked[0])
        (slot, labels), = slots
        if labels != list(ge.out) or ge.coeff != 1:
            self._add(GE((labels,), ge.out, ge.coeff), (slot,), optimize)

    def _add(self, ge, ins, optimize) -> int:
        out = self.n + len(self.steps)
        self.steps.append(Step(ge, ins, out, optimize))
        return out

    def __call__(self, B, operands):
        """The result; each intermediate is dropped once the step that
        reads it has run (each is read by one step: the path is a tree)."""
        slots = list(operands)
        for step in self.steps:
            slots.append(step.ops(B, *(slots[i] for i in step.ins)))
            for i in step.ins:
                if i >= self.n:
                    slots[i] = None
        return slots[-1]

    def forward(self, B, operands, keep_output=True, keep=None):
        """Evaluate, keeping every intermediate (for `vjp`, which does not
        need the output itself: `keep_output=False` skips the last step) or,
        given `keep` (a set of slots), only those: `vjp` recomputes the
        others from the nearest kept ones when it needs them."""
        slots = list(operands)
        for step in self.steps if keep_output else self.steps[:-1]:
            slots.append(step.ops(B, *(slots[i] for i in step.ins)))
            if keep is not None:
                for i in step.ins:
                    if i >= self.n and i not in keep:
                        slots[i] = None
        return slots

    def _slot(self, B, slots, i):
        """slots[i], recomputed (with what it is made from) if it was dropped."""
        if slots[i] is None:
            step = self.steps[i - self.n]
            slots[i] = step.ops(B, *(self._slot(B, slots, k) for k in step.ins))
        return slots[i]

    def vjp(self, B, slots, cotangent, wanted):
        """Gradients of the operands in `wanted` (others are None), walking
        the steps backwards and reusing the forward's `slots` (an
        intermediate is dropped from the list once no VJP reads it)."""
        needed = set(wanted)
        for step in self.steps:
            if needed.intersection(step.ins):
                needed.add(step.out)
        cts = {self.n + len(self.steps) - 1: cotangent}
        for step in reversed(self.steps):
            ct = cts.pop(step.out, None)
            if ct is None:
                continue
            if len(step.ins) == 2:  # each VJP reads the other operand: recompute it if dropped
                a, b = step.ins
                if slots[a] is None and b in needed:
                    self._slot(B, slots, a)
                if slots[b] is None and a in needed:
                    self._slot(B, slots, b)
            for j, i in enumerate(step.ins):
                if i in needed:
                    g = step.vjp(B, j, ct, slots)
                    cts[i] = g if i not in cts else B.add(cts[i], g)
            g = None  # not kept past its sum
            for i in step.ins:  # no earlier step's VJP reads this step's inputs
                if i >= self.n:
                    slots[i] = None
        # a list: `tuple(generator)` leaves tuples in CPython's free lists, one per call
        return [cts.get(k) if k in needed else None for k in range(self.n)]


def _kept(ge):
    """Per operand, the distinct labels that survive its own sums (those in
    the output or in another operand), and the output's distinct labels that
    some operand carries: what the pairwise path is planned over."""
    out_set = set(ge.out)
    count = Counter(lab for term in ge.terms for lab in set(term))
    keeps = [[lab for lab in _distinct(term) if lab in out_set or count[lab] > 1]
             for term in ge.terms]
    return keeps, [lab for lab in _distinct(ge.out) if count[lab]]


def path_for(ge: GE, optimize="auto"):
    """The linear contraction path (opt_einsum's format) a `Plan` of `ge` runs."""
    keeps, final = _kept(ge)
    return [tuple(p) for p in _path(keeps, final, optimize)] if len(ge.terms) > 1 else [(0,)]


def _path(inputs, output, optimize):
    """opt_einsum's contraction order over label sets (numbers, not letters)."""
    if len(inputs) == 1:
        return [(0,)]
    if len(inputs) == 2:
        return [(0, 1)]
    number = {}
    for labels in inputs:
        for lab in labels:
            number.setdefault(lab, len(number))
    sets = [frozenset(number[lab] for lab in labels) for labels in inputs]
    size_dict = {number[lab]: lab.size for lab in number}
    out = frozenset(number[lab] for lab in output)
    if isinstance(optimize, (list, tuple)):  # a path; numpy.einsum_path's starts with a tag
        return [tuple(p) for p in optimize if not isinstance(p, str)]
    if optimize is False:  # as written, left to right (numpy's optimize=False)
        return [(0, 1)] * (len(inputs) - 1)
    if optimize in ("auto", True, None):
        return auto_path(sets, out, size_dict)
    if isinstance(optimize, str):
        try:
            fn = opt_einsum.paths.get_path_fn(optimize)
        except KeyError as err:
            raise EinvjpError(f"optimize={optimize!r} is not an opt_einsum path method; "
                              f"use e.g. 'auto', 'greedy', 'optimal', 'dp', 'branch-1', "
                              f"an explicit path, or a path optimizer") from err
        return fn(sets, out, size_dict, None)
    if callable(optimize):
        return optimize(sets, out, size_dict, None)  # a PathOptimizer (e.g. cotengra)
    raise EinvjpError(f"optimize={optimize!r} is not a path method, a path or a path optimizer")


def check_optimize(optimize, n):
    """Raise an EinvjpError unless `optimize` is a path method (a name
    opt_einsum knows, True/False/None), a path optimizer (callable) or an
    explicit path that contracts all `n` operands: pairs (or groups) of
    positions in the list of operands left, as `numpy.einsum_path` and
    `opt_einsum.contract_path` give it (a leading "einsum_path" tag is
    allowed)."""
    if optimize in ("auto", True, False, None) or callable(optimize):
        return
    if isinstance(optimize, str):
        try:
            opt_einsum.paths.get_path_fn(optimize)
        except KeyError as err:
            raise EinvjpError(f"optimize={optimize!r} is not an opt_einsum path method; "
                              f"use e.g. 'auto', 'greedy', 'optimal', 'dp', 'branch-1', "
                              f"an explicit path, or a path optimizer") from err
        return
    if not isinstance(optimize, (list, tuple)):
        raise EinvjpError(f"optimize={optimize!r} is not a path method, a path or a path "
                          f"optimizer")
    steps = list(optimize[1:] if optimize and isinstance(optimize[0], str) else optimize)
    left = n
    for k, step in enumerate(steps):
        try:
            positions = [int(operator.index(p)) for p in step]
            if any(isinstance(p, bool) for p in step):
                raise TypeError
        except TypeError:
            raise EinvjpError(f"optimize: step {k} of the path, {step!r}, is not a tuple of "
                              f"operand positions") from None
        bad = [p for p in positions if not 0 <= p < left]
        if not positions or bad or len(set(positions)) < len(positions):
            why = f"position(s) {bad} out of range" if bad else "an empty step" if not \
                positions else "a position given twice"
            raise EinvjpError(f"optimize: step {k} of the path, {tuple(positions)}, has {why} "
                              f"({left} operand(s) are left at that step)")
        left -= len(positions) - 1
    if left != 1:
        raise EinvjpError(f"optimize: the path {list(steps)} leaves {left} operands of {n} "
                          f"uncontracted; it must contract them all to one")


class _Held:
    """An unhashable `optimize=` in a cache key: compared by identity and kept
    alive by the key, so no new object can take its id while its plan is cached."""
    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return type(other) is _Held and other.obj is self.obj


def optimize_key(optimize):
    """The cache key of `optimize=`: an explicit path by the value of its
    steps (a list may be changed after the call), anything else by itself
    (held by the key: never by a bare `id()`, which a new object can reuse).

    >>> optimize_key([(1, 2), [0, 1]]), optimize_key("greedy")
    (('path', (1, 2), (0, 1)), 'greedy')
    """
    key = optimize
    if isinstance(optimize, (list, tuple)):
        key = ("path",) + tuple(tuple(s) if isinstance(s, (list, tuple)) else s
                                for s in optimize)
    try:
        hash(key)
    except TypeError:
        return _Held(optimize)
    return key


_plans = {}


def plan_for(ge: GE, optimize="auto") -> Plan:
    """The cached plan of a GE (by canonical key)."""
    key = (ge.key(), optimize_key(optimize))
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = Plan(ge, optimize)
    return plan
