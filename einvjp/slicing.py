"""Memory you can bound: a GE run slice by slice, its backward recomputing
instead of storing, and the search for the cheapest such run under a limit.

* `SlicedPlan` — the GE at each value of some labels (a slice: those labels
  fixed, their axes gone), summed or written into the result; the gradients
  accumulated over the slices.  Within a slice the backward keeps only some
  intermediates ("checkpoints") and recomputes the others when it needs them;
* `limited(ge, optimize, limit, itemsize, backward)` — the plan whose peak
  (of the forward, or of the all-operand VJP) fits `limit` bytes with the
  fewest flops, by the exact costs of `einvjp.cost`: first recomputation, then
  labels sliced one by one (the one that lowers the peak most); or an
  `EinvjpError` naming the smallest peak reachable.  The arrays are planned
  to fit `limit` less an eighth (at most 64 KiB), left for the Python
  objects a call makes;
* `cotengra_slices(ge, optimize)` — the labels a cotengra optimizer sliced.

>>> import numpy as np
>>> from einvjp.equation import bind, parse
>>> ge = bind(parse("ab,bc->ac"), [(3, 4), (4, 5)])
>>> p = SlicedPlan(ge, [ge.terms[0][1]], [(0, 1)])
>>> from einvjp.backends.numpy import BACKEND
>>> x, y = np.ones((3, 4)), np.ones((4, 5))
>>> p(BACKEND, [x, y])[0]
array([4., 4., 4., 4., 4.])
"""

from __future__ import annotations

import itertools
import math

from .cost import Cost, PlanCost, plan_cost
from .errors import EinvjpError
from .ge import GE
from .plan import Contraction, _kept, plan_for


class MemoryLimitError(EinvjpError):
    """No plan keeps the peak under `memory_limit=`."""


class SlicedPlan(Contraction):
    """`ge` over every value of the `sliced` labels, each slice contracted by
    the plan of the GE without them along `path`; `every`: the backward
    keeps one intermediate in `every` (None: all) and recomputes the rest."""

    def __init__(self, ge, sliced, path, every=None):
        self.ge, self.n, self.path, self.every = ge, len(ge.terms), path, every
        self.sliced = tuple(sliced)
        gone = set(self.sliced)
        inner = GE([[lab for lab in t if lab not in gone] for t in ge.terms],
                   [lab for lab in ge.out if lab not in gone], ge.coeff)
        self.inner = plan_for(inner, path if self.n > 2 else "auto")
        self.steps = self.inner.steps
        self.at = [self._axes(t) for t in ge.terms]
        self.out_at = self._axes(ge.out)
        self.count = math.prod(lab.size for lab in self.sliced)
        self.keep = None if every is None else {
            self.n + t for t in range(len(self.steps)) if (t + 1) % every == 0}
        self._first = None  # run only the first slices (the cost's two-slice count)

    def _axes(self, term):
        """(axis, position of its label among the sliced) for each sliced axis."""
        return [(a, self.sliced.index(lab)) for a, lab in enumerate(term) if lab in self.sliced]

    def slices(self):
        values = itertools.product(*(range(lab.size) for lab in self.sliced))
        return values if self._first is None else itertools.islice(values, self._first)

    def __call__(self, B, operands):
        out_shape = tuple(lab.size for lab in self.ge.out)
        out = None
        for values in self.slices():
            r = self.inner(B, [B.index(x, {a: values[p] for a, p in at})
                               for x, at in zip(operands, self.at)])
            if out is None:
                out = B.full(out_shape, 0, r)
            out = B.add_at(out, {a: values[p] for a, p in self.out_at}, r)
            r = None  # freed before the next slice
        return out if out is not None else B.full(out_shape, 0, operands[0])

    def forward(self, B, operands, keep_output=True):
        """The operands (the backward recomputes each slice), and the result."""
        return list(operands) + ([self(B, operands)] if keep_output else [])

    def vjp(self, B, slots, cotangent, wanted):
        operands, wanted = slots[:self.n], sorted(set(wanted))
        grads = {}
        for values in self.slices():
            sub = [B.index(x, {a: values[p] for a, p in at}) for x, at in zip(operands, self.at)]
            ct = B.index(cotangent, {a: values[p] for a, p in self.out_at})
            inner = self.inner.forward(B, sub, keep_output=False, keep=self.keep)
            g = self.inner.vjp(B, inner, ct, wanted)
            inner = sub = ct = None
            for k in wanted:
                if k not in grads:
                    grads[k] = B.full(tuple(lab.size for lab in self.ge.terms[k]), 0, g[k])
                grads[k] = B.add_at(grads[k], {a: values[p] for a, p in self.at[k]}, g[k])
            g = None
        for k in wanted:
            if k not in grads:  # no slice at all (a sliced label of size 0)
                grads[k] = B.full(tuple(lab.size for lab in self.ge.terms[k]), 0, operands[k])
        return tuple(grads.get(k) for k in range(self.n))

    def cost_at(self, itemsize):
        """Counted on the first slice and on the first two: every slice runs
        the same operations, so the count over all of them follows."""
        costs = self.__dict__.setdefault("_costs", {})
        if itemsize not in costs:
            counts = []
            for first in (1, 2):
                self._first = first
                try:
                    counts.append(plan_cost(self, itemsize))
                finally:
                    self._first = None
            one, two = counts
            costs[itemsize] = two if self.count == 2 else one if self.count < 2 else \
                PlanCost(_extrapolate(one.forward, two.forward, self.count),
                         _extrapolate(one.vjp, two.vjp, self.count), itemsize)
        return costs[itemsize]

    def describe(self):
        """A line for the table: the slices and the checkpoints."""
        parts = []
        if self.sliced:
            names = ", ".join(repr(lab.name) for lab in self.sliced)
            parts.append(f"sliced over {names}: {self.count} slices, each running the "
                         f"steps below")
        if self.every:
            parts.append(f"the backward keeps 1 intermediate in {self.every} and "
                         f"recomputes the others")
        return "; ".join(parts)


