"""Sliced contractions (`memory_limit=`) on jax: a `fori_loop` over the
slices on one device, a `shard_map` of it over several (each device its
share of the slices, one `psum`), forward and derived VJP, under `jax.jit`
with `NamedSharding` inputs.

In this process (one CPU device): the loop, against `jnp.einsum` and
`jax.vjp` of it in float64, against einvjp's own NumPy run, with outputs that
carry a sliced label and terms that carry one twice.  In a subprocess with
`XLA_FLAGS=--xla_force_host_platform_device_count=8`: the same checks on
eight devices (the jaxprs show the `shard_map`), on the caller's mesh of
`jax.set_mesh`, and inside the caller's own `shard_map` and `pmap`.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import jax_fast_x64

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

import einvjp  # noqa: E402
from einvjp.backends import _jax_slices  # noqa: E402
from einvjp.backends.jax import BACKEND  # noqa: E402
from einvjp.backends.numpy import BACKEND as NUMPY  # noqa: E402
from einvjp.equation import bind, parse  # noqa: E402
from einvjp.slicing import SlicedPlan  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOL = 1e-10
HIGHEST = jax.lax.Precision.HIGHEST


def looped(text):
    """A jaxpr runs a loop (`fori_loop` with fixed bounds is a `scan`)."""
    return "scan[" in text or "while[" in text


def peps(n, bond):
    """The closed n x n grid network (each tensor: its bonds to the left,
    right, up and down neighbours), as an equation with scalar output."""
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    h = {(r, c): next(letters) for r in range(n) for c in range(n - 1)}
    v = {(r, c): next(letters) for r in range(n - 1) for c in range(n)}
    terms = []
    for r in range(n):
        for c in range(n):
            terms.append((h[r, c - 1] if c > 0 else "") + (h[r, c] if c < n - 1 else "") +
                         (v[r - 1, c] if r > 0 else "") + (v[r, c] if r < n - 1 else ""))
    return ",".join(terms) + "->", [(bond,) * len(t) for t in terms]


def _close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert np.allclose(a, b, rtol=TOL, atol=TOL), (what, float(np.max(np.abs(a - b))))


def _operands(shapes, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s) / 2 for s in shapes]
    if dtype == np.complex128:
        xs = [x + 1j * rng.standard_normal(x.shape) / 2 for x in xs]
    return xs, rng


def check_limited(eq, shapes, frac, specs, at_least=8, mesh=False):
    """einvjp.einsum(eq, memory_limit=frac * the unsliced VJP peak) on jax
    arrays placed by NamedSharding(mesh over every device, spec) for each
    spec (`mesh=None`: the context mesh): the forward, jax.vjp and jax.grad under jit against float64
    jnp.einsum and jax.vjp of it, and against einvjp.vjp on NumPy.  Returns
    the plan and the jaxprs of the jitted forward and VJP."""
    limit = einvjp.plan(eq, shapes).cost.vjp.peak * frac
    plan = einvjp.plan(eq, shapes, memory_limit=limit)
    assert isinstance(plan, SlicedPlan) and plan.count >= at_least, (eq, plan)
    xs, rng = _operands(shapes)
    expected = jnp.einsum(eq, *xs, precision=HIGHEST)
    ct = rng.standard_normal(expected.shape)
    grads = jax.vjp(lambda *a: jnp.einsum(eq, *a, precision=HIGHEST), *xs)[1](ct)
    on_numpy = einvjp.vjp(eq, xs, ct, memory_limit=limit)
    for g, h in zip(grads, on_numpy):
        _close(h, g, (eq, "einvjp.vjp on numpy"))

    def ours(*a):
        return einvjp.einsum(eq, *a, memory_limit=limit)
    forward = jax.jit(ours)
    backward = jax.jit(lambda *a: jax.vjp(ours, *a)[1](ct))
    grad = jax.jit(jax.grad(lambda *a: jnp.sum(ours(*a) * ct), argnums=tuple(range(len(xs)))))
    if mesh is not None:
        mesh = Mesh(np.array(jax.devices()), ("d",))
    for spec in specs:
        ys = [jax.device_put(x, spec if mesh is None else NamedSharding(mesh, spec))
              for x in xs]
        _close(forward(*ys), expected, (eq, spec, "forward"))
        for mine, g in zip(backward(*ys), grads):
            _close(mine, g, (eq, spec, "jax.vjp"))
        for mine, g in zip(grad(*ys), grads):
            _close(mine, g, (eq, spec, "jax.grad"))
    return plan, str(jax.make_jaxpr(forward)(*ys)), str(jax.make_jaxpr(backward)(*ys))


def check_sliced(eq, shapes, names, dtype=np.float64, every=None):
    """`SlicedPlan` of `eq` over the labels `names` (any: repeated in a term
    or in the output), run by the jax loop against the same plan on NumPy
    and einvjp.vjp; returns the plan and the jaxpr of its jitted VJP."""
    ge = bind(parse(eq), shapes)
    labels = {lab.name: lab for term in (*ge.terms, ge.out) for lab in term}
    plan = SlicedPlan(ge, [labels[n] for n in names], einvjp.plan(eq, shapes).path, every)
    xs, rng = _operands(shapes, 1, dtype)
    run = _jax_slices.sliced(plan, BACKEND)
    expected = plan(NUMPY, xs)
    ct = rng.standard_normal(expected.shape).astype(dtype)
    _close(run(*xs), expected, (eq, names, "forward"))
    backward = jax.jit(lambda *a: jax.vjp(run, *a)[1](ct))
    for mine, g in zip(backward(*xs), einvjp.vjp(eq, xs, ct)):
        _close(mine, g, (eq, names, "vjp"))
    return plan, str(jax.make_jaxpr(backward)(*xs))


# --- One device: the fori_loop ------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax_fast_x64():
        yield


def test_one_device_loop_under_jit_with_named_sharding():
    assert jax.device_count() == 1
    eq, shapes = peps(3, 4)
    _, forward, backward = check_limited(eq, shapes, 0.3, [P(), P("d")])
    for text in (forward, backward):
        assert looped(text) and "shard_map" not in text


def test_one_device_output_carries_a_sliced_label():
    plan, forward, backward = check_limited(
        "zab,zbc,zcd->zad", [(16, 8, 8)] * 3, 0.3, [P()])
    assert plan.out_at and looped(forward) and looped(backward)


@pytest.mark.parametrize("eq,shapes,names", [
    ("aab,bc->ac", [(10, 10, 4), (4, 5)], "a"),  # a label twice in a term
    ("aab,bc->aac", [(10, 10, 4), (4, 5)], "ab"),  # ... and twice in the output
    ("ab,bc->aac", [(10, 4), (4, 5)], "ac"),
    ("abca,bc->ac", [(9, 4, 3, 9), (4, 3)], "ab"),  # twice, not adjacent
    ("ab,bc,cd->ad", [(5, 6), (6, 7), (7, 5)], "bc"),
])
def test_one_device_sliced_labels_anywhere(eq, shapes, names):
    _, text = check_sliced(eq, shapes, names)
    assert looped(text)


def test_complex_operands():
    check_sliced("ab,bc,cd->ad", [(5, 6), (6, 7), (7, 5)], "bc", np.complex128)


def test_few_slices_stay_unrolled():
    plan, text = check_sliced("ab,bc->ac", [(3, 2), (2, 4)], "b")
    assert plan.count <= _jax_slices.UNROLL and not looped(text)


def test_vmap_of_a_sliced_contraction():
    eq, shapes = "ab,bc,cd->ad", [(6, 20), (20, 20), (20, 6)]
    limit = einvjp.plan(eq, shapes).cost.vjp.peak * 0.2
    assert einvjp.plan(eq, shapes, memory_limit=limit).count > _jax_slices.UNROLL
    xs, _ = _operands(shapes)
    batch = np.stack([xs[0], 2 * xs[0], -xs[0]])
    mine = jax.jit(jax.vmap(lambda a: einvjp.einsum(eq, a, *xs[1:], memory_limit=limit)))(batch)
    _close(mine, jnp.einsum("zab,bc,cd->zad", batch, *xs[1:], precision=HIGHEST), "vmap")


# --- Eight devices, in a subprocess -------------------------------------------------


def eight_devices():
    """Run in the subprocess: every check on a mesh of eight CPU devices."""
    jax.config.update("jax_enable_x64", True)
    assert jax.device_count() == 8, jax.devices()
    eq, shapes = peps(4, 4)
    plan, forward, backward = check_limited(eq, shapes, 0.2, [P()])
    assert "shard_map" in forward and "shard_map" in backward
    print(f"peps 4x4 bond 4: {plan.count} slices over 8 devices, shard_map in both jaxprs")
    # 8 slices (one per device), inputs sharded along the sliced batch label;
    # then 12 slices (padded to 16), inputs sharded along another axis
    plan, forward, backward = check_limited(
        "zab,zbc,zcd,zde->zae", [(8, 6, 12), (8, 12, 12), (8, 12, 12), (8, 12, 6)], 0.3,
        [P(), P("d")])
    assert plan.out_at and "shard_map" in forward and "shard_map" in backward
    plan, forward, backward = check_limited(
        "zab,zbc,zcd->zad", [(12, 8, 8)] * 3, 0.3, [P(None, "d")])
    assert plan.count % 8 and "shard_map" in forward and "shard_map" in backward
    for eq, shapes, names in [("aab,bc->aac", [(10, 10, 4), (4, 5)], "ab"),
                              ("ab,bc->ac", [(3, 4), (4, 5)], "b")]:  # fewer slices than devices
        _, text = check_sliced(eq, shapes, names)
        assert "shard_map" in text
    # one slice (a plan that only recomputes): no loop, no mesh
    _, text = check_sliced("ab,bc,cd,de->ae", [(4, 5), (5, 6), (6, 5), (5, 4)], "", every=2)
    assert "shard_map" not in text and not looped(text)
    # the caller's mesh (jax.set_mesh, two axes), inputs sharded over it: the slices
    # are split over both axes (the same plan as above, traced again in the context)
    eq, shapes = "zab,zbc,zcd,zde->zae", [(8, 6, 12), (8, 12, 12), (8, 12, 12), (8, 12, 6)]
    kinds = (jax.sharding.AxisType.Explicit, jax.sharding.AxisType.Auto) \
        if hasattr(jax, "set_mesh") else ()  # an older jax: no context mesh
    for kind in kinds:
        with jax.set_mesh(jax.make_mesh((2, 4), ("x", "y"), axis_types=(kind, kind))):
            _, forward, backward = check_limited(eq, shapes, 0.3, [P(("x", "y")), P("x")],
                                                 mesh=None)
        assert "shard_map" in forward and "('x', 'y')" in backward, kind
    # inside the caller's shard_map and pmap: each device's share, each device's loop
    eq, shapes = "zab,zbc,zcd->zad", [(8, 2, 8, 8)] * 3
    limit = einvjp.plan(eq, [(2, 8, 8)] * 3).cost.vjp.peak * 0.1
    assert einvjp.plan(eq, [(2, 8, 8)] * 3, memory_limit=limit).count > _jax_slices.UNROLL
    xs, rng = _operands(shapes)
    ct = rng.standard_normal((8, 2, 8, 8))

    def share(*a):  # one device's share: the leading axis gone
        return einvjp.einsum(eq, *a, memory_limit=limit)
    whole = lambda *a: jnp.einsum("yzab,yzbc,yzcd->yzad", *a, precision=HIGHEST)
    expected, grads = whole(*xs), jax.vjp(whole, *xs)[1](ct)
    mapped = {"shard_map": jax.jit(jax.shard_map(
                  lambda *a: share(*(x[0] for x in a))[None],
                  mesh=Mesh(np.array(jax.devices()), ("u",)), in_specs=P("u"),
                  out_specs=P("u"))),
              "pmap": jax.pmap(share)}
    for name, f in mapped.items():
        _close(f(*xs), expected, name)
        for mine, g in zip(jax.vjp(f, *xs)[1](ct), grads):
            _close(mine, g, (name, "vjp"))
    # ... with an operand the same on every device: its gradient summed over them
    # (by the loop over 16 slices, and by the 2 slices unrolled of a larger limit)
    eq = "zab,zbc,zcd,zde->zae"
    peak = einvjp.plan(eq, [(2, 8, 8)] * 4).cost.vjp.peak
    xs, rng = _operands([(8, 2, 8, 8)] * 3 + [(2, 8, 8)], 2)
    whole = lambda a, b, c, w: jnp.einsum("yzab,yzbc,yzcd,zde->yzae", a, b, c, w,
                                          precision=HIGHEST)
    expected, grads = whole(*xs), jax.vjp(whole, *xs)[1](ct)
    for limit, count in ((0.7 * peak, 16), (0.9 * peak, 2)):
        assert einvjp.plan(eq, [(2, 8, 8)] * 4, memory_limit=limit).count == count
        f = jax.jit(jax.shard_map(
            lambda a, b, c, w: einvjp.einsum(eq, a[0], b[0], c[0], w, memory_limit=limit)[None],
            mesh=Mesh(np.array(jax.devices()), ("u",)), in_specs=(P("u"),) * 3 + (P(),),
            out_specs=P("u")))
        _close(f(*xs), expected, ("replicated operand", count))
        for mine, g in zip(jax.vjp(f, *xs)[1](ct), grads):
            _close(mine, g, ("replicated operand", count, "vjp"))
    print("eight devices: OK")


def test_eight_devices_in_a_subprocess():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "tests"),
                                                        os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, "-c", "import test_devices; test_devices.eight_devices()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "eight devices: OK" in done.stdout and "shard_map in both" in done.stdout
