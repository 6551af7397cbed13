"""JAX: a sliced plan (`einvjp.slicing.SlicedPlan`) as a JAX loop over its
slices, spread over the devices JAX sees.

`sliced(plan, B)` is a `jax.custom_vjp` function of the operands whose
forward is the sum over the slices of the inner plan and whose backward
recomputes each slice's forward and runs its VJP (nothing kept between the
forward and the backward but the operands):

* one device: a `lax.fori_loop` over the slice numbers, each turned into the
  sliced labels' values (traced), the operands read at them by
  `lax.dynamic_index_in_dim` (a label on two axes of a term: both axes, one
  after the other) and the slice's result added into the output (or the
  gradients) at them.  Up to `UNROLL` slices run as the plain Python loop,
  unrolled (timed on CPU: the loop ran as fast from 2 slices on, and
  compiled faster from 4);
* several devices (and more than one slice): a `shard_map` over the mesh
  the caller set (`jax.set_mesh`), else over a 1-D mesh of every device.
  The slice numbers, padded to a multiple of the device count, are split
  over the mesh (all its axes), the operands (and the cotangent)
  replicated; each device loops over its share (a padded number does
  nothing: `lax.cond`) and one `psum` adds the devices' sums.  Each device
  holds the operands, its sum, and one slice's intermediates: the per-slice
  peak the plan was chosen for.  Inside the caller's own `shard_map` or
  `pmap` (manual mesh axes), the work is split already: each device runs
  the one-device loop on its share of the operands.

Both directions run under `jax.jit` (compiled once per plan, also when
called eagerly), so they compose with an enclosing `jit` and with inputs
sharded in any way over those devices (XLA gathers them to the replicas
the mesh reads).

>>> import jax.numpy as jnp
>>> from einvjp.backends.jax import BACKEND
>>> from einvjp.equation import bind, parse
>>> from einvjp.slicing import SlicedPlan
>>> ge = bind(parse("ab,bc->ac"), [(3, 16), (16, 2)])
>>> p = SlicedPlan(ge, [ge.terms[0][1]], [(0, 1)])
>>> sliced(p, BACKEND)(jnp.ones((3, 16)), jnp.ones((16, 2))).tolist()
[[16.0, 16.0], [16.0, 16.0], [16.0, 16.0]]
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec

AXIS = "einvjp_slices"  # the mesh axis the slice numbers are split over
UNROLL = 2  # on one device, up to this many slices run as an unrolled Python loop

try:  # jax >= 0.6.1
    _shard_map = functools.partial(jax.shard_map, check_vma=False)
except AttributeError:  # pragma: no cover - older jax
    from jax.experimental.shard_map import shard_map as _old_shard_map
    _shard_map = functools.partial(_old_shard_map, check_rep=False)


def sliced(plan, B):
    """`plan` (a SlicedPlan) as a differentiable function of its operands,
    run on `B` (the jax backend); see the module docstring."""

    @jax.custom_vjp
    def run(*arrays):
        return forward(*arrays)

    forward = jax.jit(lambda *arrays: _forward(plan, B, arrays))
    backward = jax.jit(lambda arrays, ct: _backward(plan, B, arrays, ct))
    run.defvjp(lambda *arrays: (run(*arrays), arrays), backward)
    return run


def _mesh():
    """The mesh the slices are spread over, or None (one device's loop): the
    caller's mesh (`jax.set_mesh`), else every device on one axis; inside a
    caller's `shard_map` or `pmap` (manual axes), None: the caller has split
    the work, and each device loops over its own share's slices."""
    get = getattr(jax.sharding, "get_abstract_mesh", None)
    context = get() if get is not None else None
    if context is not None and not context.empty:
        return None if context.manual_axes or context.size == 1 else context
    devices = jax.devices()
    return Mesh(np.array(devices), (AXIS,)) if len(devices) > 1 else None


def _unrolled(plan, mesh):
    """No loop: no slice or one (a plan that only recomputes), or few on one device."""
    return plan.count <= 1 or (mesh is None and plan.count <= UNROLL)


def _forward(plan, B, arrays):
    mesh = _mesh()
    if _unrolled(plan, mesh):
        return plan(B, list(arrays))
    shape = tuple(lab.size for lab in plan.ge.out)
    dtype = jax.eval_shape(lambda *xs: plan.inner(B, _read(plan, xs, [0] * len(plan.sliced))),
                           *(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in arrays)).dtype

    def one(values, out, arrays):
        r = plan.inner(B, _read(plan, arrays, values))
        return _add(out, plan.out_at, values, r.astype(dtype))
    return _spread(plan, mesh, one, lambda: jnp.zeros(shape, dtype), arrays)


def _backward(plan, B, arrays, ct):
    mesh = _mesh()
    if _unrolled(plan, mesh):
        grads = plan.vjp(B, list(arrays), ct, range(plan.n))
        grads = tuple(B.cast_like(g, x) for g, x in zip(grads, arrays))
    else:
        wanted = list(range(plan.n))

        def one(values, grads, arrays_ct):
            *arrays, ct = arrays_ct
            slots = plan.inner.forward(B, _read(plan, arrays, values), keep_output=False,
                                       keep=plan.keep)
            g = plan.inner.vjp(B, slots, _take(ct, plan.out_at, values), wanted)
            return tuple(acc if gk is None else _add(acc, at, values, B.cast_like(gk, acc))
                         for acc, gk, at in zip(grads, g, plan.at))
        grads = _spread(plan, mesh, one,
                        lambda: tuple(jnp.zeros(x.shape, x.dtype) for x in arrays),
                        tuple(arrays) + (ct,))
    if _explicit(mesh):  # each gradient of its operand's type: sharded alike
        grads = tuple(jax.reshard(g, jax.typeof(x).sharding.spec) for g, x in zip(grads, arrays))
    # inside the caller's shard_map, an operand the same on every device gets the
    # sum of the devices' gradients (the transpose of its broadcast)
    return tuple(lax.psum(g, tuple(sorted(_vma(g) - _vma(x)))) if _vma(g) - _vma(x) else g
                 for g, x in zip(grads, arrays))


def _spread(plan, mesh, one, zeros, arrays):
    """Σ over the slices of `one(values, acc, arrays) - acc`: a fori_loop
    over the slice numbers, split over the devices of `mesh` (all its axes)."""
    count, parts = plan.count, 1 if mesh is None else mesh.size

    def loop(numbers, arrays):
        def body(i, acc):
            s = numbers[i]
            if numbers.shape[0] * parts == count:  # no padding
                return one(_values(plan, s), acc, arrays)
            return lax.cond(s < count, lambda acc: one(_values(plan, s), acc, arrays),
                            lambda acc: acc, acc)
        return lax.fori_loop(0, numbers.shape[0], body, _varying(zeros(), arrays))

    if mesh is None:
        return loop(jnp.arange(count, dtype=jnp.int32), arrays)
    axes = tuple(mesh.axis_names)
    numbers = jnp.arange(-(-count // parts) * parts, dtype=jnp.int32)
    if _explicit(mesh):  # sharding in the types: the placements the shard_map reads
        numbers = jax.reshard(numbers, PartitionSpec(axes))
        arrays = jax.tree.map(lambda x: jax.reshard(x, PartitionSpec()), arrays)

    def local(numbers, arrays):
        return jax.tree.map(lambda a: lax.psum(a, axes), loop(numbers, arrays))
    return _shard_map(local, mesh=mesh, in_specs=(PartitionSpec(axes), PartitionSpec()),
                      out_specs=PartitionSpec())(numbers, arrays)


def _vma(x):
    """The mesh axes `x` varies over inside the caller's `shard_map` (its
    type says: `.vma`, or `.manual_axis_type.varying` in newer jax)."""
    if not hasattr(jax, "typeof"):  # an older jax: no such types
        return frozenset()
    t = jax.typeof(x)
    axes = getattr(t, "vma", None)
    if axes is None:
        axes = getattr(getattr(t, "manual_axis_type", None), "varying", None)
    if axes is None:  # a jax that says neither: every manual axis
        get = getattr(jax.sharding, "get_abstract_mesh", None)
        axes = get().manual_axes if get is not None else ()
    return frozenset(axes)


def _varying(zeros, arrays):
    """Inside the caller's `shard_map`, a loop's carry has the type of what
    the body returns: varying over the mesh axes the operands vary over."""
    axes = frozenset().union(*(_vma(x) for x in jax.tree.leaves(arrays)))
    if not axes:
        return zeros
    axes = tuple(sorted(axes))
    if hasattr(lax, "pcast"):
        return jax.tree.map(lambda z: lax.pcast(z, axes, to="varying"), zeros)
    return jax.tree.map(lambda z: lax.pvary(z, axes), zeros)  # jax 0.6-0.7


def _explicit(mesh):
    explicit = getattr(getattr(jax.sharding, "AxisType", None), "Explicit", None)
    return explicit is not None and explicit in tuple(getattr(mesh, "axis_types", ()))


def _values(plan, s):
    """The sliced labels' values at slice number `s` (traced), in the order
    of `plan.slices()`: the last label fastest."""
    values = [None] * len(plan.sliced)
    for p in reversed(range(len(plan.sliced))):
        size = plan.sliced[p].size
        values[p], s = s % size, s // size
    return values


def _take(x, at, values):
    """`x` at the values of its sliced axes (`at`: (axis, position)), those
    axes gone; the last axis first, so that the others keep their numbers."""
    for a, p in sorted(at, reverse=True):
        x = lax.dynamic_index_in_dim(x, values[p], a, keepdims=False)
    return x


def _read(plan, arrays, values):
    return [_take(x, at, values) for x, at in zip(arrays, plan.at)]


def _add(acc, at, values, x):
    """`acc` with `x` added at the values of its sliced axes."""
    if not at:
        return acc + x
    where = dict((a, values[p]) for a, p in at)
    return acc.at[tuple(where.get(a, slice(None)) for a in range(acc.ndim))].add(x)