def _extrapolate(one, two, count):
    return Cost(one.flops + (count - 1) * (two.flops - one.flops), max(one.peak, two.peak),
                one.allocated + (count - 1) * (two.allocated - one.allocated),
                max(one.peak_with_results, two.peak_with_results))


def cotengra_slices(ge, optimize):
    """The labels a cotengra optimizer sliced when it planned `ge` (its last
    tree's `sliced_inds`, over the numbers `plan._path` gave the labels)."""
    tree = getattr(optimize, "tree", None) if hasattr(optimize, "search") else None
    if tree is None:
        try:
            tree = optimize.best["tree"]
        except (AttributeError, KeyError, TypeError):
            return []
    inds = getattr(tree, "sliced_inds", None) or {}
    keeps, _ = _kept(ge)
    number = {}
    for labels in keeps:
        for lab in labels:
            number.setdefault(lab, len(number))
    by_number = {v: k for k, v in number.items()}
    return [by_number[i] for i in inds if i in by_number and by_number[i].size > 1]


def _figures(p, itemsize, backward):
    """(peak, flops) that a limit is checked against: the forward's, or with
    `backward` the larger peak of the forward and the VJP, and the VJP's flops."""
    c = p.cost_at(itemsize)
    if backward:
        return max(c.forward.peak, c.vjp.peak), c.vjp.flops
    return c.forward.peak, c.forward.flops


def limited(ge, optimize, limit, itemsize, backward, sliced=()):
    """The cheapest plan of `ge` whose peak fits `limit` bytes (see the
    module docstring); `sliced`: labels to slice in any case."""
    base = plan_for(ge, optimize)
    sliced = list(sliced)
    # The sliced GE along the forward's path, or planned anew (slicing a
    # label may change the best order: a batch label gone, say).
    paths = [base.path]
    if not isinstance(optimize, (list, tuple)):
        paths.append(optimize if isinstance(optimize, str) else "auto")
    given = limit
    if limit is not None:  # room for the interpreter's own objects during the call
        limit = limit - min(limit // 8, 65536)
    if not sliced and (limit is None or _figures(base, itemsize, backward)[0] <= limit):
        return base
    smallest = None
    while True:
        options = [SlicedPlan(ge, sliced, path, every) for path in paths[:1 + bool(sliced)]
                   for every in _checkpoints(len(base.steps), backward)]
        figures = [(_figures(o, itemsize, backward), o) for o in options]
        fits = [(flops, o) for (peak, flops), o in figures if limit is None or peak <= limit]
        if fits:
            return min(fits, key=lambda t: t[0])[1]
        low = min(peak for (peak, _), _ in figures)
        smallest = low if smallest is None else min(smallest, low)
        candidates = _candidates(ge, sliced, base)
        if not candidates:
            raise _no_fit(given, ge, smallest, "with every label sliced")
        # Each label tried along each path, with all intermediates kept and
        # with the checkpoints that did best so far (all choices come back
        # next round); the one that lowers the peak most wins (then the
        # fewer flops).
        lowest = min(figures, key=lambda t: t[0])[1].every
        best = None
        for lab in candidates:
            for path in paths:
                for every in {None, lowest}:
                    figure = _figures(SlicedPlan(ge, sliced + [lab], path, every), itemsize,
                                      backward)
                    if best is None or figure < best[0]:
                        best = (figure, lab)
        if math.prod(lab.size for lab in sliced) > 1 << 24:
            raise _no_fit(given, ge, smallest, "within 2^24 slices")
        sliced.append(best[1])


def _no_fit(limit, ge, smallest, where):
    return MemoryLimitError(
        f"memory_limit={limit} bytes: no plan of {len(ge.terms)} operand(s) fits {where}; "
        f"the smallest peak reached is {smallest} bytes (and 1/8 more, at most 64 KiB, is "
        f"kept for the call's Python objects)")


def _checkpoints(steps, backward):
    """The backward's choices: keep all, or one intermediate in k."""
    if not backward or steps < 3:
        return [None]
    ks = {2, 4, max(2, round(math.sqrt(steps))), 8, 16}
    return [None] + sorted(k for k in ks if k < steps)


def _candidates(ge, sliced, base, top=12):
    """Labels worth slicing next: size > 1, carried by an operand, not yet
    sliced; those of the largest intermediates first."""
    score = {}
    for step in base.steps:
        size = math.prod(lab.size for lab in step.ge.out)
        for lab in set(step.ge.out).union(*step.ge.terms):
            big, total = score.get(lab, (0, 0))
            score[lab] = (max(big, size), total + size)
    carried = {lab for t in ge.terms for lab in t}
    labels = [lab for lab in carried if lab.size > 1 and lab not in sliced]
    return sorted(labels, key=lambda lab: tuple(-v for v in score.get(lab, (0, 0))))[:top]
