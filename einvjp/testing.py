"""Testing helpers: hypothesis strategies for generalized einsums, an
independent reference implementation, and the finite-difference VJP check.

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

import re
from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

__all__ = ["EinsumCase", "einsum_cases", "equations", "check_vjp", "reference_einsum",
           "standard_form", "label_sizes", "is_numpy_einsum", "broadcasts",
           "derive_executable", "random_operands", "jax_vjp", "jax_vjp_batch"]

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
    import einvjp
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

def _once_in(draw, n):
    """True about once in n draws.  (Hypothesis draws the lowest value of a
    range far more often than the others, so the rare branch is the highest.)"""
    return draw(st.integers(0, n - 1)) == n - 1


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
    if _once_in(draw, 6):
        size[draw(st.sampled_from(pool))] = 1
    if zero_size and _once_in(draw, 10):
        size[draw(st.sampled_from(pool))] = 0
    use_ell = ellipsis and _once_in(draw, 3)
    ell_shape = ()
    if use_ell:
        ell_shape = tuple(draw(st.lists(st.integers(1, max_size), max_size=2)))
        if zero_size and ell_shape and _once_in(draw, 10):
            ell_shape = (0,) + ell_shape[1:]
    terms, shapes, any_ell = [], [], False
    for _ in range(n):
        labels = draw(st.lists(st.sampled_from(pool), max_size=max_rank))
        one = {lab for lab in sorted(set(labels)) if broadcast and _once_in(draw, 8)}
        dims = [1 if lab in one else size[lab] for lab in labels]
        term = "".join(labels)
        if use_ell and not _once_in(draw, 3):
            any_ell = True
            at = draw(st.integers(0, len(labels)))
            width = len(ell_shape) - draw(st.integers(0, len(ell_shape)))
            ell = [1 if broadcast and _once_in(draw, 6) else d
                   for d in ell_shape[len(ell_shape) - width:]]
            term = term[:at] + "..." + term[at:]
            dims = dims[:at] + ell + dims[at:]
        terms.append(term)
        shapes.append(tuple(dims))
    lhs = ",".join(terms)
    if implicit and _once_in(draw, 4):
        return EinsumCase(lhs, shapes, None)
    carried = sorted(set("".join(terms)) - set("."))
    out = draw(st.lists(st.sampled_from(carried), unique=True)) if carried else []
    sizes = None
    if any_ell and not (extensions and _once_in(draw, 6)):
        out.insert(draw(st.integers(0, len(out))), "...")
    letters = [o for o in out if o != "..."]
    if extensions and letters and _once_in(draw, 4):
        out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(letters)))
    if extensions and _once_in(draw, 5):
        sizes = {}
        for lab in draw(st.lists(st.sampled_from("xyz"), min_size=1, max_size=2)):
            sizes.setdefault(lab, 0 if zero_size and _once_in(draw, 8)
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


# --- random programs: text, traced Python and an independent reference ---
#
# A generated program is an expression tree with explicit labels.  Its
# meaning is decided here, from the scope rule of the index-notation text
# (a dummy label is summed over the smallest product of two or more factors
# that holds all its occurrences in its top-level term, else over the term;
# reductions, det and logdet bind their labels; softmax, inv and solve keep
# theirs), and written out three ways: as index-notation text, as a traced
# Python function over einvjp.*, and as a reference over a namespace `L`
# (jax.numpy or torch) with explicit einsums, sums and broadcasts.

_PRG_LABELS = "ijkbcm"
_PRG_FRESH = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_UNARY = ["exp", "tanh", "sigmoid", "softplus", "relu", "abs"]
_POSITIVE_OF = ["log", "sqrt"]


class _N:
    """A node of a generated expression: `kind` and its fields."""

    def __init__(self, kind, **fields):
        self.kind = kind
        self.__dict__.update(fields)

    def children(self):
        k = self.kind
        if k == "prod":
            return [f for _, f in self.factors]
        if k == "sum":
            return [t for _, t in self.terms]
        if k in ("neg", "reduce", "norm", "mat"):
            return [self.arg]
        if k == "call":
            return list(self.args)
        if k == "pow":
            return [self.base] + ([self.exp] if isinstance(self.exp, _N) else [])
        if k == "solve":
            return [self.a, self.b]
        return []

    def copy(self):
        n = _N(self.kind, **{k: v for k, v in self.__dict__.items() if k != "kind"})
        if self.kind == "prod":
            n.factors = [(op, f.copy()) for op, f in self.factors]
        elif self.kind == "sum":
            n.terms = [(s, t.copy()) for s, t in self.terms]
        elif self.kind in ("neg", "reduce", "norm", "mat"):
            n.arg = self.arg.copy()
        elif self.kind == "call":
            n.args = [a.copy() for a in self.args]
        elif self.kind == "pow":
            n.base = self.base.copy()
            n.exp = self.exp.copy() if isinstance(self.exp, _N) else self.exp
        elif self.kind == "solve":
            n.a, n.b = self.a.copy(), self.b.copy()
        return n


def _text(n, top=False):
    """Index-notation text of a node."""
    k = n.kind
    if k == "ref":
        return f"{n.name}[{','.join(n.labels)}]" if n.labels else n.name
    if k == "num":
        return n.text
    if k == "size":
        return n.label.upper()
    if k == "one":
        return f"1[{','.join(n.labels)}]"
    if k == "delta":
        return f"delta[{n.labels[0]},{n.labels[1]}]"
    if k == "prod":
        out = []
        for idx, (op, f) in enumerate(n.factors):
            s = _text(f)
            if f.kind in ("prod", "sum", "neg") or (f.kind == "num" and "/" in s):
                s = f"({s})"
            if idx == 0:
                out.append(s)
            else:  # `q (…)` would be a call of q
                sep = " * " if s.startswith("(") and re.search(r"[^\W\d]\w*$", out[-1]) \
                    else n.sep
                out.append((" / " if op == "/" else sep) + s)
        return "".join(out)
    if k == "sum":
        s = ""
        for idx, (sign, t) in enumerate(n.terms):
            body = _text(t)
            if t.kind in ("sum", "neg"):
                body = f"({body})"
            s += (("- " if sign < 0 else "") if idx == 0 else (" - " if sign < 0 else " + ")) + body
        return s
    if k == "neg":
        body = _text(n.arg)
        return "-" + (f"({body})" if n.arg.kind in ("sum", "prod", "neg") else body)
    if k == "call":
        return f"{n.fn}({', '.join(_text(a) for a in n.args)})"
    if k == "pow":
        b = _text(n.base)
        if n.base.kind in ("sum", "prod", "neg", "pow") or (n.base.kind == "num"):
            b = f"({b})"
        if isinstance(n.exp, _N):
            e = _text(n.exp)
            if n.exp.kind not in ("ref", "call"):
                e = f"({e})"
        else:
            e = n.exp
        return f"{b}^{e}"
    if k == "reduce":
        labs = "".join(f", {l}" for l in n.labels) if n.named else ""
        return f"{n.fn}({_text(n.arg)}{labs})"
    if k == "norm":
        return f"{n.fn}({_text(n.arg)}, {n.label})"
    if k == "mat":
        labs = f", {n.pair[0]}, {n.pair[1]}" if n.named else ""
        return f"{n.fn}({_text(n.arg)}{labs})"
    if k == "solve":
        return f"solve({_text(n.a)}, {_text(n.b)})"
    raise AssertionError(k)


# scope analysis ------------------------------------------------------------

def _rename(n, ren):
    """Rename labels (in place) below n."""
    for attr in ("labels",):
        if hasattr(n, attr) and n.kind in ("ref", "one", "delta", "reduce"):
            n.labels = [ren.get(l, l) for l in n.labels]
    if n.kind == "norm":
        n.label = ren.get(n.label, n.label)
    if n.kind in ("mat", "solve"):
        n.pair = tuple(ren.get(l, l) for l in n.pair)
    for c in n.children():
        _rename(c, ren)


def _bind(n, sizes, fresh):
    """Give the labels a binder consumes fresh names (in place): reductions
    and det/logdet their labels, solve its row label."""
    for c in n.children():
        _bind(c, sizes, fresh)
    if n.kind == "reduce" or (n.kind == "mat" and n.fn in ("det", "logdet")) or \
            n.kind == "solve":
        bound = list(n.labels) if n.kind == "reduce" else \
            list(n.pair) if n.kind == "mat" else [n.pair[0]]
        ren = {}
        for l in bound:
            f = next(fresh)
            sizes[f] = sizes[l]
            ren[l] = f
        _rename(n, ren)


def _occurrences(n, path, occ, bound):
    path = path + [n]
    if n.kind in ("ref", "one", "delta"):
        for l in n.labels:
            occ.setdefault(l, []).append(path)
        return
    kept = []
    if n.kind == "reduce":
        bound.update(n.labels)
    elif n.kind == "mat":
        if n.fn == "inv":
            kept = list(n.pair)
        else:
            bound.update(n.pair)
    elif n.kind == "norm":
        kept = [n.label]
    elif n.kind == "solve":
        bound.add(n.pair[0])
        kept = [n.pair[1]]
    for l in kept:
        occ.setdefault(l, []).append(path)
    sub = {}
    for c in n.children():
        _occurrences(c, path, sub, bound)
    for l, ps in sub.items():
        if l not in kept:
            occ.setdefault(l, []).extend(ps)


def _scopes(term, free):
    """{id(node): [labels summed there]} and the bound labels of a term."""
    occ, bound = {}, set()
    _occurrences(term, [], occ, bound)
    where = {}
    for lab, paths in occ.items():
        if lab in free or lab in bound:
            continue
        common = paths[0]
        for p in paths[1:]:
            m = 0
            while m < len(common) and m < len(p) and common[m] is p[m]:
                m += 1
            common = common[:m]
        scope = term
        for node in reversed(common):
            if node.kind == "prod":
                scope = node
                break
        where.setdefault(id(scope), []).append(lab)
    return where, bound


# the three renderings of one meaning ----------------------------------------

class _Unfit(ValueError):
    """A drawn tree whose labels do not have the intended shape (redrawn)."""


class _Emit:
    """Python source of a statement's meaning, as traced einvjp code
    (`traced=True`) or as the reference over `L`."""

    def __init__(self, sizes, traced, draw_bit):
        self.sizes, self.traced, self.bit = sizes, traced, draw_bit
        self.letters = {}
        self.fresh = (f"_{k}" for k in range(10**6))

    def letter(self, lab):
        if lab not in self.letters:
            pool = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
            self.letters[lab] = pool[len(self.letters)]
        return self.letters[lab]

    def sub(self, labs):
        return "".join(self.letter(l) for l in labs)

    def sizes_arg(self, labs):
        return "{" + ", ".join(f"{self.letter(l)!r}: {self.sizes[l]}" for l in labs) + "}"

    def align(self, code, src, dst):
        """code (labels src) as an array broadcastable against labels dst."""
        if not set(src) <= set(dst):
            raise _Unfit(f"labels {src} do not fit in {dst}")
        if not src:
            return code
        perm = [l for l in dst if l in src]
        if perm != list(src):
            if self.traced:
                if len(src) == 2 and self.bit():
                    code = f"({code}).T"
                else:
                    code = f"einvjp.einsum('{self.sub(src)}->{self.sub(perm)}', {code})"
            else:
                code = f"L.einsum('{self.sub(src)}->{self.sub(perm)}', {code})"
        if perm == list(dst) or (self.traced and perm == list(dst[len(dst) - len(perm):])):
            return code
        if self.traced:
            missing = [l for l in dst if l not in src]
            return (f"einvjp.einsum('{self.sub(perm)}->{self.sub(dst)}', {code}, "
                    f"sizes={self.sizes_arg(missing)})")
        shape = tuple(self.sizes[l] if l in src else 1 for l in dst)
        return f"L.reshape({code}, {shape})"

    def full(self, code, src, dst):
        """code (labels src, a subset of dst) as an array of labels dst."""
        if set(src) == set(dst):
            return self.align(code, src, dst)
        if self.traced:
            perm = [l for l in dst if l in src]
            code = self.align(code, src, perm)
            missing = [l for l in dst if l not in src]
            return (f"einvjp.einsum('{self.sub(perm)}->{self.sub(dst)}', {code}, "
                    f"sizes={self.sizes_arg(missing)})")
        shape = tuple(self.sizes[l] for l in dst)
        return f"L.broadcast({self.align(code, src, dst)}, {shape})"

    def reduce_code(self, fn, code, labs, over):
        axes = tuple(labs.index(l) for l in over)
        ax = axes[0] if len(axes) == 1 else axes
        if not self.traced:
            return f"L.{fn}({code}, {axes})"
        if fn in ("sum", "mean", "max") and self.bit():
            return f"({code}).{fn}({ax})"
        return f"einvjp.{fn}({code}, axis={ax})"

    def scalar_sum(self, code, labs, over):
        if not over:
            return code, labs
        rest = [l for l in labs if l not in over]
        return self.reduce_code("sum", code, labs, over), rest

    # --- nodes ---

    def expr(self, n, scopes):
        k = n.kind
        L = "einvjp" if self.traced else "L"
        if k == "ref":
            labs = list(n.labels)
            if len(set(labs)) < len(labs):
                d = list(dict.fromkeys(labs))
                return f"{L}.einsum('{self.sub(labs)}->{self.sub(d)}', {n.name})", d
            return n.name, labs
        if k == "num":
            return repr(float(n.value)), []
        if k == "size":
            return str(self.sizes[n.label]), []
        if k == "prod":
            return self.prod(n, scopes)
        if k == "sum":
            parts = [(s, self.expr(t, scopes)) for s, t in n.terms]
            labs = list(dict.fromkeys(l for _, (_, ls) in parts for l in ls))
            code = ""
            for idx, (s, (c, ls)) in enumerate(parts):
                c = self.align(c, ls, labs)
                code += ("-" if s < 0 else "") if idx == 0 else (" - " if s < 0 else " + ")
                code += f"({c})"
            return f"({code})", labs
        if k == "neg":
            c, labs = self.expr(n.arg, scopes)
            return f"(-({c}))", labs
        if k == "call":
            parts = [self.expr(a, scopes) for a in n.args]
            labs = list(dict.fromkeys(l for _, ls in parts for l in ls))
            args = [self.align(c, ls, labs) for c, ls in parts]
            return f"{L}.{n.fn}({', '.join(args)})", labs
        if k == "pow":
            b, bl = self.expr(n.base, scopes)
            if isinstance(n.exp, _N):
                e, el = self.expr(n.exp, scopes)
                labs = list(dict.fromkeys(bl + el))
                return f"(({self.align(b, bl, labs)}) ** ({self.align(e, el, labs)}))", labs
            return f"(({b}) ** {float(n.value)!r})", bl
        if k == "reduce":
            c, labs = self.expr(n.arg, scopes)
            out = [l for l in labs if l not in n.labels]
            if not n.labels:
                return c, labs
            return self.reduce_code(n.fn, c, labs, n.labels), out
        if k == "norm":
            c, labs = self.expr(n.arg, scopes)
            ax = labs.index(n.label)
            if self.traced:
                return f"einvjp.{n.fn}({c}, axis={ax})", labs
            return f"L.{n.fn}({c}, {ax})", labs
        if k == "mat":
            c, labs = self.expr(n.arg, scopes)
            r, col = n.pair
            if set(labs) != {r, col}:
                raise _Unfit(f"{n.fn} of labels {labs}")
            c = self.align(c, labs, [r, col])
            return f"{L}.{n.fn}({c})", ([] if n.fn != "inv" else [r, col])
        if k == "solve":
            a, al = self.expr(n.a, scopes)
            b, bl = self.expr(n.b, scopes)
            r, col = n.pair
            if set(al) != {r, col} or r not in bl or col in bl:
                raise _Unfit(f"solve of labels {al}, {bl}")
            rest = [l for l in bl if l != r]
            a = self.align(a, al, [r, col])
            b = self.align(b, bl, [r] + rest)
            if len(rest) > 1:  # a traced solve takes b as (rows,) or (rows, columns)
                raise _Unfit(f"solve of b with labels {bl}")
            if self.traced:
                return f"{L}.solve({a}, {b})", [col] + rest
            # one right-hand side a column: b as (rows, the rest flattened), then back
            n_rest = int(np.prod([self.sizes[l] for l in rest]))
            shape = tuple(int(self.sizes[l]) for l in [col] + rest)
            solved = f"{L}.solve({a}, {L}.reshape({b}, ({int(self.sizes[r])}, {n_rest})))"
            return f"{L}.reshape({solved}, {shape})", [col] + rest
        raise AssertionError(k)

    def prod(self, n, scopes):
        summed = scopes.get(id(n), [])
        coeff, ops, labs_all, extra = 1.0, [], [], []
        for op, f in n.factors:
            if f.kind in ("num", "size"):
                v = float(f.value) if f.kind == "num" else float(self.sizes[f.label])
                coeff = coeff / v if op == "/" else coeff * v
                continue
            if f.kind in ("one", "delta"):
                extra.append(f)
                labs_all += f.labels
                continue
            c, ls = self.expr(f, scopes)
            ops.append((op, c, ls))
            labs_all += ls
        labs = list(dict.fromkeys(labs_all))
        out = [l for l in labs if l not in summed]
        if self.traced:
            return self.traced_prod(ops, extra, labs, out, summed, coeff)
        terms, args = [], []
        for op, c, ls in ops:
            terms.append(self.sub(ls))
            args.append(f"L.reciprocal({c})" if op == "/" else c)
        for f in extra:
            terms.append(self.sub(f.labels))
            args.append(f"L.ones({self.sizes[f.labels[0]]})" if f.kind == "one" and
                        len(f.labels) == 1 else f"L.eye({self.sizes[f.labels[0]]})")
        code = f"L.einsum('{','.join(terms)}->{self.sub(out)}', {', '.join(args)})"
        return f"({coeff!r} * {code})", out

    def traced_prod(self, ops, extra, labs, out, summed, coeff):
        # deltas merge labels; ones sum to their size or broadcast
        merge = {}
        for f in extra:
            if f.kind == "delta":
                a, b = f.labels
                merge[b] = merge.get(a, a)
        rep = {l: merge.get(l, l) for l in labs}
        carried = {rep[l] for _, _, ls in ops for l in ls}
        for f in extra:
            if f.kind == "one":
                for l in f.labels:
                    if l in summed and rep[l] not in carried and rep[l] == l:
                        coeff *= self.sizes[l]
        if not extra and not summed and len(ops) >= 2 and self.bit():
            code = ""
            for idx, (op, c, ls) in enumerate(ops):
                a = self.align(c, ls, out)
                code += (f"({a})" if idx == 0 and op == "*" else
                         f"(1 / ({a}))" if idx == 0 else f" {op} ({a})")
            return (f"({code})" if coeff == 1.0 else f"({coeff!r} * {code})"), out
        if not extra and len(ops) == 1 and ops[0][0] == "*":
            c, ls = ops[0][1], ops[0][2]
            code, rest = c, ls
            if summed:
                if len(summed) == 1 and self.sizes[summed[0]] and \
                        coeff * self.sizes[summed[0]] == 1.0 and self.bit():
                    return self.reduce_code("mean", c, ls, summed), [l for l in ls if l not in summed]
                code, rest = self.scalar_sum(c, ls, summed)
            code = self.align(code, rest, out)
            return (f"({code})" if coeff == 1.0 else f"({coeff!r} * {code})"), out
        terms, args = [], []
        for op, c, ls in ops:
            terms.append("".join(self.letter(rep[l]) for l in ls))
            args.append(f"(1 / ({c}))" if op == "/" else c)
        outsub = "".join(self.letter(rep[l]) for l in out)
        nocarry = [rep[l] for l in out if rep[l] not in carried]
        sz = f", sizes={self.sizes_arg(list(dict.fromkeys(nocarry)))}" if nocarry else ""
        code = f"einvjp.einsum('{','.join(terms)}->{outsub}', {', '.join(args)}{sz})"
        return (f"({code})" if coeff == 1.0 else f"({coeff!r} * {code})"), out

    def statement(self, st):
        parts = []
        self.letters = {}
        for sign, t in st.terms:
            t = t.copy()
            _bind(t, self.sizes, self.fresh)
            scopes, _ = _scopes(t, set(st.labels))
            c, labs = self.expr(t, scopes)
            if t.kind != "prod":
                c, labs = self.scalar_sum(c, labs, [l for l in labs if l in
                                                    scopes.get(id(t), [])])
            parts.append((sign, c, labs))
        union = list(dict.fromkeys(l for _, _, ls in parts for l in ls))
        code = ""
        for idx, (s, c, ls) in enumerate(parts):
            c = self.align(c, ls, [l for l in st.labels if l in union])
            code += ("-" if s < 0 else "") if idx == 0 else (" - " if s < 0 else " + ")
            code += f"({c})"
        self.union = union
        return self.full(code, [l for l in st.labels if l in union], list(st.labels))


class _Statement:
    def __init__(self, name, labels, terms):
        self.name, self.labels, self.terms = name, list(labels), terms  # terms: [(sign, _N)]

    def text(self):
        lhs = f"{self.name}[{','.join(self.labels)}]" if self.labels else self.name
        rhs = ""
        for idx, (sign, t) in enumerate(self.terms):
            body = _text(t)
            if t.kind == "sum" or (t.kind == "neg" and idx):
                body = f"({body})"
            rhs += ("-" if sign < 0 else "") if idx == 0 else (" - " if sign < 0 else " + ")
            rhs += body
        return f"{lhs} = {rhs}"


class RandomProgram:
    """A generated program: `text` (index notation), `traced_source` (a
    Python function over einvjp.*) and `reference_source` (the same
    meaning over a namespace `L`, with explicit einsums and reductions);
    `inputs` lists (name, shape, domain, as a Python number)."""

    def __init__(self, statements, inputs, sizes, bits):
        self.statements, self.inputs, self.sizes = statements, inputs, dict(sizes)
        self.text = "\n".join(st.text() for st in statements)
        names = [n for n, _, _, _ in inputs]
        sig = ", ".join(names)
        lines = {True: [f"def f({sig}):"], False: [f"def f(L, {sig}):"]}
        for traced in (True, False):
            em = _Emit(dict(sizes), traced, bits)
            for st in statements:
                lines[traced].append(f"    {st.name} = {em.statement(st)}")
            lines[traced].append(f"    return {statements[-1].name}")
        self.traced_source = "\n".join(lines[True])
        self.reference_source = "\n".join(lines[False])

    def __repr__(self):
        return (f"RandomProgram(\n# text\n{self.text}\n# traced\n{self.traced_source}\n"
                f"# reference\n{self.reference_source}\n# inputs {self.inputs})")

    def traced(self):
        import einvjp
        env = {"einvjp": einvjp}
        exec(self.traced_source, env)
        return env["f"]

    def reference(self):
        env = {}
        exec(self.reference_source, env)
        return env["f"]

    def values(self, seed):
        """The inputs, drawn inside their domains."""
        rng = np.random.default_rng(seed)
        out = {}
        for name, shape, domain, number in self.inputs:
            if domain == "real":
                v = rng.uniform(-1, 1, shape)
            elif domain == "pos":
                v = rng.uniform(0.5, 2, shape)
            elif domain == "small":
                v = rng.uniform(-0.1, 0.1, shape)
            else:  # a well-conditioned matrix: diagonally dominant, det > 0
                n = shape[-1]
                v = 0.3 * rng.uniform(-1, 1, shape) + (n + 1) * np.eye(n)
            out[name] = float(v) if number else np.asarray(v, dtype=np.float64)
        return out


def _labels_below(n):
    """Labels occurring below n, not counting those a binder below consumes."""
    if n.kind in ("ref", "one", "delta"):
        return list(n.labels)
    inner = [l for c in n.children() for l in _labels_below(c)]
    bound = n.labels if n.kind == "reduce" else n.pair if (
        n.kind == "mat" and n.fn != "inv") else n.pair[:1] if n.kind == "solve" else ()
    return [l for l in inner if l not in bound]


class _Gen:
    """Draws the trees of one program."""

    def __init__(self, draw, sizes, tensors):
        self.draw, self.sizes = draw, sizes
        self.tensors = tensors  # [(name, labels, domain)]; domain "pos" for positive

    def int(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def pick(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def coin(self, n=2):
        return _once_in(self.draw, n)

    def relabel(self, labels):
        out = []
        for lab in labels:
            same = [l for l in _PRG_LABELS if self.sizes[l] == self.sizes[lab]]
            out.append(lab if not self.coin(3) else self.pick(same))
        return out

    def ref(self, positive=False):
        pool = [t for t in self.tensors if t[2] == "pos"] if positive else \
            [t for t in self.tensors if t[2] not in ("mat",)]
        name, labels, _ = self.pick(pool)
        return _N("ref", name=name, labels=self.relabel(labels))

    def num(self, texts=("2", "3", "0.5", "1.5", "0.25")):
        t = self.pick(texts)
        return _N("num", text=t, value=float(t))

    def nonempty(self, labels):
        return [l for l in dict.fromkeys(labels) if self.sizes[l] > 0]

    def expr(self, depth, positive=False):
        if positive:
            return self.positive(depth)
        if depth <= 0:
            r = self.ref()
            return r if not self.coin(3) else _N("prod", factors=[("*", self.num()), ("*", r)],
                                                 sep=" ")
        form = self.int(0, 11)
        if form == 0:
            return self.ref()
        if form in (1, 2):
            return self.product(depth)
        if form == 3:
            terms = [(1 if k == 0 or self.coin(2) else -1, self.expr(depth - 1))
                     for k in range(self.int(2, 3))]
            return _N("sum", terms=terms)
        if form == 4:
            return _N("call", fn=self.pick(_UNARY), args=[self.expr(depth - 1)])
        if form == 5:
            return _N("call", fn=self.pick(_POSITIVE_OF + ["log"]), args=[self.positive(depth - 1)])
        if form == 6:
            return _N("call", fn="maximum", args=[self.expr(depth - 1), self.expr(depth - 1)])
        if form == 7:
            if self.coin(2):
                p = self.pick(["2", "3"])
                return _N("pow", base=self.expr(depth - 1), exp=p, value=float(p))
            if self.coin(3):
                return _N("pow", base=self.positive(depth - 1), exp=self.expr(depth - 1))
            p = self.pick(["0.5", "-1", "1.5", "-0.5"])
            return _N("pow", base=self.positive(depth - 1), exp=p, value=float(p))
        if form in (8, 9):
            arg = self.expr(depth - 1)
            labs = self.nonempty(_labels_below(arg))
            if not labs:
                return arg
            fn = self.pick(["sum", "logsumexp", "max", "mean", "softmax", "log_softmax"])
            lab = self.pick(labs)
            if fn in ("softmax", "log_softmax"):
                return _N("norm", fn=fn, arg=arg, label=lab)
            return _N("reduce", fn=fn, arg=arg, labels=[lab], named=True)
        return self.matrix(depth)

    def positive(self, depth):
        form = self.int(0, 6 if depth > 0 else 0)
        if form == 0:
            return self.ref(positive=True)
        if form == 1:
            return _N("call", fn=self.pick(["exp", "softplus", "sigmoid"]),
                      args=[self.expr(depth - 1)])
        if form == 2:
            sq = _N("pow", base=self.expr(depth - 1), exp="2", value=2.0)
            return _N("sum", terms=[(1, _N("num", text="1", value=1.0)), (1, sq)])
        if form == 3:
            factors = [("*", self.positive(depth - 1)) for _ in range(self.int(2, 3))]
            if self.coin(2):
                factors.insert(0, ("*", self.num()))
            if self.coin(3):
                factors.append(("/", self.positive(depth - 1)))
            return _N("prod", factors=factors, sep=self.pick([" ", " * "]))
        if form == 4:
            return _N("call", fn="exp", args=[_N("call", fn="tanh", args=[self.expr(depth - 1)])])
        if form == 5:
            return _N("call", fn="sqrt", args=[self.positive(depth - 1)])
        return _N("call", fn="softplus", args=[self.expr(depth - 1)])

    def product(self, depth):
        factors = [("*", self.expr(depth - 1)) for _ in range(self.int(2, 4) - self.int(0, 1))]
        if self.coin(2):
            factors.insert(0, ("*", self.num()))
        if self.coin(3):
            factors.append(("/", self.positive(depth - 1)))
        if self.coin(4):
            factors.append(("/", self.num(("2", "3", "4"))))
        labs = self.nonempty(l for _, f in factors for l in _labels_below(f))
        if labs and self.coin(4):
            factors.append(("/", _N("size", label=self.pick(labs))))
        if self.coin(6):
            factors.insert(self.int(0, len(factors)), ("*", _N("one", labels=[self.pick(_PRG_LABELS)])))
        if len(factors) == 1:
            factors.insert(0, ("*", self.num()))
        return _N("prod", factors=factors, sep=self.pick([" ", " ", " * "]))

    def matrix(self, depth):
        r, c = ("i", "j") if self.coin(2) else ("j", "i")
        a = _N("ref", name="a", labels=[r, c])
        form = self.int(0, 3)
        if form == 0:
            arg = a
        elif form == 1:
            arg = _N("sum", terms=[(1, a), (-1, _N("prod", factors=[
                ("*", _N("num", text="2", value=2.0)), ("*", _N("ref", name="u", labels=[r, c]))],
                sep=" "))])
        elif form == 2:
            k = self.pick(_PRG_LABELS)
            inner = _N("call", fn="tanh", args=[self.expr(depth - 1)])
            pert = _N("prod", factors=[("*", _N("num", text="0.1", value=0.1)), ("*", inner)],
                      sep=" ")
            arg = _N("sum", terms=[(1, a), (1 if self.coin(2) else -1, pert)])
            if set(_labels_below(pert)) - {r, c}:
                arg = a
        else:
            k = self.pick([l for l in _PRG_LABELS if self.sizes[l] == self.sizes["k"]])
            xx = _N("prod", factors=[("*", _N("ref", name="x2", labels=[r, k])),
                                     ("*", _N("ref", name="x2", labels=[c, k]))], sep=" ")
            arg = _N("sum", terms=[(1, xx), (1, a)])
        fn = self.pick(["det", "logdet", "inv", "solve"])
        if fn == "solve":
            b = _N("ref", name="v", labels=[r]) if self.coin(2) else self.ref()
            if r not in _labels_below(b):
                b = _N("prod", factors=[("*", b), ("*", _N("ref", name="v", labels=[r]))],
                       sep=" ")
            return _N("solve", a=arg, b=b, pair=(r, c))
        return _N("mat", fn=fn, arg=arg, pair=(r, c), named=self.coin(4))

    def statement(self, name, depth, positive):
        nfree = self.int(0, 2)
        free = list(dict.fromkeys(self.pick(_PRG_LABELS) for _ in range(nfree)))
        terms = [(1 if k == 0 or positive or self.coin(2) else -1,
                  self.expr(depth, positive)) for k in range(self.int(1, 3))]
        terms = [(s, t if t.kind != "sum" else _N("prod", factors=[("*", self.num()), ("*", t)],
                                                  sep=" ")) for s, t in terms]
        if not positive and "i" in free and "j" not in free and self.coin(6):
            s, t = terms[0]
            f = t.factors if t.kind == "prod" else [("*", t)]
            terms[0] = (s, _N("prod", factors=[("*", _N("delta", labels=["i", "j"]))] + f,
                              sep=" "))
        return _Statement(name, free, terms)


@st.composite
def programs(draw, min_statements=2, max_statements=8, max_depth=3):
    """Random `RandomProgram`s of 2–8 statements: products of 2–4 factors
    with coefficients and quotients, parenthesised sums with mixed labels,
    elementwise functions (log, sqrt and fractional powers on positive
    arguments), powers with tensor exponents, reductions, softmax, matrix
    functions of well-conditioned matrices, delta and ones; sizes 0–4."""
    sizes = {}
    for lab in _PRG_LABELS:
        sizes[lab] = 0 if _once_in(draw, 12) else draw(st.integers(1, 4))
    sizes["j"] = sizes["i"]
    g = _Gen(draw, sizes, [])

    def labels(lo, hi):
        return [g.pick(_PRG_LABELS) for _ in range(g.int(lo, hi))]

    inputs = [("x", labels(1, 2), "real"), ("p", labels(1, 2), "pos"),
              ("w", labels(0, 2), "real"), ("q", labels(0, 1), "pos")]
    inputs = [(n, list(dict.fromkeys(l)), d) for n, l, d in inputs]
    inputs += [("a", ["i", "j"], "mat"), ("u", ["i", "j"], "small"), ("x2", ["i", "k"], "real"),
               ("v", ["i"], "real")]
    g.tensors = [(n, l, d) for n, l, d in inputs]
    number = {"q": not inputs[3][1] and g.coin(2)}
    count = draw(st.integers(min_statements, max_statements))
    statements = []
    for k in range(count):
        name = "y" if k == count - 1 else f"h{k + 1}"
        positive = k < count - 1 and g.coin(3)
        for _ in range(5):
            stmt = g.statement(name, g.int(1, max_depth), positive)
            try:
                for _ in range(3):  # the left's labels must be carried by a term
                    em = _Emit(dict(sizes), False, lambda: False)
                    em.statement(stmt)
                    if set(stmt.labels) <= set(em.union):
                        break
                    stmt.labels = [l for l in stmt.labels if l in em.union]
                break
            except _Unfit:
                continue
        else:
            stmt = _Statement(name, [], [(1, g.ref())])
        statements.append(stmt)
        g.tensors.append((name, stmt.labels, "pos" if positive else "real"))
    used = set()
    for stmt in statements:
        for _, t in stmt.terms:
            stack = [t]
            while stack:
                n = stack.pop()
                if n.kind == "ref":
                    used.add(n.name)
                stack += n.children()
    ins = [(n, tuple(sizes[l] for l in labs), d, number.get(n, False))
           for n, labs, d in inputs if n in used]
    bits = iter(draw(st.lists(st.booleans(), min_size=64, max_size=64)))
    return RandomProgram(statements, ins, sizes, lambda: next(bits, False))


class _JaxOps:
    """The reference namespace over jax.numpy."""

    def __init__(self):
        import jax
        import jax.numpy as jnp
        from jax.scipy.special import logsumexp
        self.jnp, self.nn, self.lse = jnp, jax.nn, logsumexp
        for name in ("exp", "log", "sqrt", "tanh", "abs", "maximum", "einsum", "reshape"):
            setattr(self, name, getattr(jnp, name))
        self.sigmoid, self.softplus, self.relu = jax.nn.sigmoid, jax.nn.softplus, jax.nn.relu
        self.inv, self.det, self.solve = jnp.linalg.inv, jnp.linalg.det, jnp.linalg.solve

    def logdet(self, x):
        return self.jnp.linalg.slogdet(x)[1]

    def reciprocal(self, x):
        return 1 / x

    def ones(self, n):
        return self.jnp.ones(n, dtype=self.jnp.float64)

    def eye(self, n):
        return self.jnp.eye(n, dtype=self.jnp.float64)

    def broadcast(self, x, shape):
        return self.jnp.broadcast_to(x, shape)

    def sum(self, x, axes):
        return self.jnp.sum(x, axis=axes)

    def mean(self, x, axes):
        return self.jnp.mean(x, axis=axes)

    def max(self, x, axes):
        return self.jnp.max(x, axis=axes)

    def logsumexp(self, x, axes):
        return self.lse(x, axis=axes)

    def softmax(self, x, axis):
        return self.nn.softmax(x, axis=axis)

    def log_softmax(self, x, axis):
        return self.nn.log_softmax(x, axis=axis)


class _TorchOps:
    """The reference namespace over torch."""

    def __init__(self):
        import torch
        self.torch, self.F = torch, torch.nn.functional
        for name in ("exp", "log", "sqrt", "tanh", "abs", "maximum", "einsum", "sigmoid",
                     "relu"):
            setattr(self, name, getattr(torch, name))
        self.softplus = self.F.softplus
        self.inv, self.det, self.solve = torch.linalg.inv, torch.linalg.det, torch.linalg.solve

    def logdet(self, x):
        return self.torch.linalg.slogdet(x)[1]

    def reciprocal(self, x):
        return 1 / x

    def ones(self, n):
        return self.torch.ones(n, dtype=self.torch.float64)

    def eye(self, n):
        return self.torch.eye(n, dtype=self.torch.float64)

    def broadcast(self, x, shape):
        return self.torch.broadcast_to(self.torch.as_tensor(x), shape)

    def reshape(self, x, shape):
        return self.torch.reshape(self.torch.as_tensor(x), shape)

    def sum(self, x, axes):
        return self.torch.sum(x, dim=axes)

    def mean(self, x, axes):
        return self.torch.mean(x, dim=axes)

    def max(self, x, axes):
        return self.torch.amax(x, dim=axes)

    def logsumexp(self, x, axes):
        return self.torch.logsumexp(x, dim=axes)

    def softmax(self, x, axis):
        return self.torch.softmax(x, dim=axis)

    def log_softmax(self, x, axis):
        return self.torch.log_softmax(x, dim=axis)


def _close(got, want, what, rtol=1e-6):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    scale = float(np.max(np.abs(want), initial=0.0))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-9 * (1 + scale), err_msg=what)


def program_reference(rp, values, cotangent_seed=0):
    """(value, cotangent, {name: gradient}) of the reference in jax float64,
    or None where it is not finite (outside the domain)."""
    import jax
    import jax.numpy as jnp
    f = rp.reference()
    names = [n for n, _, _, number in rp.inputs if not number]
    with jax.enable_x64(True):
        L = _JaxOps()
        fixed = {n: jnp.asarray(values[n]) for n, _, _, number in rp.inputs if number}

        def fn(*arrays):
            return f(L, **dict(zip(names, arrays)), **fixed)

        try:
            y, pullback = jax.vjp(fn, *[jnp.asarray(values[n]) for n in names])
        except IndexError:  # jax's det rule on a 0×0 matrix
            if any(0 in shape for _, shape, _, _ in rp.inputs):
                return None
            raise
        y = np.asarray(y)
        if not np.all(np.isfinite(y)):
            return None
        ct = np.random.default_rng(cotangent_seed).normal(size=y.shape)
        grads = pullback(jnp.asarray(ct))
        grads = {n: np.asarray(g) for n, g in zip(names, grads)}
    if not all(np.all(np.isfinite(g)) for g in grads.values()):
        return None
    return y, ct, grads


def _torch_reference(rp, values, ct):
    import torch
    f = rp.reference()
    L = _TorchOps()
    args = {n: torch.tensor(values[n], dtype=torch.float64, requires_grad=not number)
            for n, _, _, number in rp.inputs}
    y = f(L, **args)
    wrt = [n for n, _, _, number in rp.inputs if not number]
    gs = torch.autograd.grad(y, [args[n] for n in wrt], torch.as_tensor(ct),
                             allow_unused=True) if wrt and y.requires_grad else [None] * len(wrt)
    return y.detach().numpy(), {n: np.zeros(np.shape(values[n])) if g is None else g.numpy()
                                for n, g in zip(wrt, gs)}


def _derivative_text(prog, name, values):
    """The printed forward program and the printed derivative with respect to
    `name`, as one program returning it (∂l/∂v written d_v)."""
    graph, derivative = prog.graph(**values), prog.derivative(name, **values)
    d = re.sub(r"∂l/∂(\w+)(\[[^\]]*\])?(?=\s*\()", r"d_\1\2 *",
               str(derivative)).replace("∂l/∂", "d_")
    return f"{graph}\n{d}\nreturn d_{name}", {**graph.sizes, **derivative.sizes}


def check_program(rp, seed=0, torch=True, printing=True):
    """Check a `RandomProgram` at inputs drawn with `seed`: the text and the
    traced program's values and every input's gradient on NumPy against
    jax.vjp of the reference (float64), on torch against torch autograd of
    the reference, and the printed forward program (and a printed
    derivative), compiled again, against the same numbers.  Returns None
    when the reference is not finite at these inputs, else a list of
    (check, message) failures (empty when all agree)."""
    import einvjp
    values = rp.values(seed)
    ref = program_reference(rp, values, seed + 1)
    if ref is None:
        return None
    y_ref, ct, g_ref = ref
    failures = []

    def attempt(check, fn):
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - every failure is reported
            msg = "".join(f"{type(err).__name__}: {err}".splitlines(True)[:12])
            failures.append((check, msg))

    progs = {}

    def build(kind):
        progs[kind] = einvjp.compile(rp.text, sizes=rp.sizes) if kind == "text" else \
            einvjp.compile(rp.traced())

    for kind in ("text", "traced"):
        attempt(f"{kind}: compile", lambda: build(kind))
        prog = progs.get(kind)
        if prog is None:
            continue
        vals = {n: values[n] for n in prog.input_names}

        def forward():
            _close(prog(**vals), y_ref, "value")

        def gradients():
            g = prog.vjp(ct, **vals)
            for n, want in g_ref.items():
                if n in vals:
                    _close(g[n], want, f"gradient of {n}")

        attempt(f"{kind}: numpy value", forward)
        attempt(f"{kind}: numpy gradients", gradients)
        if torch:
            def on_torch():
                import torch as T
                wrt = [n for n in vals if not isinstance(vals[n], float)]
                if not wrt:  # numbers only: no tensor to run on torch
                    return
                tv = {n: T.tensor(v, dtype=T.float64, requires_grad=True)
                      if not isinstance(v, float) else v for n, v in vals.items()}
                y = prog(**tv)
                y_t, g_t = _torch_reference(rp, values, ct)
                _close(y.detach().numpy(), y_t, "torch value")
                if y.requires_grad:
                    gs = T.autograd.grad(y, [tv[n] for n in wrt], T.as_tensor(ct),
                                         allow_unused=True)
                else:
                    gs = [None] * len(wrt)
                for n, g in zip(wrt, gs):
                    _close(np.zeros(np.shape(vals[n])) if g is None else g.numpy(), g_t[n],
                           f"torch gradient of {n}")
            attempt(f"{kind}: torch", on_torch)
        if printing:
            def reprint():
                graph = prog.graph(**vals)
                text = str(graph)
                again = einvjp.compile(text, sizes=graph.sizes)
                _close(again(**{n: vals[n] for n in again.input_names}), y_ref,
                       f"printed program\n{text}\n")

            def rederive():
                name = next((n for n in g_ref if n in vals), None)
                if name is None:
                    return
                text, sizes = _derivative_text(prog, name, vals)
                again = einvjp.compile(text, sizes=sizes)
                feed = dict(vals, d_y=ct)
                _close(again(**{n: feed[n] for n in again.input_names}), g_ref[name],
                       f"printed derivative\n{text}\n")
            attempt(f"{kind}: printed program", reprint)
            attempt(f"{kind}: printed derivative", rederive)
    return failures
