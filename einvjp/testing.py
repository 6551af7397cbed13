"""Testing helpers: hypothesis strategies for generalized einsums, an
independent reference implementation, and the finite-difference VJP check.

For your own gradients: `check_backward(fn, spec)` checks a hand-written
backward (torch, jax or NumPy) against einvjp's; `shapes_for(equation)`,
`einsum_cases(...)` and `programs(...)` are hypothesis strategies;
`check_linear(jvp, vjp, ...)` is the adjoint dot test.  The pytest fixture
`einvjp_check` (module `einvjp.pytest_plugin`) runs `check_backward`.

This module is a test extra (it imports hypothesis); `import einvjp` never
imports it.  JAX is imported only by `jax_vjp` and `jax_vjp_batch`.

A case is an `EinsumCase(equation, shapes, sizes)`; `sizes` gives the sizes
of output labels that no operand carries (or is None):

>>> case = EinsumCase("i->ij", [(2,)], {"j": 3})
>>> x = random_operands(case.shapes, seed=0)[0]
>>> reference_einsum(case.equation, [x], case.sizes).shape
(2, 3)
>>> check_vjp(case.equation, [x], case.sizes)

The reference materializes what einvjp never does: a repeated output label
becomes a Kronecker delta operand and an output-only label a ones operand,
so that a plain `numpy.einsum` (or `jnp.einsum`) computes it:

>>> reference_einsum("i->ii", [np.array([1.0, 2.0])])
array([[1., 0.],
       [0., 2.]])
>>> standard_form("ab,bc->aaca", {"a": 2, "b": 3, "c": 4})
('ab,bc,ad,ae->adce', [('delta', 'a', 2), ('delta', 'a', 2)], 0)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

import einvjp
from .testing_backward import check_backward
from .testing_checks import check_program, program_reference
from .testing_linear import check_linear, label_shapes, shapes_for
from .testing_programs import RandomProgram, programs
from .testing_trees import once_in

__all__ = ["EinsumCase", "einsum_cases", "equations", "check_vjp", "reference_einsum",
           "standard_form", "label_sizes", "is_numpy_einsum", "broadcasts",
           "derive_executable", "random_operands", "jax_vjp", "jax_vjp_batch",
           "programs", "RandomProgram", "check_program", "program_reference",
           "shapes_for", "label_shapes", "check_linear", "check_backward"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ELL = "."  # one token standing for "..." inside this module


class EinsumCase(NamedTuple):
    """One generated einsum: equation, operand shapes, output-only sizes."""
    equation: str
    shapes: list
    sizes: dict | None = None


# --- an independent reading of the equation (deliberately not einvjp's) ---

def _tokens(term: str) -> list:
    return list(term.replace(" ", "").replace("...", _ELL))


def _split(equation: str):
    lhs, arrow, rhs = equation.partition("->")
    inputs = [_tokens(t) for t in lhs.split(",")]
    return inputs, (_tokens(rhs) if arrow else None)


def label_sizes(equation: str, shapes, sizes=None):
    """The size of every letter (NumPy broadcasting: a 1 meets anything) and
    the broadcast shape of the ellipsis.

    >>> label_sizes("ij,jk->ik", [(2, 1), (3, 4)])
    ({'i': 2, 'j': 3, 'k': 4}, ())
    >>> label_sizes("...i,...i", [(2, 1, 3), (5, 3)])
    ({'i': 3}, (2, 5))
    """
    inputs, _ = _split(equation)
    found, ell = {}, []
    for term, shape in zip(inputs, shapes):
        width = len(shape) - (len(term) - (_ELL in term))
        dim = 0
        for tok in term:
            if tok == _ELL:
                ell.append(tuple(shape[dim:dim + width]))
                dim += width
                continue
            if found.get(tok, 1) == 1:
                found[tok] = shape[dim]
            dim += 1
    for lab, size in (sizes or {}).items():
        if found.get(lab, 1) == 1:
            found[lab] = size
    return found, tuple(np.broadcast_shapes(*ell)) if ell else ()


def broadcasts(equation: str, shapes) -> bool:
    """Whether NumPy broadcasting is at work: a letter's size-1 dimension
    meeting a larger one, or an operand's ellipsis narrower than (or with
    size-1 dimensions against) the broadcast ellipsis.

    >>> broadcasts("ij,ij->ij", [(3, 1), (3, 4)]), broadcasts("ij,jk", [(2, 3), (3, 4)])
    (True, False)
    >>> broadcasts("...i,...i", [(2, 3), (3,)])
    True
    """
    found, ell = label_sizes(equation, shapes)
    inputs, _ = _split(equation)
    for term, shape in zip(inputs, shapes):
        width = len(shape) - (len(term) - (_ELL in term))
        dim = 0
        for tok in term:
            if tok == _ELL:
                if tuple(shape[dim:dim + width]) != ell:
                    return True
                dim += width
            else:
                if shape[dim] != found[tok]:
                    return True
                dim += 1
    return False


def derive_executable(equation: str, shapes) -> bool:
    """Whether every `einvjp.derive(equation, k).equation`, run by
    `einvjp.einsum` on (cotangent, other operands) with the letters' sizes,
    is the VJP: no broadcasting (the derived equation does not know which
    dimensions were size 1), and no non-empty ellipsis carried by one
    operand alone (`sizes=` cannot size an ellipsis).

    >>> derive_executable("ij,jk->ik", [(2, 3), (3, 4)])
    True
    >>> derive_executable("...->", [(2, 3)]), derive_executable("ij,ij", [(1, 3), (2, 3)])
    (False, False)
    """
    if broadcasts(equation, shapes):
        return False
    inputs, out = _split(equation)
    _, ell = label_sizes(equation, shapes)
    for k, term in enumerate(inputs):
        others = inputs[:k] + inputs[k + 1:] + [out if out is not None else [_ELL]]
        if ell and _ELL in term and not any(_ELL in t for t in others):
            return False
    return True


def is_numpy_einsum(equation: str, shapes) -> bool:
    """Whether `numpy.einsum` accepts the equation at these shapes (it rejects
    the GE extensions, and an explicit output that drops a non-empty ellipsis).

    >>> is_numpy_einsum("ij,jk->ik", [(2, 3), (3, 4)]), is_numpy_einsum("i->ii", [(2,)])
    (True, False)
    """
    inputs, out = _split(equation)
    if out is None:
        return True
    carried = {tok for term in inputs for tok in term}
    letters = [tok for tok in out if tok != _ELL]
    if len(set(letters)) < len(letters) or not carried.issuperset(letters):
        return False
    _, ell = label_sizes(equation, shapes)
    return _ELL in out or not ell


def standard_form(equation: str, sizes: dict):
    """Rewrite a GE as a plain einsum over extra constant operands.

    Returns `(equation, extras, summed)`: `extras` lists the operands to
    append, ('delta', label, n) for an n×n identity or ('ones', label, n);
    `summed` is how many leading output axes to sum (an ellipsis that the
    explicit output drops).

    >>> standard_form("i->ij", {"i": 2, "j": 3})
    ('i,j->ij', [('ones', 'j', 3)], 0)
    """
    inputs, out = _split(equation)
    lhs = ["".join(t).replace(_ELL, "...") for t in inputs]
    if out is None:
        return equation, [], 0
    carried = {tok for term in inputs for tok in term}
    used = set(equation)
    fresh = iter(c for c in _LETTERS if c not in used)
    new_out, extras, seen = [], [], set()
    summed = 0
    if _ELL in carried and _ELL not in out:
        summed = len(sizes.get(_ELL, ()))
        new_out.append("...")
    for tok in out:
        if tok == _ELL:
            new_out.append("...")
        elif tok in seen:
            f = next(fresh)
            extras.append(("delta", tok, sizes[tok]))
            lhs.append(tok + f)
            new_out.append(f)
        else:
            seen.add(tok)
            if tok not in carried:
                extras.append(("ones", tok, sizes[tok]))
                lhs.append(tok)
            new_out.append(tok)
    return ",".join(lhs) + "->" + "".join(new_out), extras, summed


def expected_einsum(eq, operands, sizes=None):
    """The forward an einvjp.einsum must equal: `np.einsum` where NumPy accepts
    the equation, else `reference_einsum`."""
    if is_numpy_einsum(eq, [np.shape(x) for x in operands]):
        return np.einsum(eq, *operands)
    return reference_einsum(eq, operands, sizes)


def reference_einsum(equation: str, operands, sizes=None, xp=None):
    """A GE computed by `xp.einsum` (NumPy by default; pass `jax.numpy` for
    a JAX-differentiable reference) with deltas and ones materialized.

    >>> reference_einsum("ij->ijk", [np.ones((1, 2))], {"k": 2}).shape
    (1, 2, 2)
    """
    xp = np if xp is None else xp
    shapes = [tuple(np.shape(x)) for x in operands]
    found, ell = label_sizes(equation, shapes, sizes)
    found[_ELL] = ell
    eq, extras, summed = standard_form(equation, found)
    dtype = xp.result_type(*operands) if operands else xp.float64
    consts = [xp.eye(n, dtype=dtype) if kind == "delta" else xp.ones((n,), dtype=dtype)
              for kind, _, n in extras]
    y = xp.einsum(eq, *operands, *consts)
    if summed:
        y = xp.sum(y, axis=tuple(range(summed)))
    return y


def random_operands(shapes, dtype=np.float64, seed=0):
    """Standard normal operands (real and imaginary parts for complex)."""
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        x = rng.standard_normal(shape)
        if np.issubdtype(dtype, np.complexfloating):
            x = x + 1j * rng.standard_normal(shape)
        out.append(np.asarray(x, dtype=dtype))
    return out


def jax_vjp(equation, operands, cotangent, sizes=None):
    """`jax.vjp` of the reference (JAX's convention: no conjugation), as
    NumPy arrays, computed with 64-bit types enabled."""
    return jax_vjp_batch([(equation, operands, cotangent, sizes)])[0]


def jax_vjp_batch(items):
    """`jax_vjp` of several `(equation, operands, cotangent, sizes)` items,
    traced into one `jax.jit` (XLA compilation is most of the cost, and one
    compilation of many items is much cheaper than one each)."""
    import jax
    import jax.numpy as jnp
    items = list(items)

    def pullbacks(arrays):
        grads = []
        for (equation, _, _, sizes), (xs, u) in zip(items, arrays):
            def f(*xs, equation=equation, sizes=sizes):
                return reference_einsum(equation, xs, sizes, xp=jnp)
            grads.append(jax.vjp(f, *xs)[1](u))
        return grads

    with jax.enable_x64(True):
        arrays = [([jnp.asarray(x) for x in xs], jnp.asarray(u)) for _, xs, u, _ in items]
        return [tuple(np.asarray(g) for g in grads) for grads in jax.jit(pullbacks)(arrays)]


# --- the finite-difference check ---

def check_vjp(equation, operands, sizes=None, rtol=1e-7, atol=1e-10, eps=1e-3, seed=0):
    """Check `einvjp.vjp` against central differences of `einvjp.einsum`, per
    operand, along a random direction v and a random cotangent u:

        ⟨v, VJP(u)⟩  ==  ⟨u, (f(x + εv) − f(x − εv)) / 2ε⟩

    (bilinear, no conjugation, so complex operands work too).  Raises
    AssertionError naming the operand on a mismatch.

    >>> check_vjp("ij,jk->ik", [np.ones((2, 3)), np.ones((3, 4))])
    >>> check_vjp("ab,bc->aaca", random_operands([(2, 3), (3, 4)]))
    """
    operands = [np.asarray(x) for x in operands]
    dtype = np.result_type(*operands, np.float64)
    operands = [x.astype(dtype) for x in operands]
    y = np.asarray(einvjp.einsum(equation, *operands, sizes=sizes))
    rng_seed = seed + 1
    u = random_operands([y.shape], dtype, rng_seed)[0]
    grads = einvjp.vjp(equation, operands, u, sizes=sizes)
    assert len(grads) == len(operands), f"{len(grads)} gradients for {len(operands)} operands"
    for k, (x, g) in enumerate(zip(operands, grads)):
        g = np.asarray(g)
        assert g.shape == x.shape, \
            f"{equation}: gradient {k} has shape {g.shape}, operand has {x.shape}"
        v = random_operands([x.shape], dtype, rng_seed + 1 + k)[0]

        def f(xk):
            args = list(operands)
            args[k] = xk
            return np.asarray(einvjp.einsum(equation, *args, sizes=sizes))

        diff = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
        lhs, rhs = np.sum(v * g), np.sum(u * diff)
        scale = np.sum(np.abs(v * g)) + np.sum(np.abs(u * diff))
        assert abs(lhs - rhs) <= atol + rtol * scale, (
            f"{equation} at shapes {[x.shape for x in operands]}: operand {k}: "
            f"<v, vjp(u)> = {lhs} but the central difference gives {rhs}")


# --- hypothesis strategies ---

@st.composite
def einsum_cases(draw, max_operands=4, max_rank=3, max_size=3, *, ellipsis=True,
                 broadcast=True, zero_size=True, implicit=True, extensions=True):
    """Random `EinsumCase`s: repeated labels inside an operand (diagonals),
    ellipses with NumPy size-1 broadcasting, size-1 broadcasting on letters,
    size-0 and size-1 dimensions, implicit and explicit outputs, and (with
    `extensions`) repeated output labels, output-only labels (sized in
    `sizes`) and explicit outputs that drop the ellipsis (it is summed).

    >>> from hypothesis import find
    >>> case = find(einsum_cases(max_operands=2), lambda c: len(c.shapes) == 2)
    >>> len(case.shapes), isinstance(case.equation, str)
    (2, True)
    """
    n = draw(st.integers(1, max_operands))
    pool = _LETTERS[:draw(st.integers(1, 6))]
    size = {lab: draw(st.integers(min(2, max_size), max_size)) for lab in pool}
    if once_in(draw, 6):
        size[draw(st.sampled_from(pool))] = 1
    if zero_size and once_in(draw, 10):
        size[draw(st.sampled_from(pool))] = 0
    use_ell = ellipsis and once_in(draw, 3)
    ell_shape = ()
    if use_ell:
        ell_shape = tuple(draw(st.lists(st.integers(1, max_size), max_size=2)))
        if zero_size and ell_shape and once_in(draw, 10):
            ell_shape = (0,) + ell_shape[1:]
    terms, shapes, any_ell = [], [], False
    for _ in range(n):
        labels = draw(st.lists(st.sampled_from(pool), max_size=max_rank))
        one = {lab for lab in sorted(set(labels)) if broadcast and once_in(draw, 8)}
        dims = [1 if lab in one else size[lab] for lab in labels]
        term = "".join(labels)
        if use_ell and not once_in(draw, 3):
            any_ell = True
            at = draw(st.integers(0, len(labels)))
            width = len(ell_shape) - draw(st.integers(0, len(ell_shape)))
            ell = [1 if broadcast and once_in(draw, 6) else d
                   for d in ell_shape[len(ell_shape) - width:]]
            term = term[:at] + "..." + term[at:]
            dims = dims[:at] + ell + dims[at:]
        terms.append(term)
        shapes.append(tuple(dims))
    lhs = ",".join(terms)
    if implicit and once_in(draw, 4):
        return EinsumCase(lhs, shapes, None)
    carried = sorted(set("".join(terms)) - set("."))
    out = draw(st.lists(st.sampled_from(carried), unique=True)) if carried else []
    sizes = None
    if any_ell and not (extensions and once_in(draw, 6)):
        out.insert(draw(st.integers(0, len(out))), "...")
    letters = [o for o in out if o != "..."]
    if extensions and letters and once_in(draw, 4):
        out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(letters)))
    if extensions and once_in(draw, 5):
        sizes = {}
        for lab in draw(st.lists(st.sampled_from("xyz"), min_size=1, max_size=2)):
            sizes.setdefault(lab, 0 if zero_size and once_in(draw, 8)
                             else draw(st.integers(1, max_size)))
            out.insert(draw(st.integers(0, len(out))), lab)
    return EinsumCase(lhs + "->" + "".join(out), shapes, sizes)


def equations(**kwargs):
    """Random equation strings (the `equation` of `einsum_cases(**kwargs)`).

    >>> from hypothesis import find
    >>> "->" in find(equations(implicit=False), lambda eq: True)
    True
    """
    return einsum_cases(**kwargs).map(lambda case: case.equation)
