"""Symbolic VJPs of an equation, by the index-notation rules of docs/notation.md.

- `derive`: the equation parsed once into a GE over unsized labels; the VJP is
  its role swap (`GE.vjp`), printed as an equation by the GE itself and in
  index notation by the shared formats (`einvjp.formats`)
- `Derivation.steps`: the same result reached by the rules, one line a step:
  (A) index notation; (B) differentiate with new free indices, the operand's
  derivative a product of Kronecker deltas; (C) chain rule with the output's
  gradient; (D) contract each delta by renaming.  A delta between two free
  indices survives (a diagonal embedding); a free index that no factor
  carries gets a one-tensor (a broadcast).

>>> d = derive("ik,kj->ij", wrt=0, names=("x", "a"))
>>> print(d)
∂l/∂x[p,q] = ∂l/∂y[p,j] a[q,j]
>>> d.equation
'ij,kj->ik'
>>> print(derive("ii->i", wrt=0))
∂l/∂x[p,q] = ∂l/∂y[p] δ[p,q]
>>> print(derive("ij->i", wrt=0).latex())
\\frac{\\partial l}{\\partial x_{pq}} = \\frac{\\partial l}{\\partial y_{p}} \\mathbf{1}_{q}
"""

from __future__ import annotations

import itertools

from .equation import ELLIPSIS, operand_index, parse
from .errors import WrtError
from .formats import Latex, Text
from .ge import GE, Index, symbol

_FREE = "pqrstuvwmnohgfedcbazyxkjilPQRSTUVWMNOHGFEDCBAZYXKJIL"
_TEXT, _LATEX = (Text(), "…"), (Latex(), r"\ldots ")  # a format, and its ellipsis

# A factor of a product in index notation: (kind, name, labels), kind the
# format's writer of it: "leaf" (a tensor), "grad" (∂l/∂name), "delta" or
# "one"; labels are `Index` objects.


def _letters(how, labels, rename=None):
    """The labels as printed: each as `rename` maps it (to a free index once
    its delta is contracted), the ellipsis as the format writes it."""
    rename = rename or {}
    out = [how[1] if i.name == ELLIPSIS else i.name for i in (rename.get(i, i) for i in labels)]
    return out[:-1] + [out[-1].rstrip()] if out else out  # x_{p\ldots}, not \ldots }


def _product(how, factors, rename=None):
    """The factors side by side, in the format `how`."""
    fmt, parts = how[0], []
    for kind, name, labels in factors:
        letters = _letters(how, labels, rename)
        write = getattr(fmt, kind)
        parts.append(write(*letters) if kind in ("delta", "one") else write(name, letters))
    return fmt.product(parts) or "1"


class Derivation:
    """The VJP of one operand: `.ge` (the role swap: the cotangent first,
    then the other operands in order), `.equation` (that GE in the
    equation's letters), `str()` in index notation, `.latex()`, and `.steps`
    (the derivation, one line a step)."""

    def __init__(self, ge, wrt, free, names, output, steps):
        self.ge, self.wrt, self.free = ge, wrt, free
        self.names, self.output = names, output
        self.equation = ge.equation({idx: idx.name for idx in ge.labels()})
        self.steps = steps

    def __str__(self):
        return self._render(_TEXT)

    def __repr__(self):
        return f"Derivation({self.equation!r}, wrt={self.wrt})"

    def latex(self):
        return self._render(_LATEX)

    def _render(self, how):
        """∂l/∂x[free] = the GE's product: its output labels renamed to the
        free indices, a repeated one by a delta, one no term carries by a
        one-tensor."""
        lhs, factors, rename = self._factors()
        return f"{_product(how, [lhs])} = {_product(how, factors, rename)}"

    def _factors(self):
        """(left-hand side, right-hand factors, {label: its free index})."""
        ge, free = self.ge, self.free
        rename = {}
        for lab, f in zip(ge.out, free):
            rename.setdefault(lab, f)
        others = self.names[:self.wrt] + self.names[self.wrt + 1:]
        factors = [("grad", self.output, ge.terms[0])]
        factors += [("delta", "δ", (lab, f)) for lab, f in zip(ge.out, free)
                    if rename[lab] is not f]
        factors += [("leaf", nm, t) for nm, t in zip(others, ge.terms[1:])]
        carried = {rename.get(i, i) for _, _, labels in factors for i in labels}
        factors += [("one", "1", (f,)) for f in free if f not in carried]
        return ("grad", self.names[self.wrt], free), factors, rename


