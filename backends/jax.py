"""JAX: the backend object, and the GE as one JAX primitive.

* `BACKEND`: the `JaxBackend` (staged: a call under jit is a trace), whose
  kernels are the array-API ones;

`einvjp.einsum` on jax arrays binds `ge_p`, whose parameter is the GE's
canonical key (plain hashable data, `GE.key()`).  Every transform then sees
einvjp's rules and nothing else:

  * impl / lowering — the cached `Plan` of the GE, run on `BACKEND`;
  * JVP — multilinear: Σ_k (the same GE with the tangent in slot k);
  * transpose — the role swap `ge.vjp(k)` (linear, no
    conjugation: JAX's convention for complex numbers);
  * batching — a fresh label on the batched operands and on the output.

Each rule binds `ge_p` again, so derivatives of derivatives (grad of grad,
`jax.hessian`, `jacfwd` of `jacrev`) stay GEs.  Diagonals are strided slices
and diagonal embeddings interior padding: no delta, gather or scatter.

`differentiable(rule)` makes a whole function of arrays (an einvjp program)
differentiate through its derived programs: a `jax.custom_jvp` whose
tangent is the primitive `linear_p` (impl: the JVP program, transpose: the
VJP program); see the section at the end.

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

import jax
import jax.numpy as jnp
from jax import lax
from jax.core import ShapedArray
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jax.scipy.special import erf

from einvjp.backend import Backend, basic_index
from einvjp.backends._array_api import kernels
from einvjp.backends._jax_slices import sliced
from einvjp.errors import EinvjpError
from einvjp.ge import GE
from einvjp.plan import plan_for


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


def copy(x):
    """Arrays are immutable: sharing one is safe."""
    return x


def shares_memory(x, y):
    return False


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
    if getattr(plan, "sliced", None) is not None:  # run slice by slice (a memory limit)
        return _sliced(plan)(*arrays)
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


@functools.lru_cache(maxsize=256)
def _sliced(plan):
    """A sliced plan as a function whose VJP is the sliced VJP (each slice
    recomputed, not kept): a loop over the slices, spread over the devices
    (`einvjp.backends._jax_slices`)."""
    return sliced(plan, BACKEND)


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
    return plan_for(_ge(key), optimize)(BACKEND, list(arrays))


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


# --- A whole function through its derived programs ---------------------------------
#
# `differentiable(rule)` is a `jax.custom_jvp` function whose tangent is
# `linear_p`: linear in the tangents, evaluated by `rule.jvp`, and
# transposed by `rule.vjp`.  Forward mode (jvp, jacfwd) thus evaluates the JVP
# program and reverse mode (grad, vjp, jacrev, the jacrev inside hessian)
# the VJP program; both are jax ops and GEs again, so any composition
# differentiates further.  (`jax.custom_vjp` alone allows no forward mode.)


def differentiable(rule):
    """A function of jax arrays that every JAX transform (jit, vmap, grad,
    jvp, jacfwd, jacrev, hessian, and their compositions) differentiates
    through `rule` (an einvjp program's `einvjp.graph.Autodiff`, hashable: jit caches
    by it):

      * `rule.run(*arrays)` -> the outputs, a tuple;
      * `rule.vjp(arrays, cotangents, wanted)` -> one gradient per array
        (None where `wanted` is false): reverse mode;
      * `rule.jvp(arrays, tangents)` -> one tangent per output: forward mode.
    """
    @jax.custom_jvp
    def f(*arrays):
        return tuple(rule.run(*arrays))

    @f.defjvp
    def _(primals, tangents):
        diff = tuple(k for k, x in enumerate(primals) if jnp.issubdtype(x.dtype, jnp.inexact))
        lin = linear_p.bind(*primals, *(tangents[k] for k in diff), rule=rule, diff=diff,
                            levels=())
        return tuple(rule.run(*primals)), tuple(lin)
    return f


# Operands: the arrays, then the tangents of the arrays listed in `diff`.
# `levels`: one (size, batched operand positions) per vmap, outermost first;
# each is a leading axis of its operands and of every output.

linear_p = Primitive("einvjp_linear")
linear_p.multiple_results = True


def _vmapped(fn, n, levels):
    """`fn` of n operands, batched by `levels`."""
    for _, batched in reversed(levels):
        fn = jax.vmap(fn, in_axes=tuple(0 if k in batched else None for k in range(n)))
    return fn


def _linear(*ops, rule, diff, levels):
    n = len(ops) - len(diff)

    def one(*ops):
        tangents = [None] * n
        for k, t in zip(diff, ops[n:]):
            tangents[k] = t
        return tuple(rule.jvp(ops[:n], tangents))
    return list(_vmapped(one, len(ops), levels)(*ops))


def _linear_abstract_eval(*avals, rule, diff, levels):
    shapes = jax.eval_shape(functools.partial(_linear, rule=rule, diff=diff, levels=levels),
                            *avals)
    return [ShapedArray(s.shape, s.dtype) for s in shapes]


def _linear_jvp(primals, tangents, *, rule, diff, levels):
    """Forward over forward: JAX differentiates the JVP program's ops."""
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    return jax.jvp(functools.partial(_linear, rule=rule, diff=diff, levels=levels),
                   tuple(primals), tuple(tangents))


