"""What a planned contraction costs: flops and peak memory, counted by
running the very code of a call on shape-only arrays.

* `Meta` — an array that has a shape, strides and a buffer but no values;
* `Ledger` — the bytes alive, event by event (a buffer is freed when the
  last array on it goes, as NumPy's are);
* `MetaBackend` — the NumPy backend's operations on `Meta` arrays, with
  NumPy's rules for which of them copy (a reshape copies exactly when NumPy's
  does) and a flop count per operation;
* `Cost`, `measure` — forward and all-operand VJP figures of a call.

Flops: one per multiply and one per add (a matmul of m×k by k×n is 2·m·k·n,
a sum is one add per element read); views and copies cost none.  Memory:
bytes of the arrays einvjp allocates, beyond the operands, the cotangent and
the results, and the buffer NumPy iterates a broadcast operand through (up
to 8192 elements, freed at once); "peak" is the most alive at once.

>>> from einvjp.ge import GE, Index
>>> i, j, k = Index("i", 10), Index("j", 20), Index("k", 30)
>>> c = Cost.of(lambda B, xs: B.matmul(*xs), [(10, 20), (20, 30)])
>>> c.flops, c.allocated, c.peak
(12000, 2400, 0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .backend import Backend


class Ledger:
    """Bytes alive over a run: `events` of (+bytes or -bytes, buffer key)."""

    def __init__(self):
        self.events = []
        self.flops = 0
        self.buffers = 0  # buffers made so far: the next one's key

    def peak(self, exclude=frozenset()):
        """The most bytes alive at once, not counting buffers in `exclude`."""
        alive = peak = 0
        for delta, key in self.events:
            if key not in exclude:
                alive += delta
                peak = max(peak, alive)
        return peak

    def allocated(self):
        return sum(d for d, _ in self.events if d > 0)


class _Buffer:
    __slots__ = ("nbytes", "ledger", "key")

    def __init__(self, nbytes, ledger):
        self.nbytes, self.ledger = nbytes, ledger
        self.key = ledger.buffers
        ledger.buffers += 1
        ledger.events.append((nbytes, self.key))

    def __del__(self):
        self.ledger.events.append((-self.nbytes, self.key))


def _c_strides(shape):
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))


class Meta:
    """A shape-only array: `strides` in elements, on a `buffer` (a
    `_Buffer` the call allocated, or any object standing for an operand's)."""
    __slots__ = ("shape", "strides", "buffer", "itemsize", "writeable")

    def __init__(self, shape, itemsize, buffer=None, strides=None, writeable=True):
        self.shape = tuple(int(d) for d in shape)
        self.strides = _c_strides(self.shape) if strides is None else tuple(strides)
        self.buffer, self.itemsize, self.writeable = buffer, itemsize, writeable

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def dtype(self):
        return self

    def view(self, shape, strides, writeable=None):
        return Meta(shape, self.itemsize, self.buffer, strides,
                    self.writeable if writeable is None else writeable)


def _nocopy_strides(shape, strides, new):
    """The strides of a view of `shape`/`strides` reshaped to `new`, or None
    when NumPy must copy (its `_attempt_nocopy_reshape`, C order)."""
    if math.prod(shape) == 0:
        return _c_strides(new)
    old = [(d, s) for d, s in zip(shape, strides) if d != 1]
    odims, ostr = [d for d, _ in old], [s for _, s in old]
    out = [0] * len(new)
    oi, oj, ni, nj = 0, 1, 0, 1
    while ni < len(new) and oi < len(odims):
        np_, op = new[ni], odims[oi]
        while np_ != op:
            if np_ < op:
                np_ *= new[nj]
                nj += 1
            else:
                op *= odims[oj]
                oj += 1
        for ok in range(oi, oj - 1):
            if ostr[ok] != odims[ok + 1] * ostr[ok + 1]:
                return None
        out[nj - 1] = ostr[oj - 1]
        for nk in range(nj - 1, ni, -1):
            out[nk - 1] = out[nk] * new[nk]
        ni, nj, oi, oj = nj, nj + 1, oj, oj + 1
    last = out[ni - 1] if ni >= 1 else 1
    for nk in range(ni, len(new)):
        out[nk] = last
    return tuple(out)


def _permuted(x, perm):
    return x.view([x.shape[p] for p in perm], [x.strides[p] for p in perm])


def _broadcast(*shapes):
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    return tuple(next((d for d in ds if d != 1), 1) for ds in zip(*padded))


class MetaBackend(Backend):
    """The NumPy backend's operations on `Meta` arrays: what each allocates
    and how many flops it does, recorded in `ledger`."""
    name = "meta"
    numbers_as_arrays = False

    def __init__(self, ledger, itemsize=8):
        self.ledger, self.itemsize = ledger, itemsize

    def new(self, shape, flops=0):
        self.ledger.flops += flops
        shape = tuple(shape)
        return Meta(shape, self.itemsize, _Buffer(math.prod(shape) * self.itemsize,
                                                  self.ledger))

    # views
    def transpose(self, x, perm):
        return _permuted(x, perm)

    def swap_last(self, x):
        perm = list(range(len(x.shape)))
        perm[-2:] = perm[-1], perm[-2]
        return _permuted(x, perm)

    def reshape(self, x, shape):
        strides = _nocopy_strides(x.shape, x.strides, tuple(shape))
        if strides is None:
            return self.new(shape)
        return x.view(shape, strides)

    def broadcast_to(self, x, shape):
        lead = len(shape) - len(x.shape)
        strides = [0] * lead + [0 if d == 1 and n != 1 else s
                                for d, n, s in zip(x.shape, shape[lead:], x.strides)]
        return x.view(shape, strides, writeable=False)

    def diagonal(self, x, groups):
        return x.view([x.shape[g[0]] for g in groups],
                      [sum(x.strides[a] for a in g) for g in groups], writeable=False)

    def asarray(self, x):
        return x

    # new arrays
    def matmul(self, a, b):
        sa = a.shape if len(a.shape) > 1 else (1,) + a.shape
        sb = b.shape if len(b.shape) > 1 else b.shape + (1,)
        batch = _broadcast(sa[:-2], sb[:-2])
        shape = batch + (sa[-2], sb[-1])
        out = batch + ((sa[-2],) if len(a.shape) > 1 else ()) + \
            ((sb[-1],) if len(b.shape) > 1 else ())
        return self.new(out, 2 * math.prod(shape) * sa[-1])

    def _elementwise(self, *xs):
        arrays = [x for x in xs if isinstance(x, Meta)]
        shape = _broadcast(*(x.shape for x in arrays))
        out = self.new(shape, math.prod(shape))
        # NumPy iterates a broadcast operand (not a single element) through a
        # buffer of up to 8192 elements, whole blocks of the output's
        # trailing axes, freed at once.
        broadcast = sum(1 for x in arrays if x.size > 1 and
                        (1,) * (len(shape) - len(x.shape)) + x.shape != shape)
        if broadcast and out.size:
            block = 1
            for d in reversed(shape):
                if block * d > 8192:
                    break
                block *= d
            rows = 8192 // block * block
            _Buffer(broadcast * min(rows, math.prod(shape)) * self.itemsize, self.ledger)
        return out

    def multiply(self, a, b):
        return self._elementwise(a, b)

    def add(self, a, b):
        return self._elementwise(a, b)

    def subtract(self, a, b):
        return self._elementwise(a, b)

    def scale(self, x, c):
        return self._elementwise(x)

    def conj(self, x):
        return self.new(x.shape)

    def sum(self, x, axes):
        return self.new([d for a, d in enumerate(x.shape) if a not in axes], x.size)

    def diag_embed(self, x, shape, groups):
        return self.new(shape)

    def full(self, shape, value, like):
        return self.new(shape)

    def zeros_like(self, x):
        return self.new(x.shape)

    def copy(self, x):
        return self.new(x.shape)

    def writeable(self, x):
        return x if x.writeable else self.new(x.shape)

    def cast_like(self, g, x):
        return g if g.writeable else self.new(g.shape)

    def owner(self, x):
        return id(x.buffer) if isinstance(x, Meta) else id(x)

    def shares_memory(self, x, y):
        """As NumPy's `may_share_memory`: an empty array shares nothing."""
        return isinstance(x, Meta) and isinstance(y, Meta) and x.buffer is not None \
            and x.buffer is y.buffer and 0 not in x.shape and 0 not in y.shape

    # slicing
    def index(self, x, positions):
        """x at fixed positions of some axes ({axis: position}): a view."""
        keep = [a for a in range(len(x.shape)) if a not in positions]
        return x.view([x.shape[a] for a in keep], [x.strides[a] for a in keep])

    def add_at(self, acc, positions, x):
        """acc with x added into it at fixed positions of some axes (in place)."""
        self.ledger.flops += x.size
        return acc


@dataclass(frozen=True)
class Cost:
    """What one run costs: `flops`, `peak` (the most bytes alive at once,
    beyond the operands, the cotangent and the results), `allocated`
    (every byte allocated, results included) and `peak_with_results`."""
    flops: int
    peak: int
    allocated: int
    peak_with_results: int = 0

    @classmethod
    def of(cls, run, shapes, extra=(), itemsize=8):
        """The cost of `run(B, metas)` on operands of `shapes` (and arrays of
        `extra` shapes given as inputs too, e.g. a cotangent): `run` returns
        its results (an array, or a sequence of arrays and None)."""
        ledger = Ledger()
        B = MetaBackend(ledger, itemsize)
        metas = [Meta(s, itemsize, object()) for s in list(shapes) + list(extra)]
        results = run(B, metas)
        results = results if isinstance(results, (list, tuple)) else [results]
        kept = frozenset(r.buffer.key for r in results
                         if isinstance(r, Meta) and isinstance(r.buffer, _Buffer))
        cost = cls(ledger.flops, ledger.peak(kept), ledger.allocated(), ledger.peak())
        del results, metas
        return cost


def fmt_count(n):
    """1234567 -> '1.23e+06'; small numbers as they are."""
    return f"{n:,}" if n < 100_000 else f"{n:.3g}"


def fmt_bytes(n):
    """A byte count in B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


@dataclass(frozen=True)
class PlanCost:
    """A plan's forward (`einvjp.einsum`) and all-operand VJP (`einvjp.vjp`)
    costs, for operands of `itemsize` bytes per element."""
    forward: Cost
    vjp: Cost
    itemsize: int

    @property
    def flops(self):
        return self.forward.flops

    @property
    def peak(self):
        return self.forward.peak

    @property
    def vjp_flops(self):
        return self.vjp.flops

    @property
    def vjp_peak(self):
        return self.vjp.peak

    def __str__(self):
        return (f"forward: {fmt_count(self.flops)} flops, peak {fmt_bytes(self.peak)}\n"
                f"all-operand VJP: {fmt_count(self.vjp_flops)} flops, "
                f"peak {fmt_bytes(self.vjp_peak)}")


def plan_cost(plan, itemsize=8) -> PlanCost:
    """The costs of a plan's two calls, counted on shape-only arrays."""
    shapes = [tuple(lab.size for lab in term) for term in plan.ge.terms]
    out = tuple(lab.size for lab in plan.ge.out)
    forward = Cost.of(plan.evaluate, shapes, itemsize=itemsize)
    vjp = Cost.of(lambda B, xs: plan.gradients(B, xs[:-1], xs[-1], range(plan.n)),
                  shapes, [out], itemsize)
    return PlanCost(forward, vjp, itemsize)


def step_rows(plan, itemsize=8):
    """One row per step of a plan: (contraction, result shape, flops,
    result bytes), the labels as the plan's GE names them."""
    names = {lab: lab.name for lab in plan.ge.labels()}
    if not all(isinstance(v, str) and len(v) == 1 for v in names.values()) or \
            len(set(names.values())) < len(names):
        names = plan.ge.letters()
    for step in plan.steps:
        for lab in step.ge.labels():
            names.setdefault(lab, "?")
    rows = []
    for step in plan.steps:
        shapes = [tuple(lab.size for lab in term) for term in step.ge.terms]
        flops = Cost.of(lambda B, xs: step.ops(B, *xs), shapes, itemsize=itemsize).flops
        shape = tuple(lab.size for lab in step.ge.out)
        rows.append((step.ge.equation(names), shape, flops, math.prod(shape) * itemsize))
    return rows


def table(plan, itemsize=8, title="einvjp plan"):
    """The plan as text: its steps, then its costs."""
    rows = step_rows(plan, itemsize)
    head = [f"{title}: {len(plan.ge.terms)} operand(s), {len(rows)} step(s), "
            f"{itemsize} bytes per element"]
    if getattr(plan, "describe", None) and plan.describe():
        head.append(plan.describe())
    width = max([len("contraction")] + [len(r[0]) for r in rows])
    head.append(f"{'step':>4}  {'contraction':<{width}}  {'result shape':<16} "
                f"{'flops':>10}  {'result size':>11}")
    for k, (eq, shape, flops, nbytes) in enumerate(rows, 1):
        head.append(f"{k:>4}  {eq:<{width}}  {str(shape):<16} {fmt_count(flops):>10}  "
                    f"{fmt_bytes(nbytes):>11}")
    return "\n".join(head) + "\n" + str(plan_cost(plan, itemsize))