def default_names(n):
    """Operand names: `x` alone, else x0, x1, …"""
    return ("x",) if n == 1 else tuple(f"x{k}" for k in range(n))


def _unsized(spec) -> GE:
    """A parsed equation as a GE: one unsized label per letter, one for the ellipsis."""
    index = {}

    def labels(term):
        return tuple(index.setdefault(lab, Index(lab)) for lab in term.labels)

    return GE([labels(t) for t in spec.inputs], labels(spec.output))


def derive(equation: str, wrt: int = 0, *, names=None, output="y") -> Derivation:
    """Derive the VJP of `equation` with respect to operand `wrt`."""
    spec = parse(equation)
    n = len(spec.inputs)
    wrt = operand_index(wrt, n, equation)
    if isinstance(names, str):
        names = tuple(s.strip() for s in names.split(","))
    names = tuple(names) if names else default_names(n)
    if len(names) != n:
        raise WrtError(f"{len(names)} name(s) given for {n} operand(s)", equation=equation)
    ge = _unsized(spec)
    swap = ge.vjp(wrt)
    # A free index per position of the VJP's output (the ellipsis stays itself).
    used = {idx.name for idx in ge.labels()}
    more = (symbol(n) for n in itertools.count(52))  # past the 52 letters: any number
    fresh = iter(c for c in itertools.chain(_FREE, more) if c not in used)
    free = tuple(lab if lab.name == ELLIPSIS else Index(next(fresh)) for lab in swap.out)
    result = Derivation(swap, wrt, free, names, output, [])
    result.steps = _steps(ge, result)
    return result


def _steps(ge, d):
    """Steps (A)-(D), ending in `d` itself."""
    def line(lhs, factors, rename=None):
        return f"{lhs} = {_product(_TEXT, factors, rename)}"

    wrt, free, fmt = d.wrt, d.free, _TEXT[0]
    # (A) index notation, with one-tensors for output-only labels.
    inputs = {lab for t in ge.terms for lab in t}
    product = [("leaf", nm, t) for nm, t in zip(d.names, ge.terms)]
    product += [("one", "1", (lab,)) for lab in dict.fromkeys(ge.out) if lab not in inputs]
    y = fmt.leaf(d.output, _letters(_TEXT, ge.out))
    steps = [line(f"(A) {y}", product)]
    # (B) derivative with new free indices: the operand becomes deltas.
    x = fmt.leaf(d.names[wrt], _letters(_TEXT, free))
    deltas = [("delta", "δ", (lab, f)) for lab, f in zip(ge.terms[wrt], free)
              if lab.name != ELLIPSIS]
    rest = product[:wrt] + product[wrt + 1:]
    steps.append(line(f"(B) ∂{y}/∂{x}", deltas + rest))
    # (C) chain rule with ∂l/∂y.
    lhs = fmt.grad(d.names[wrt], _letters(_TEXT, free))
    factors = [("grad", d.output, ge.out)] + deltas + rest
    steps.append(line(f"(C) {lhs}", factors))
    # (D) contract each delta whose first index is still a dummy, by renaming;
    # what is left are deltas between free indices: diagonals.
    rename = {}
    for delta in deltas:
        old, new = delta[2]
        if old in rename:
            continue
        rename[old] = new
        factors = [f for f in factors if f is not delta]
        steps.append(line(f"(D) {lhs}", factors, rename)
                     + f"    ({fmt.delta(old.name, new.name)}: rename {old.name} → {new.name})")
    steps.append(f"=> {d}")
    return steps
