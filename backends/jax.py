"""JAX: the op table, and the GE as one JAX primitive.

`einvjp.einsum` on jax arrays binds `ge_p`, whose parameter is the GE's
canonical key (plain hashable data, `GE.key()`).  Every transform then sees
einvjp's rules and nothing else:

  * impl / lowering — the cached `Plan` of the GE, run on the table below;
  * JVP — multilinear: Σ_k (the same GE with the tangent in slot k);
  * transpose — the role swap `ge.vjp(k)` of DESIGN §1 (linear, no
    conjugation: JAX's convention for complex numbers);
  * batching — a fresh label on the batched operands and on the output.

Each rule binds `ge_p` again, so derivatives of derivatives (grad of grad,
`jax.hessian`, `jacfwd` of `jacrev`) stay GEs.  Diagonals are strided slices
and diagonal embeddings interior padding: no delta, gather or scatter.

>>> import jax.numpy as jnp
>>> diagonal(jnp.arange(9.0).reshape(3, 3), ((0, 1),)).tolist()
[0.0, 4.0, 8.0]
>>> diag_embed(jnp.array([1.0, 2.0]), (2, 2), ((0, 1),)).tolist()
[[1.0, 0.0], [0.0, 2.0]]
>>> import jax, einvjp
>>> jax.grad(lambda x: einvjp.einsum("ii->", x))(jnp.ones((2, 2))).tolist()
[[1.0, 0.0], [0.0, 1.0]]
"""

import functools
import sys

import jax
import jax.numpy as jnp
from jax import lax
from jax.core import ShapedArray
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from einvjp.errors import EinvjpError
from einvjp.ge import GE
from einvjp.plan import plan_for

name = "jax"
transpose = jnp.transpose
reshape = jnp.reshape
matmul = jnp.matmul
multiply = jnp.multiply
add = jnp.add
broadcast_to = jnp.broadcast_to
conj = jnp.conj


def asarray(x):
    return jnp.asarray(x)


def sum(x, axes):
    return jnp.sum(x, axis=axes)


def swap_last(x):
    return jnp.swapaxes(x, -1, -2)


def scale(x, c):
    return x * c


def _step(n, m):
    """Distance between diagonal entries of an (n,)*m block read flat:
    1 + n + … + n**(m-1)."""
    return (n ** m - 1) // (n - 1) if n > 1 else 1


def diagonal(x, groups):
    """Axes in each group collapse to one: the group's axes are made adjacent,
    read flat, and every `_step`-th entry is kept (a strided slice)."""
    sizes = [x.shape[g[0]] for g in groups]
    x = jnp.transpose(x, [a for g in groups for a in g])
    x = jnp.reshape(x, [n ** len(g) for n, g in zip(sizes, groups)])
    for axis, (n, g) in enumerate(zip(sizes, groups)):
        if len(g) > 1 and n > 1:
            x = lax.slice_in_dim(x, 0, None, stride=_step(n, len(g)), axis=axis)
    return x


def diag_embed(x, shape, groups):
    """Zeros of `shape` with `x` on the diagonal `groups`: the transpose of
    `diagonal` (interior zero padding, then the group's axes unflattened)."""
    config = [(0, 0, _step(n, len(g)) - 1 if len(g) > 1 else 0)
              for n, g in zip(x.shape, groups)]
    x = lax.pad(x, jnp.zeros((), x.dtype), config)
    order = [a for g in groups for a in g]
    x = jnp.reshape(x, [shape[a] for a in order])
    return jnp.transpose(x, sorted(range(len(order)), key=order.__getitem__))


def cast_like(g, x):
    """A gradient in the dtype of its primal (the real part for a real one)."""
    if jnp.iscomplexobj(g) and not jnp.iscomplexobj(x):
        g = jnp.real(g)
    if g.dtype != x.dtype and jnp.issubdtype(x.dtype, jnp.inexact):
        g = g.astype(x.dtype)
    return g


# The primitive.  Params: `key` (GE.key()) and `optimize` (the path choice,
# made hashable); operands all of one dtype (`apply` promotes them).

ge_p = Primitive("einvjp_ge")