def _linear_transpose(cts, *ops, rule, diff, levels):
    n = len(ops) - len(diff)
    if any(ad.is_undefined_primal(x) for x in ops[:n]):
        raise EinvjpError("a program's JVP is linear in its tangents, not in its inputs")
    wanted = [False] * n
    for k, t in zip(diff, ops[n:]):
        wanted[k] = ad.is_undefined_primal(t)
    out = [None] * len(ops)
    if not any(wanted):
        return out
    cts = [ad.instantiate_zeros(c) for c in cts]

    def one(*args):
        grads = rule.vjp(args[:n], args[n:], tuple(wanted))
        return tuple(g for g, w in zip(grads, wanted) if w)
    # The cotangents carry every level; an array, the levels it had.
    every = tuple(range(n, n + len(cts)))
    in_levels = tuple((size, tuple(k for k in batched if k < n) + every)
                      for size, batched in levels)
    grads = iter(_vmapped(one, n + len(cts), in_levels)(*ops[:n], *cts))
    for j, k in enumerate(diff):
        if wanted[k]:
            g = next(grads)  # a level the tangent lacks is summed out
            lacks = tuple(a for a, (_, batched) in enumerate(levels) if n + j not in batched)
            out[n + j] = g.sum(axis=lacks) if lacks else g
    return out


def _linear_batch(args, dims, *, rule, diff, levels):
    size = next(x.shape[d] for x, d in zip(args, dims) if d is not None)
    moved = [x if d is None else jnp.moveaxis(x, d, 0) for x, d in zip(args, dims)]
    batched = tuple(k for k, d in enumerate(dims) if d is not None)
    out = linear_p.bind(*moved, rule=rule, diff=diff, levels=((size, batched),) + levels)
    return out, [0] * len(out)


linear_p.def_impl(jax.jit(_linear, static_argnames=("rule", "diff", "levels")))
linear_p.def_abstract_eval(_linear_abstract_eval)
mlir.register_lowering(linear_p, mlir.lower_fun(_linear, multiple_results=True))
ad.primitive_jvps[linear_p] = _linear_jvp
ad.primitive_transposes[linear_p] = _linear_transpose
batching.primitive_batchers[linear_p] = _linear_batch


class JaxBackend(Backend):
    name = "jax"
    staged = True  # traced once under jit: `Straightline` returns its written code's result
    autodiff = True
    kernels = kernels(jnp, erf, jnp.linalg)

    transpose = staticmethod(jnp.transpose)
    reshape = staticmethod(jnp.reshape)
    matmul = staticmethod(jnp.matmul)
    multiply = staticmethod(jnp.multiply)
    add = staticmethod(jnp.add)
    subtract = staticmethod(jnp.subtract)
    broadcast_to = staticmethod(jnp.broadcast_to)
    conj = staticmethod(jnp.conj)
    zeros_like = staticmethod(jnp.zeros_like)
    asarray = staticmethod(asarray)
    sum = staticmethod(sum)
    swap_last = staticmethod(swap_last)
    scale = staticmethod(scale)
    diagonal = staticmethod(diagonal)
    diag_embed = staticmethod(diag_embed)
    copy = staticmethod(copy)
    shares_memory = staticmethod(shares_memory)
    cast_like = staticmethod(cast_like)
    apply = staticmethod(apply)
    differentiable = staticmethod(differentiable)

    @staticmethod
    def full(shape, value, like):
        return jnp.full(shape, value, dtype=jnp.result_type(like) if like is not None else None)

    @staticmethod
    def index(x, positions):
        return x[basic_index(positions, x.ndim)] if positions else x

    @staticmethod
    def add_at(acc, positions, x):
        return acc.at[basic_index(positions, acc.ndim)].add(x)


BACKEND = JaxBackend()
