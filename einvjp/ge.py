"""The generalized einsum (GE), the one object everything stands on.

    y[out] = coeff · Σ_(labels not in out) Π_k x_k[terms[k]]

Invariants:
  * labels are `Index` objects, compared by identity; sizes live on them;
  * a label may repeat inside a term (diagonal extraction) and inside `out`
    (diagonal embedding: zero off the diagonal);
  * a label of `out` that no term carries is a broadcast (constant along it);
  * letters exist only when a GE is printed (`equation`) or lowered.

The VJP with respect to operand k is the role swap: the cotangent takes
operand k's place and operand k's term becomes the output.

>>> i, j, k = Index("i", 2), Index("j", 3), Index("k", 4)
>>> mm = GE(((i, j), (j, k)), (i, k))
>>> mm.equation()
'ab,bc->ac'
>>> mm.vjp(0).equation()
'ab,cb->ac'
>>> GE(((i, i),), (i,)).vjp(0).equation()
'a->aa'
"""

from __future__ import annotations

import opt_einsum


class Index:
    """A label: identity-compared, carrying its size (None when symbolic)."""
    __slots__ = ("name", "size")

    def __init__(self, name: str, size: int | None = None):
        self.name = name
        self.size = size

    def __repr__(self) -> str:
        return f"Index({self.name!r}, {self.size})"


class GE:
    """A generalized einsum over `Index` labels (see the module docstring)."""
    __slots__ = ("terms", "out", "coeff", "_key")

    def __init__(self, terms, out, coeff=1):
        self.terms = tuple(tuple(t) for t in terms)
        self.out = tuple(out)
        self.coeff = coeff
        self._key = None

    def __repr__(self) -> str:
        return f"GE({self.equation()!r})"

    def labels(self) -> list:
        """Every distinct label, in order of first appearance (terms, then out)."""
        seen = {}
        for term in self.terms + (self.out,):
            for idx in term:
                seen.setdefault(idx, None)
        return list(seen)

    def vjp(self, k: int) -> "GE":
        """The role swap: operand k's term becomes the output and the cotangent
        (carrying `out`) takes operand k's place, first."""
        others = self.terms[:k] + self.terms[k + 1:]
        return GE((self.out,) + others, self.terms[k], self.coeff)

    def key(self):
        """A hashable canonical form (labels by first appearance, with sizes):
        two GEs with the same key compute the same function."""
        if self._key is None:
            number = {idx: n for n, idx in enumerate(self.labels())}
            self._key = (tuple(tuple(number[i] for i in t) for t in self.terms),
                         tuple(number[i] for i in self.out),
                         tuple(i.size for i in number), self.coeff)
        return self._key

    @classmethod
    def from_key(cls, key) -> "GE":
        """The GE of a canonical key (fresh labels): keys are plain hashable
        data, fit to pass around (e.g. as a JAX primitive's parameter).

        >>> ge = GE.from_key((((0, 1), (1, 2)), (0, 2), (2, 3, 4), 1))
        >>> ge.equation(), [i.size for i in ge.out]
        ('ab,bc->ac', [2, 4])
        """
        terms, out, sizes, coeff = key
        index = [Index(symbol(n), size) for n, size in enumerate(sizes)]
        return cls([[index[n] for n in t] for t in terms], [index[n] for n in out], coeff)

    def letters(self) -> dict:
        """One letter per label, by first appearance (a-z, A-Z, then more)."""
        return {idx: symbol(n) for n, idx in enumerate(self.labels())}

    def equation(self, letters=None) -> str:
        """The GE as an explicit equation string, in `letters` (a letter per
        label; by default `self.letters()`)."""
        name = self.letters() if letters is None else letters
        lhs = ",".join("".join(name[i] for i in t) for t in self.terms)
        return lhs + "->" + "".join(name[i] for i in self.out)


def symbol(n: int) -> str:
    """The n-th label letter: a-z, then A-Z, then opt_einsum's symbols.

    >>> symbol(0), symbol(25), symbol(26)
    ('a', 'z', 'A')
    """
    if n < 52:
        return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[n]
    return opt_einsum.get_symbol(n)