def apply(plan, arrays):
    """`einvjp.einsum` on jax arrays: promote like `jnp.einsum`, bind `ge_p`."""
    dtype = jnp.result_type(*arrays)
    arrays = [lax.convert_element_type(x, dtype) for x in arrays]
    if len(plan.steps) > 1:
        # One primitive per step: JAX's linearization then keeps the
        # intermediates, and each transpose is one pairwise role swap (the
        # transpose of a whole many-operand GE recontracts it per operand).
        slots = list(arrays)
        for step in plan.steps:
            slots.append(ge_p.bind(*(slots[i] for i in step.ins), key=step.ge.key(),
                                   optimize="auto"))
        return slots[-1]
    optimize = plan.steps[0].optimize  # a path (list) becomes a hashable parameter
    if isinstance(optimize, (list, tuple)):
        optimize = tuple(p if isinstance(p, str) else tuple(p) for p in optimize)
    return ge_p.bind(*arrays, key=plan.ge.key(), optimize=optimize)


@functools.lru_cache(maxsize=4096)
def _ge(key):
    return GE.from_key(key)


@functools.lru_cache(maxsize=4096)
def _vjp_key(key, k):
    return _ge(key).vjp(k).key()


def _derived(optimize):
    """The path choice for a GE derived by transpose or batching: a method
    name carries over; a path or a path-optimizer instance was made for the
    original contraction (an opt_einsum optimizer refuses a second one)."""
    return optimize if isinstance(optimize, (str, bool, type(None))) else "auto"


def _run(*arrays, key, optimize):
    return plan_for(_ge(key), optimize)(sys.modules[__name__], list(arrays))


def _abstract_eval(*avals, key, optimize):
    _, out, sizes, _ = key
    return ShapedArray(tuple(sizes[n] for n in out), avals[0].dtype)


def _jvp(primals, tangents, *, key, optimize):
    out = ge_p.bind(*primals, key=key, optimize=optimize)
    t_out = None
    for k, t in enumerate(tangents):
        if type(t) is ad.Zero:
            continue
        term = ge_p.bind(*primals[:k], t, *primals[k + 1:], key=key, optimize=optimize)
        t_out = term if t_out is None else lax.add(t_out, term)
    if t_out is None:
        t_out = ad.Zero(_abstract_eval(*primals, key=key, optimize=optimize).to_tangent_aval())
    return out, t_out


def _transpose(ct, *args, key, optimize):
    linear = [k for k, x in enumerate(args) if ad.is_undefined_primal(x)]
    if len(linear) > 1:
        raise EinvjpError(
            f"einsum {_ge(key).equation()!r} is transposed in operands {linear} at "
            f"once, but it is linear in each operand separately, not jointly")
    cts = [None] * len(args)
    if type(ct) is ad.Zero:
        return cts
    for k in linear:
        cts[k] = ge_p.bind(ct, *args[:k], *args[k + 1:], key=_vjp_key(key, k),
                           optimize=_derived(optimize))
    return cts


def _batch(args, dims, *, key, optimize):
    terms, out, sizes, coeff = key
    b = len(sizes)  # a label number the GE does not use, however often batched
    size = next(x.shape[d] for x, d in zip(args, dims) if d is not None)
    moved, batched_terms = [], []
    for x, d, term in zip(args, dims, terms):
        if d is None:
            moved.append(x)
            batched_terms.append(term)
        else:
            moved.append(jnp.moveaxis(x, d, 0))
            batched_terms.append((b,) + term)
    batched = GE.from_key((tuple(batched_terms), (b,) + out, sizes + (size,), coeff))
    return ge_p.bind(*moved, key=batched.key(), optimize=_derived(optimize)), 0


ge_p.def_impl(jax.jit(_run, static_argnames=("key", "optimize")))
ge_p.def_abstract_eval(_abstract_eval)
mlir.register_lowering(ge_p, mlir.lower_fun(_run, multiple_results=False))
ad.primitive_jvps[ge_p] = _jvp
ad.primitive_transposes[ge_p] = _transpose
batching.primitive_batchers[ge_p] = _batch
