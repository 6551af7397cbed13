"""Symbolic VJPs of an equation, derived by the index-notation rules of
docs/notation.md.

Steps: (A) translate to index notation; (B) differentiate with new free
indices, the derivative of the operand by itself being a product of Kronecker
deltas; (C) chain rule with the output's gradient; (D) contract each delta by
renaming.  A delta between two free indices survives (a diagonal embedding); a
free index that no factor carries gets a one-tensor (a broadcast).

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

from dataclasses import dataclass

from .equation import ELLIPSIS, operand_index, parse
from .errors import WrtError

_FREE = "pqrstuvwmnohgfedcbazyxkjilPQRSTUVWMNOHGFEDCBAZYXKJIL"


@dataclass(frozen=True)
class Factor:
    """One factor of a product in index notation."""
    kind: str        # "tensor", "grad" (∂l/∂name), "delta", "one"
    name: str
    labels: tuple

    def rename(self, old, new):
        return Factor(self.kind, self.name, tuple(new if lab == old else lab for lab in self.labels))

    def text(self):
        inner = ",".join("…" if lab == ELLIPSIS else lab for lab in self.labels)
        idx = f"[{inner}]" if self.labels else ""
        head = {"grad": f"∂l/∂{self.name}", "delta": "δ", "one": "1"}.get(self.kind, self.name)
        return head + idx

    def latex(self):
        sub = "".join(r"\ldots " if lab == ELLIPSIS else lab for lab in self.labels)
        sub = f"_{{{sub.strip()}}}" if self.labels else ""
        if self.kind == "grad":
            return rf"\frac{{\partial l}}{{\partial {self.name}{sub}}}"
        head = {"delta": r"\delta", "one": r"\mathbf{1}"}.get(self.kind, self.name)
        return head + sub


def _product(factors, fmt):
    return " ".join(getattr(f, fmt)() for f in factors) if factors else "1"


class Derivation:
    """The VJP of one operand: `.equation` (a GE whose first operand is the
    cotangent, then the other operands in order), `str()` in index notation,
    `.latex()`, and `.steps` (the derivation, one line a step)."""

    def __init__(self, equation, wrt, lhs, rhs, steps):
        self.equation = equation
        self.wrt = wrt
        self.lhs, self.rhs = lhs, rhs
        self.steps = steps

    def __str__(self):
        return f"{self.lhs.text()} = {_product(self.rhs, 'text')}"

    def __repr__(self):
        return f"Derivation({self.equation!r}, wrt={self.wrt})"

    def latex(self):
        return f"{self.lhs.latex()} = {_product(self.rhs, 'latex')}"


def default_names(n):
    """Operand names: `x` alone, else x0, x1, …"""
    return ("x",) if n == 1 else tuple(f"x{k}" for k in range(n))


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
    terms = [t.labels for t in spec.inputs]
    out = spec.output.labels
    used = {lab for t in terms + [out] for lab in t}
    # Role swap, as a GE string in the equation's own letters.
    others = terms[:wrt] + terms[wrt + 1:]
    vjp_eq = ",".join("".join(t) for t in [out] + others) + "->" + "".join(terms[wrt])

    # (A) index notation, with one-tensors for output-only labels.
    inputs = {lab for t in terms for lab in t}
    product = [Factor("tensor", nm, t) for nm, t in zip(names, terms)]
    product += [Factor("one", "1", (lab,)) for lab in dict.fromkeys(out)
                if lab not in inputs]
    y = Factor("tensor", output, out)
    steps = [f"(A) {y.text()} = {_product(product, 'text')}"]
    # (B) derivative with new free indices: the operand becomes deltas.
    fresh = iter(c for c in _FREE if c not in used)
    free = tuple(lab if lab == ELLIPSIS else next(fresh) for lab in terms[wrt])
    x = Factor("tensor", names[wrt], free)
    deltas = [Factor("delta", "δ", (a, f)) for a, f in zip(terms[wrt], free) if a != ELLIPSIS]
    rest = product[:wrt] + product[wrt + 1:]
    steps.append(f"(B) ∂{y.text()}/∂{x.text()} = {_product(deltas + rest, 'text')}")
    # (C) chain rule with ∂l/∂y.
    lhs = Factor("grad", names[wrt], free)
    factors = [Factor("grad", output, out)] + deltas + rest
    steps.append(f"(C) {lhs.text()} = {_product(factors, 'text')}")
    # (D) contract each delta whose first index is still a dummy, by renaming.
    free_set = set(free)
    while True:
        delta = next((f for f in factors if f.kind == "delta"
                      and not free_set.issuperset(f.labels)), None)
        if delta is None:
            break  # what is left are deltas between free indices: diagonals
        old, new = delta.labels if delta.labels[0] not in free_set else delta.labels[::-1]
        factors.remove(delta)
        factors = [f.rename(old, new) for f in factors]
        steps.append(f"(D) {lhs.text()} = {_product(factors, 'text')}"
                     f"    (δ[{old},{new}]: rename {old} → {new})")
    # A one-tensor whose index another factor carries is dropped; a free index
    # that no factor carries gets one.
    factors = [f for f in factors if f.kind != "one"
               or not any(f.labels[0] in g.labels for g in factors if g is not f)]
    carried = {lab for f in factors for lab in f.labels}
    factors += [Factor("one", "1", (lab,)) for lab in free if lab not in carried]
    result = Derivation(vjp_eq, wrt, lhs, factors, steps)
    steps.append(f"=> {result}")
    return result
