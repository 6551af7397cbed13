"""Testing your own operators: shapes drawn for a fixed equation, and the
adjoint dot test of a linear operator pair.

* `shapes_for(equation, min_size=0, max_size=4)` — a hypothesis strategy of
  operand shapes that fit `equation`: one size per label (different labels
  often get equal sizes, and sizes 0 and 1 come up), one shape for `...`;
  it shrinks towards small sizes;
* `check_linear(jvp, vjp, in_shapes, out_shape)` — ⟨v, J u⟩ = ⟨Jᵀ v, u⟩ on
  small-integer u and v, so that an operator with integer coefficients (an
  einsum) passes exactly and a wrong transpose cannot hide in a tolerance.

>>> import einvjp
>>> b = np.arange(6.0).reshape(2, 3)
>>> check_linear(lambda u: einvjp.einsum("ij,jk->ik", u, b),
...              lambda v: einvjp.vjp("ij,jk->ik", (np.zeros((4, 2)), b), v, wrt=0)[0],
...              [(4, 2)], (4, 3))
>>> check_linear(lambda u: u @ b, lambda v: v @ b.T[::-1], [(4, 2)], (4, 3))
... # doctest: +ELLIPSIS
Traceback (most recent call last):
AssertionError: check_linear, trial 0: <v, J u> = ... but <J^T v, u> = ...
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .equation import parse
from .testing_trees import once_in


def shapes_for(equation, min_size=0, max_size=4, max_ellipsis_rank=2, *, broadcast=False):
    """Operand shapes for `equation` (a list of tuples): each label one size
    from [min_size, max_size] — often one an earlier label has — and `...`
    one shape of up to `max_ellipsis_rank` axes.  With `broadcast`, an
    operand's dimension is now and then 1 where the label (or the ellipsis)
    is larger elsewhere, as NumPy's broadcasting allows.  Output-only labels
    are not the operands' concern: size them yourself (`sizes=`).

    >>> from hypothesis import find
    >>> a, b = find(shapes_for("ij,jk->ik"), lambda s: s[0][0] == s[1][1] > 1)
    >>> a[1] == b[0], a[0] == b[1] == 2
    (True, True)
    >>> x, y = find(shapes_for("ij,ij->ij", broadcast=True), lambda s: s[0][0] < s[1][0])
    >>> x[0], x[1] == y[1]
    (1, True)
    """
    return label_shapes([term.labels for term in parse(equation).inputs], min_size, max_size,
                        max_ellipsis_rank, broadcast=broadcast)


@st.composite
def label_shapes(draw, terms, min_size=0, max_size=4, max_ellipsis_rank=2, *, known=None,
                 broadcast=False):
    """The shapes of operands labelled `terms` (each a sequence of hashable
    labels, "..." for the ellipsis): what `shapes_for` draws, for labels
    that are not letters of an equation.  `known` fixes some labels' sizes."""
    size = dict(known or {})
    for term in terms:
        for lab in term:
            if lab != "..." and lab not in size:
                fresh = st.integers(min_size, max_size)
                size[lab] = draw(st.one_of(fresh, st.sampled_from(sorted(set(size.values()))))
                                 if size else fresh)
    ell = ()
    if any("..." in term for term in terms):
        ell = tuple(draw(st.lists(st.integers(min_size, max_size), max_size=max_ellipsis_rank)))
    shapes = []
    for term in terms:
        ones = {lab for lab in dict.fromkeys(term) if broadcast and once_in(draw, 5)}
        shape = []
        for lab in term:
            if lab == "...":
                shape += [1 if broadcast and once_in(draw, 5) else d for d in ell]
            else:
                shape.append(1 if lab in ones and size[lab] > 1 else size[lab])
        shapes.append(tuple(shape))
    return shapes


def float64_array(x):
    """A torch tensor, a jax array or a NumPy array as a float64 NumPy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def check_linear(jvp, vjp, in_shapes, out_shape, *, trials=3, exact=True, rtol=1e-12,
                 seed=0, to_array=None):
    """The adjoint dot test of a linear operator J: `jvp(*us)` is J u (an
    array of `out_shape`), `vjp(v)` is Jᵀ v (one array per input, of
    `in_shapes`; an array alone for one input).  On `trials` draws of
    integers in [-3, 3], ⟨v, J u⟩ must equal ⟨Jᵀ v, u⟩: exactly (`exact`,
    right for integer coefficients such as an einsum's), else to `rtol` of
    the sum of the products' magnitudes.  `to_array` turns each NumPy
    input into your library's array (e.g. `torch.from_numpy`).  Raises
    AssertionError naming the trial, the shapes and both sides."""
    to_array = to_array or (lambda x: x)
    in_shapes = [tuple(s) for s in in_shapes]
    out_shape = tuple(out_shape)
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        us = [rng.integers(-3, 4, s).astype(np.float64) for s in in_shapes]
        v = rng.integers(-3, 4, out_shape).astype(np.float64)
        ju = float64_array(jvp(*map(to_array, us)))
        if ju.shape != out_shape:
            raise AssertionError(f"check_linear: the jvp's result has shape {ju.shape}, "
                                 f"expected out_shape {out_shape}")
        grads = vjp(to_array(v))
        grads = [grads] if len(in_shapes) == 1 and not isinstance(grads, (tuple, list)) \
            else list(grads)
        if len(grads) != len(in_shapes):
            raise AssertionError(f"check_linear: the vjp gave {len(grads)} gradient(s) for "
                                 f"{len(in_shapes)} input(s)")
        grads = [float64_array(g) for g in grads]
        for k, (g, s) in enumerate(zip(grads, in_shapes)):
            if g.shape != s:
                raise AssertionError(f"check_linear: the vjp's gradient {k} has shape "
                                     f"{g.shape}, expected in_shapes[{k}] = {s}")
        lhs = float(np.sum(v * ju))
        rhs = float(sum(np.sum(g * u) for g, u in zip(grads, us)))
        scale = float(np.sum(np.abs(v * ju)) + sum(np.sum(np.abs(g * u))
                                                     for g, u in zip(grads, us)))
        if (lhs != rhs) if exact else abs(lhs - rhs) > rtol * scale:
            raise AssertionError(
                f"check_linear, trial {trial}: <v, J u> = {lhs!r} but <J^T v, u> = {rhs!r} "
                f"(in_shapes {in_shapes}, out_shape {out_shape}"
                f"{'' if exact else f', rtol {rtol}'}): the vjp is not the jvp's transpose")
