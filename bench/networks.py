"""einvjp on tensor networks: forward and all-operand VJP, against the peers.

    python bench/networks.py [--families mps,mps-sweep,tt,peps,ttn] [--budget S]
                             [--call-limit S] [--memory-limit [peak/10|BYTES]]
                             [--profile] [--plot] [--write] [--quick]

What is timed, per network size and per path (float32; one thread in every
library by default, `--threads`: on a shared 2-core machine a 2-thread
parallel region waits for a time slice whenever another process holds the
other core, ~10 ms per op):

* forward: the output alone (torch under `no_grad`, jax `jit` of the
  contraction);
* forward+VJP: the output and the gradients of *every* operand for a fixed
  random cotangent: `einvjp.vjp(eq, ops, ct)` on NumPy (it returns the
  gradients and skips the forward's last step), `y.backward(ct)` on fresh
  leaf tensors for torch, `jax.jit` of `jax.vjp(f, *ops)` applied to the
  cotangent for JAX (compiled once, ahead of time);
* the ratio (forward+VJP) / forward: the cheap-gradient limit says a reverse
  sweep costs a small constant (~3) times the forward;
* peak memory of one forward+VJP: NumPy by `tracemalloc` (the peak of what
  is allocated during the call, gradients included), torch by the
  profiler's CPU-allocator events (`profile_memory=True`: the running sum of
  the allocations and frees of one call, its peak), JAX by XLA's
  `compiled.memory_analysis()` of the jitted forward+VJP (temp + output
  bytes: what XLA plans, not a measurement).

Paths: einvjp on NumPy, torch and JAX (`optimize="auto"`, or the explicit
left-to-right sweep in the `mps-sweep` family); torch autograd and
`jax.jit(jax.vjp)` over `opt_einsum.contract(eq, *ops, optimize=path)` with
einvjp's own path (`einvjp.plan(eq, shapes).path`); `torch.einsum` and
`jnp.einsum` as users call them (their default path: opt_einsum's "auto").

Every path's output and gradients are checked against a float64 reference
(torch autograd over opt_einsum with a good path) before any timing.  Then
warm-up, then the median of timed repeats (`--budget` seconds per cell),
the repeats of every path of one size interleaved round-robin so load from
other processes hits them alike (bench/harness.py).  A path whose one call
exceeds `--call-limit` seconds is shown as "—" with the reason and skipped at
the larger sizes of the same series; a default-path peer whose predicted
cost (opt_einsum's own estimate of the path it would take) is beyond reach
is skipped before it starts, with the prediction as the reason.

`--memory-limit` adds, per size, a row for each einvjp path run with
`memory_limit=<bytes>` (default: its own measured peak / 10) -- see the
MEMORY-LIMIT HOOK below.  `--profile` profiles einvjp's forward+VJP of the
largest MPS.  `--plot` writes bench/networks_time.png and
bench/networks_memory.png; `--write` puts the tables into bench/README.md
under "## Tensor networks".
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import re
import sys
import time
import traceback
import tracemalloc


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (imports no NumPy: the threads are pinned first)

THREADS = harness.pin_threads(sys.argv[1:]) if __name__ == "__main__" else None

import numpy as np  # noqa: E402

from harness import close  # noqa: E402

START, END = "<!-- networks:start -->", "<!-- networks:end -->"
DTYPE = np.float32
TOL = 2e-3          # relative to max |reference|
MAX_LABELS_TORCH = 52


# --------------------------------------------------------------------------
# Workloads


def _symbols():
    from opt_einsum import get_symbol
    k = 0
    while True:
        yield get_symbol(k)
        k += 1


class Size:
    """One network: its equation, operand shapes, a maker of float64 inputs,
    the `optimize=` einvjp gets, a cheap path for the reference, and where it
    sits in its family (series, x for plots)."""

    def __init__(self, family, series, label, x, eq, shapes, make, optimize="auto",
                 ref_path=None):
        self.family, self.series, self.label, self.x = family, series, label, x
        self.eq, self.shapes, self.make = eq, [tuple(s) for s in shapes], make
        self.optimize, self.ref_path = optimize, ref_path

    def out_shape(self):
        ins, out = self.eq.split("->")
        size = {}
        for term, s in zip(ins.split(","), self.shapes):
            size.update(zip(term, s))
        return tuple(size[c] for c in out)

    def labels(self):
        return len(set(self.eq) - set(",->"))


def mps(n, bond, phys=2, batch=128, classes=4, family="mps", sweep=False):
    """An MPS classifier: per site k an input x_k[b, p_k] (the batch label b
    is shared by every site) and a core; A_1[p_1, r_1] (open left end),
    A_k[r_{k-1}, p_k, r_k], A_N[r_{N-1}, p_N, c] (the class label) -> [b, c].
    Operands interleaved x_1, A_1, x_2, A_2, ...  Inputs are positive
    (x ~ 1/phys, cores ~ 1/bond) so the chain neither explodes nor vanishes
    over 256 sites and float32 sees no cancellation."""
    eq, shapes = harness.mps_chain(n, bond, phys, batch, classes)

    def make(rng):
        ops = []
        for k, s in enumerate(shapes):
            if k % 2 == 0:
                ops.append((1 + 0.2 * (rng.random(s) - 0.5)) / phys)
            else:
                ops.append(rng.uniform(0, 2, s) / bond)
        return ops

    path = mps_sweep_path(n)
    return Size(family, f"D={bond}", f"N={n} D={bond}", n, eq, shapes, make,
                optimize=path if sweep else "auto", ref_path=path)


def mps_sweep_path(n):
    """The left-to-right sweep over x_1, A_1, ..., x_N, A_N as a linear path
    (opt_einsum format): env = x_1 A_1, then env A_k, then (env A_k) x_k."""
    ids, nxt, path = list(range(2 * n)), 2 * n, []

    def merge(a, b):
        nonlocal nxt
        i, j = sorted((ids.index(a), ids.index(b)))
        path.append((i, j))
        ids.pop(j)
        ids.pop(i)
        ids.append(nxt)
        nxt += 1
        return nxt - 1
    env = merge(0, 1)
    for k in range(1, n):
        env = merge(merge(env, 2 * k + 1), 2 * k)
    return path


def tt_matrix(d, n, rank, batch=64):
    """A TT-matrix layer: y[b, j_1..j_d] = x[b, i_1..i_d] G_1[i_1, j_1, r_1]
    G_2[r_1, i_2, j_2, r_2] ... G_d[r_{d-1}, i_d, j_d]."""
    g = _symbols()
    b = next(g)
    i = [next(g) for _ in range(d)]
    j = [next(g) for _ in range(d)]
    r = [next(g) for _ in range(d - 1)]
    terms, shapes = [b + "".join(i)], [(batch,) + (n,) * d]
    for k in range(d):
        t = (r[k - 1] if k else "") + i[k] + j[k] + (r[k] if k < d - 1 else "")
        terms.append(t)
        shapes.append(tuple(rank if ch in r else n for ch in t))
    eq = ",".join(terms) + "->" + b + "".join(j)

    def make(rng):
        ops = [rng.standard_normal(shapes[0])]
        for k, s in enumerate(shapes[1:]):
            fan_in = n * (rank if k else 1)
            ops.append(rng.standard_normal(s) / math.sqrt(fan_in))
        return ops
    return Size("tt", f"d={d}", f"d={d} n={n} r={rank}", n ** d, eq, shapes, make)


def peps(bond, side=4, phys=2):
    """A side x side PEPS amplitude: site tensors T[up, left, right, down, p]
    (bond D on every edge of the grid) each contracted with a product-state
    vector v[p] -> a scalar.  Entries positive, T scaled by
    1/(D^(degree/2) p): the value is ~1."""
    g = _symbols()
    h = {(r, c): next(g) for r in range(side) for c in range(side - 1)}
    v = {(r, c): next(g) for r in range(side - 1) for c in range(side)}
    terms, shapes, degree = [], [], []
    for r in range(side):
        for c in range(side):
            t = (v[r - 1, c] if r else "") + (h[r, c - 1] if c else "") + \
                (h[r, c] if c < side - 1 else "") + (v[r, c] if r < side - 1 else "")
            ph = next(g)
            terms += [t + ph, ph]
            shapes += [(bond,) * len(t) + (phys,), (phys,)]
            degree += [len(t), 0]
    eq = ",".join(terms) + "->"

    def make(rng):
        return [rng.uniform(0, 2, s) / (bond ** (deg / 2) * phys) if deg else rng.uniform(0, 2, s)
                for s, deg in zip(shapes, degree)]
    return Size("peps", f"{side}x{side}", f"{side}x{side} D={bond}", bond, eq, shapes, make)


def ttn(leaves, chi, phys=4, batch=128, classes=4):
    """A binary tree tensor network classifier: leaf inputs x_k[b, p_k] (the
    batch label shared by all), nodes T[left, right, parent] of bond chi, the
    root T[left, right, c] -> [b, c]."""
    g = _symbols()
    b, c = next(g), next(g)
    terms, shapes, level = [], [], []
    for _ in range(leaves):
        p = next(g)
        terms.append(b + p)
        shapes.append((batch, phys))
        level.append((p, phys))
    while len(level) > 1:
        up = []
        for (la, da), (lb, db) in zip(level[::2], level[1::2]):
            e, de = (c, classes) if len(level) == 2 else (next(g), chi)
            terms.append(la + lb + e)
            shapes.append((da, db, de))
            up.append((e, de))
        level = up
    eq = ",".join(terms) + "->" + b + c

    def make(rng):
        return [rng.uniform(0.5, 1.5, s) if k < leaves else rng.uniform(0, 2, s) / (s[0] * s[1])
                for k, s in enumerate(shapes)]
    return Size("ttn", f"{leaves} leaves", f"{leaves} leaves chi={chi}", chi, eq, shapes, make)


FAMILIES = {
    "mps": "MPS classifier, einvjp's default path (`optimize=\"auto\"`)",
    "mps-sweep": "MPS classifier, the left-to-right sweep given as `optimize=path`",
    "tt": "TT-matrix layer",
    "peps": "4x4 PEPS amplitude",
    "ttn": "binary tree tensor network (16 leaves)",
}


def sizes(quick):
    """family -> [Size], cheapest first within each series."""
    if quick:
        return {
            "mps": [mps(n, 4, batch=8) for n in (4, 8)],
            "mps-sweep": [mps(n, 4, batch=8, family="mps-sweep", sweep=True) for n in (4, 8)],
            "tt": [tt_matrix(3, 4, 2, batch=4)],
            "peps": [peps(2)],
            "ttn": [ttn(8, 4, batch=8)],
        }
    ns = (8, 16, 32, 64, 128, 256)
    return {
        "mps": [mps(n, 16) for n in ns] + [mps(n, 32) for n in (16, 64)]
        + [mps(n, 64) for n in (16, 64)],
        "mps-sweep": [mps(n, 16, family="mps-sweep", sweep=True) for n in ns],
        "tt": [tt_matrix(3, 16, 8), tt_matrix(4, 8, 8), tt_matrix(6, 4, 8)],
        "peps": [peps(d) for d in (8, 12, 16)],
        "ttn": [ttn(16, chi) for chi in (16, 32, 64)],
    }


# --------------------------------------------------------------------------
# MEMORY-LIMIT HOOK
#
# The one place `memory_limit=` reaches einvjp.  einvjp.vjp(eq, ops, ct,
# memory_limit=<bytes>) and einvjp.einsum(eq, *ops, memory_limit=<bytes>) are
# being implemented; until they land the call raises (an EinvjpError, or a
# TypeError for the unknown keyword) and the row prints "—" with the error.
# `--memory-limit peak/10` (the default when the flag is given bare) gives
# each einvjp path its own measured peak / 10; `--memory-limit 64M` a fixed
# number of bytes.


def memory_limit_kwargs(limit_bytes):
    """The keyword arguments an einvjp call gets under a memory limit."""
    return {"memory_limit": int(limit_bytes)}


def memory_limit_bytes(spec, peak):
    """`peak/K` -> peak / K (None when the peak is unknown); `64M`, `1e8`,
    `2G` -> bytes."""
    m = re.fullmatch(r"peak/([0-9.]+)", spec)
    if m:
        return None if peak is None else peak / float(m.group(1))
    m = re.fullmatch(r"([0-9.eE+]+)([kKmMgG]?)", spec)
    if not m:
        raise ValueError(f"--memory-limit {spec!r}: give peak/K or a number of bytes (64M, 1e8)")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]


def _limit_errors():
    from einvjp import EinvjpError
    return (EinvjpError, TypeError)


# --------------------------------------------------------------------------
# Peak memory


def numpy_peak(fn):
    """tracemalloc: the peak of what is allocated during one call (NumPy
    reports its buffers to tracemalloc), minus what was traced before."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del out
    finally:
        tracemalloc.stop()
    return peak - before


def torch_peak(fn):
    """torch.profiler(profile_memory=True): the running sum of the CPU
    allocator's allocation and free events during one call, its peak."""
    from torch.profiler import ProfilerActivity, profile
    from torch._C._profiler import _EventType
    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
        del out
    events = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
    if not events:
        raise RuntimeError("the profiler recorded no allocation events")
    events.sort()
    total = peak = 0
    for _, size in events:
        total += size
        peak = max(peak, total)
    return peak


# --------------------------------------------------------------------------
# Paths.  Each builder returns (forward, forward+VJP, peak) callables:
# forward() -> output; vjp() -> (output or None, gradients); peak() -> bytes.
# Setup (jit compile, tensor conversion) happens in the builder.


class Skip(Exception):
    """A cell not run, with the reason (printed as "—")."""


def _einvjp_optimize(size):
    return size.optimize


def _path_of(size):
    import einvjp
    return einvjp.plan(size.eq, size.shapes, optimize=size.optimize).path


def b_einvjp_numpy(size, ops, ct, extra):
    import einvjp
    eq, opt = size.eq, _einvjp_optimize(size)

    def fwd():
        return einvjp.einsum(eq, *ops, optimize=opt, **extra)

    def vjp():
        return None, einvjp.vjp(eq, ops, ct, optimize=opt, **extra)
    return fwd, vjp, lambda: numpy_peak(vjp)


def _torch(size, ops, ct, fn):
    import torch
    ts = [torch.from_numpy(a) for a in ops]
    ct_t = torch.from_numpy(ct)

    def fwd():
        with torch.no_grad():
            return fn(*ts)

    def vjp():
        leaves = [t.detach().requires_grad_() for t in ts]   # fresh leaves each call
        y = fn(*leaves)
        y.backward(ct_t)
        return y, [x.grad for x in leaves]
    return fwd, vjp, lambda: torch_peak(vjp)


def b_einvjp_torch(size, ops, ct, extra):
    import einvjp
    eq, opt = size.eq, _einvjp_optimize(size)
    return _torch(size, ops, ct, lambda *a: einvjp.einsum(eq, *a, optimize=opt, **extra))


def b_torch_oe(size, ops, ct, extra):
    import opt_einsum
    eq, path = size.eq, _path_of(size)
    return _torch(size, ops, ct, lambda *a: opt_einsum.contract(eq, *a, optimize=path))


def b_torch_einsum(size, ops, ct, extra):
    import torch
    if size.labels() > MAX_LABELS_TORCH:
        raise Skip(f"torch.einsum takes at most {MAX_LABELS_TORCH} labels (a-z, A-Z); "
                   f"this equation has {size.labels()}")
    _predicted_skip(size)
    eq = size.eq
    return _torch(size, ops, ct, lambda *a: torch.einsum(eq, *a))


def _jax(size, ops, ct, fn):
    import jax
    import jax.numpy as jnp
    args = [jnp.asarray(a) for a in ops]
    ct_j = jnp.asarray(ct)

    def fv(*a):
        y, back = jax.vjp(fn, *a[:-1])
        return y, back(a[-1])
    t = time.perf_counter()
    f_c = jax.jit(fn).lower(*args).compile()
    v_c = jax.jit(fv).lower(*args, ct_j).compile()
    compile_s = time.perf_counter() - t

    def fwd():
        return jax.block_until_ready(f_c(*args))

    def vjp():
        return jax.block_until_ready(v_c(*args, ct_j))

    def peak():
        ma = v_c.memory_analysis()
        return ma.temp_size_in_bytes + ma.output_size_in_bytes
    fwd.compile_s = compile_s
    return fwd, vjp, peak


def b_einvjp_jax(size, ops, ct, extra):
    import einvjp
    eq, opt = size.eq, _einvjp_optimize(size)
    return _jax(size, ops, ct, lambda *a: einvjp.einsum(eq, *a, optimize=opt, **extra))


def b_jax_oe(size, ops, ct, extra):
    import opt_einsum
    eq, path = size.eq, _path_of(size)
    return _jax(size, ops, ct,
                lambda *a: opt_einsum.contract(eq, *a, optimize=path, backend="jax"))


def b_jnp_einsum(size, ops, ct, extra):
    import jax.numpy as jnp
    _predicted_skip(size)
    eq = size.eq
    return _jax(size, ops, ct, lambda *a: jnp.einsum(eq, *a))


LIMITS = {"flops": 3e10, "bytes": 4e9}   # set from the command line


def _predicted_skip(size):
    """Skip a default-path peer whose path (opt_einsum's "auto", what
    torch.einsum and jnp.einsum call) is predicted beyond reach."""
    import opt_einsum
    _, info = opt_einsum.contract_path(size.eq, *size.shapes, shapes=True, optimize="auto")
    flops, largest = float(info.opt_cost), float(info.largest_intermediate)
    nbytes = largest * np.dtype(DTYPE).itemsize
    if flops > LIMITS["flops"] or nbytes > LIMITS["bytes"]:
        raise Skip(f"its default path (opt_einsum 'auto') is predicted at {flops:.2g} flops, "
                   f"largest intermediate {largest:.2g} elements ({_bytes(nbytes)}); "
                   f"limits {LIMITS['flops']:.0e} flops, {_bytes(LIMITS['bytes'])}")


def _bytes(n):
    for unit, k in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return f"{n / k:.3g} {unit}"
    return f"{n:.0f} B"


# name, library, builder, einvjp?
PATHS = [
    ("einvjp-numpy", "numpy", b_einvjp_numpy, True),
    ("einvjp-torch", "torch", b_einvjp_torch, True),
    ("torch+oe(path)", "torch", b_torch_oe, False),
    ("torch.einsum", "torch", b_torch_einsum, False),
    ("einvjp-jax", "jax", b_einvjp_jax, True),
    ("jax+oe(path)", "jax", b_jax_oe, False),
    ("jnp.einsum", "jax", b_jnp_einsum, False),
]
# The sweep family is about einvjp's backward: its peers are the ones that
# take the same path (the default-path peers are in the mps family).
FAMILY_PATHS = {"mps-sweep": {"einvjp-numpy", "einvjp-torch", "einvjp-jax", "torch+oe(path)"}}


# --------------------------------------------------------------------------
# Reference and checks


def reference(size, ops, ct):
    """Output and gradients in float64: torch autograd over opt_einsum with
    the size's reference path (the sweep for an MPS) or einvjp's."""
    import opt_einsum
    import torch
    path = size.ref_path or _path_of(size)
    leaves = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in ops]
    y = opt_einsum.contract(size.eq, *leaves, optimize=path)
    y.backward(torch.tensor(np.asarray(ct, np.float64)))
    return y.detach().numpy(), [x.grad.numpy() for x in leaves]


def check_fwd(y, ref):
    close(y, ref[0], "output", TOL)


def check_vjp(result, ref):
    y, grads = result
    if y is not None:
        close(y, ref[0], "output", TOL)
    grads = list(grads)
    if len(grads) != len(ref[1]):
        raise AssertionError(f"{len(grads)} gradients for {len(ref[1])} operands")
    for k, (g, r) in enumerate(zip(grads, ref[1])):
        if g is None:
            raise AssertionError(f"gradient {k} is None")
        close(g, r, f"gradient {k}", TOL)


# --------------------------------------------------------------------------
# Cells


class Result:
    """One row: a path on one size (forward, forward+VJP, peak memory)."""

    def __init__(self, path, lib, einvjp, limit=None, spec=None):
        self.path, self.lib, self.einvjp, self.limit = path, lib, einvjp, limit
        self.spec = spec
        self.fwd = self.vjp = self.peak = None
        self.skip = self.error = None      # a reason: "—" / "ERR"
        self.peak_note = None
        self.compile_s = None

    def name(self):
        if self.limit is None:
            return self.path
        return f"{self.path}, memory_limit={self.spec} (limit {_bytes(self.limit)})"

    def ratio(self):
        return self.vjp / self.fwd if self.fwd and self.vjp else None


def _first(fn):
    """First call (planning, first touch; jit compiled already), then one
    more, timed -> (its result, seconds)."""
    return harness.first_call(fn)


def run_size(size, args, slow):
    """Every path on one size: build, check, peak memory, then interleaved
    timing of all forward and forward+VJP callables."""
    rng = np.random.default_rng(0)
    ops64 = size.make(rng)
    ops = [np.ascontiguousarray(a, dtype=DTYPE) for a in ops64]
    ct = rng.standard_normal(size.out_shape()).astype(DTYPE)
    t_size = time.perf_counter()
    size.plan_s, size.flops = plan_cost(size)
    t = time.perf_counter()
    ref = reference(size, ops, ct)
    print(f"  [{size.family} {size.label}] {len(ops)} operands, {size.labels()} labels; "
          f"einvjp.plan {size.plan_s:.2f} s, path {size.flops:.3g} flops; "
          f"reference {time.perf_counter() - t:.1f} s", flush=True)
    allowed = FAMILY_PATHS.get(size.family)
    results, ready = [], []

    def attempt(res, builder, extra):
        key = (size.family, size.series, res.name() if res.limit is None else res.path + "+limit")
        if key in slow:
            res.skip = slow[key]
            return
        try:
            t0 = time.perf_counter()
            fwd, vjp, peak = builder(size, ops, ct, extra)
            res.compile_s = getattr(fwd, "compile_s", None)
            y, t_f = _first(fwd)
            check_fwd(y, ref)
            out, t_v = _first(vjp)
            check_vjp(out, ref)
            del y, out
            if max(t_f, t_v) > args.call_limit:
                why = f"one call took {max(t_f, t_v):.1f} s > --call-limit {args.call_limit:g} s"
                slow[key] = f"skipped: at {size.label} {why}"
                res.fwd, res.vjp = t_f, t_v
                res.skip = why + " (one call, not a median)"
            else:
                ready.append((res, fwd, vjp, t_f, t_v))
            try:
                res.peak = peak()
            except Exception as err:  # noqa: BLE001
                res.peak_note = harness.short(f"{type(err).__name__}: {err}", 80)
            built = time.perf_counter() - t0
            print(f"    {res.name():34s} built+checked in {built:6.1f} s"
                  + (f" (jit compile {res.compile_s:.1f} s)" if res.compile_s else ""),
                  flush=True)
        except Skip as why:
            res.skip = str(why)
        except _limit_errors() if res.limit is not None else () as err:
            res.skip = harness.short(f"memory_limit: {type(err).__name__}: {err}",
                                     160)
        except Exception as err:  # noqa: BLE001 - a failing path is a result
            if args.verbose:
                traceback.print_exc()
            res.error = harness.short(f"{type(err).__name__}: {err}", 300)
        gc.collect()

    for name, lib, builder, is_einvjp in PATHS:
        if allowed is not None and name not in allowed:
            continue
        res = Result(name, lib, is_einvjp)
        results.append(res)
        attempt(res, builder, {})
        if args.memory_limit and is_einvjp and size.family in args.limit_families.split(","):
            limit = memory_limit_bytes(args.memory_limit, res.peak)
            lim = Result(name, lib, True, limit=limit, spec=args.memory_limit)
            if limit is None:
                lim.limit = 0
                lim.skip = "no peak measured without a limit"
            elif res.peak < args.limit_min_peak:
                lim.skip = (f"unlimited peak under {args.limit_min_peak / 1e6:.0f} MB: slicing a "
                            f"small network is Python-bound (tests/test_memory.py covers it)")
            else:
                attempt(lim, builder, memory_limit_kwargs(limit))  # <- the hook
            results.append(lim)

    if ready and not args.quick:
        fns, ests = [], []
        for res, fwd, vjp, t_f, t_v in ready:
            fns += [fwd, vjp]
            ests += [harness.warm(fwd, t_f, args.budget, 2, 0.1),
                     harness.warm(vjp, t_v, args.budget, 2, 0.1)]

        def repeats_for(number, est):
            return max(3 if est > args.budget / 4 else 5,
                       min(int(args.budget / (number * est)), 200))
        timed = harness.measure(fns, ests, repeats_for)
        for k, (res, *_rest) in enumerate(ready):
            res.fwd, res.vjp = timed[2 * k][0], timed[2 * k + 1][0]
    else:
        for res, _f, _v, t_f, t_v in ready:
            res.fwd, res.vjp = t_f, t_v
    for res in results:
        print(f"    {res.name():34s} " + row_cells(res, results), flush=True)
    print(f"    ({time.perf_counter() - t_size:.0f} s for this size)", flush=True)
    return results


def plan_cost(size):
    """Seconds of einvjp's first `plan` (path search included; cached
    after) and opt_einsum's flop estimate of the path it picks."""
    import einvjp
    import opt_einsum
    t = time.perf_counter()
    path = einvjp.plan(size.eq, size.shapes, optimize=size.optimize).path
    plan_s = time.perf_counter() - t
    _, info = opt_einsum.contract_path(size.eq, *size.shapes, shapes=True, optimize=path)
    return plan_s, float(info.opt_cost)


# --------------------------------------------------------------------------
# Report


def _ms(s):
    return "—" if s is None else f"{s * 1e3:.3g}"


def _mb(b):
    return "—" if b is None else f"{b / 1e6:.3g}"


def _base(res, results):
    """The einvjp row of the same library (the peers' comparison)."""
    return next((r for r in results if r.einvjp and r.limit is None and r.lib == res.lib), None)


def row_cells(res, results):
    if res.error:
        return "ERR (see below)"
    if res.skip and res.fwd is None:
        return "— (see below)"
    ratio = res.ratio()
    base = _base(res, results)
    vs = ""
    if base is not None and base is not res and base.vjp and res.vjp and not res.skip:
        vs = f"{res.vjp / base.vjp:.2f}"
    cells = [_ms(res.fwd), _ms(res.vjp), "—" if ratio is None else f"{ratio:.2f}",
             _mb(res.peak), vs]
    if res.skip:
        cells[-1] = "— (see below)"
    return " | ".join(cells)


PEAK_HOW = {"numpy": "tracemalloc", "torch": "torch profiler", "jax": "XLA temp+out"}


def family_table(family, all_results):
    rows = [(size, results) for size, results in all_results if size.family == family]
    if not rows:
        return ""
    eq_size = max((size for size, _ in rows), key=lambda z: len(z.shapes))
    lines = [f"### {FAMILIES[family]}", "",
             f"largest: {len(eq_size.shapes)} operands, {eq_size.labels()} labels; "
             + describe(family), "",
             *harness.table_head(["size", "path", "fwd ms", "fwd+VJP ms", "(fwd+VJP)/fwd",
                                  "peak MB (how)", "fwd+VJP / einvjp same lib"])]
    notes = []
    for size, results in rows:
        first = True
        for res in results:
            label = f"**{size.label}**" if first else ""
            first = False
            cells = row_cells(res, results).split(" | ")
            if len(cells) == 1:    # skipped or failed
                cells = ["—"] * 5 if res.skip else ["ERR"] * 5
                why = res.skip or res.error
                notes.append(f"- {size.label} / {res.name()}: {why}")
            else:
                if res.peak is not None:
                    cells[3] += f" ({PEAK_HOW[res.lib]})"
                if res.skip:
                    notes.append(f"- {size.label} / {res.name()}: {res.skip}")
            lines.append(f"| {label} | {res.name()} | " + " | ".join(cells) + " |")
            if res.peak_note:
                notes.append(f"- {size.label} / {res.name()}: peak memory not measured: "
                             f"{res.peak_note}")
    if notes:
        lines += ["", "skipped / failed:", ""] + _grouped(notes)
    return "\n".join(lines)


def _grouped(notes):
    """Notes "- size / path: reason", those with the same path and reason
    merged into one line listing the sizes (numbers in the reason, such as
    a memory limit, aside)."""
    groups = {}
    for note in notes:
        where, why = note[2:].split(": ", 1)
        size, path = where.split(" / ", 1)
        path = re.sub(r" \(limit [^)]*\)", "", path)
        key = (path, re.sub(r"[0-9.]+ ?[kMGT]?B\b", "…", why))
        groups.setdefault(key, []).append((size, why))
    out = []
    for (path, _), items in groups.items():
        sizes_ = ", ".join(s for s, _ in items)
        out.append(f"- {sizes_} / {path}: {items[0][1]}")
    return out


def describe(family):
    return {
        "mps": "x_k[b,p] (128x2), A_1[p,r], A_k[r,p,r'] (DxpxD), A_N[r,p,c] (c=4) -> [b,c]; "
               "peers `+oe(path)` run einvjp's path",
        "mps-sweep": "the same MPS with D=16; einvjp and torch autograd over opt_einsum both get "
                     "the sweep path env·A_k, then ·x_k",
        "tt": "x[b, i_1..i_d] (b=64) times cores G_k[r, i_k, j_k, r'] -> y[b, j_1..j_d]",
        "peps": "16 site tensors T[u,l,r,d,p] (bond D, p=2), each with a vector v[p] -> scalar",
        "ttn": "16 leaves x_k[b,p] (b=128, p=4), 15 nodes T[left,right,parent] -> [b,c] (c=4)",
    }[family]


def scaling_table(all_results, family):
    """VJP/forward and time per site vs N for the einvjp paths, over the
    family's longest series (bond 16 in the full run)."""
    counts = {}
    for size, _ in all_results:
        if size.family == family:
            counts[size.series] = counts.get(size.series, 0) + 1
    if not counts:
        return ""
    series = max(counts, key=counts.get)
    rows = [(size, results) for size, results in all_results
            if size.family == family and size.series == series]
    if not rows:
        return ""
    libs = ["numpy", "torch", "jax"]
    head = ["N", "plan s", "path Mflop/site"]
    for lib in libs:
        head += [f"{lib} fwd ms", f"{lib} fwd+VJP ms", f"{lib} ratio", f"{lib} µs/site"]
    lines = [f"#### {family}, {series}: einvjp's (fwd+VJP)/fwd and fwd+VJP time per site vs N",
             "", "plan s: einvjp's first `plan` of the equation (path search; cached after). "
             "path Mflop/site: opt_einsum's flop estimate of the path einvjp runs, per site. "
             "✗: ratio above 3.", "", *harness.table_head(head)]
    for size, results in rows:
        cells = [str(size.x), f"{size.plan_s:.2g}", f"{size.flops / size.x / 1e6:.3g}"]
        for lib in libs:
            r = next((r for r in results if r.einvjp and r.limit is None and r.lib == lib), None)
            if r is None or r.vjp is None or r.skip:
                cells += ["—"] * 4
                continue
            ratio = r.ratio()
            cells += [_ms(r.fwd), _ms(r.vjp), f"{ratio:.2f}" + ("" if ratio <= 3 else " ✗"),
                      f"{r.vjp / size.x * 1e6:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Profile: where einvjp's forward+VJP spends its time on the largest MPS


def profile_report(all_results):
    """cProfile of einvjp.vjp (NumPy) and torch.profiler of the einvjp
    torch forward+VJP on the largest sweep MPS (else the largest MPS)."""
    import cProfile
    import pstats
    cands = [s for s, _ in all_results if s.family == "mps-sweep"] or \
        [s for s, _ in all_results if s.family == "mps"]
    if not cands:
        return ""
    size = max(cands, key=lambda s: (s.x, -len(s.series)))
    rng = np.random.default_rng(0)
    ops = [np.ascontiguousarray(a, dtype=DTYPE) for a in size.make(rng)]
    ct = rng.standard_normal(size.out_shape()).astype(DTYPE)
    _, vjp, _ = b_einvjp_numpy(size, ops, ct, {})
    vjp()
    calls = 5
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        vjp()
    prof.disable()
    st = pstats.Stats(prof)
    total = st.total_tt / calls
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:8]
    lines = [f"#### Profile: einvjp.vjp on NumPy, MPS {size.label} ({size.family}), "
             f"cProfile over {calls} calls", "",
             f"total {total * 1e3:.3g} ms per call under the profiler", "",
             *harness.table_head(["function (own time)", "calls per vjp", "own ms per vjp",
                                  "share", "cumulative ms per vjp"])]
    for (file, line, fn), (_cc, nc, tt, ct_, _callers) in rows:
        root = os.path.dirname(harness.HERE)
        short_file = os.path.relpath(file, root) if file.startswith(root) else \
            os.path.basename(file)
        where = f"{short_file}:{line} {fn}"
        lines.append(f"| `{where}` | {nc / calls:.0f} | {tt / calls * 1e3:.3g} | "
                     f"{tt / st.total_tt:.0%} | {ct_ / calls * 1e3:.3g} |")
    fwd, _, _ = b_einvjp_numpy(size, ops, ct, {})
    t_f, t_v = _best(fwd), _best(vjp)
    lines += ["", f"Best of 5: fwd+VJP {t_v * 1e3:.3g} ms = {t_v / t_f:.2f}x the forward "
              f"({t_f * 1e3:.3g} ms)."]
    # torch: the backward's own ops
    try:
        from torch.profiler import ProfilerActivity, profile
        _, tvjp, _ = b_einvjp_torch(size, ops, ct, {})
        tvjp()
        with profile(activities=[ProfilerActivity.CPU]) as tp:
            for _ in range(calls):
                tvjp()
        ka = sorted(tp.key_averages(), key=lambda e: -e.self_cpu_time_total)[:8]
        tot = sum(e.self_cpu_time_total for e in tp.key_averages())
        lines += ["", f"#### Profile: einvjp on torch (`einsum` + `.backward`), same MPS, "
                  f"torch.profiler over {calls} calls", "",
                  *harness.table_head(["op (self CPU)", "calls per call", "self ms per call",
                                       "share"])]
        for e in ka:
            lines.append(f"| `{e.key}` | {e.count / calls:.0f} | "
                         f"{e.self_cpu_time_total / calls / 1e3:.3g} | "
                         f"{e.self_cpu_time_total / tot:.0%} |")
    except Exception as err:  # noqa: BLE001
        lines += ["", f"torch profile failed: {harness.short(err, 200)}"]
    return "\n".join(lines)


def _best(fn, n=5):
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


# --------------------------------------------------------------------------
# Plots


STYLE = {"einvjp-numpy": ("C0", "o"), "einvjp-torch": ("C1", "s"), "einvjp-jax": ("C2", "^"),
         "torch+oe(path)": ("C3", "v"), "jax+oe(path)": ("C4", "D"),
         "torch.einsum": ("C5", "x"), "jnp.einsum": ("C6", "+")}


def plot(all_results, folder):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fam_series = [s.series for s, _ in all_results if s.family == "mps"]
    longest = max(set(fam_series), key=fam_series.count) if fam_series else None

    def series(family, what):
        out = {}
        for size, results in all_results:
            if size.family != family or size.series != longest:
                continue
            for r in results:
                if r.limit is not None or r.skip or r.error:
                    continue
                v = what(r)
                if v is not None:
                    out.setdefault(r.path, []).append((size.x, v))
        return out

    files = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, what, title in ((axes[0], lambda r: r.fwd, "forward"),
                            (axes[1], lambda r: r.vjp, "forward + all-operand VJP")):
        for family, ls in (("mps", "-"), ("mps-sweep", "--")):
            for path, pts in series(family, what).items():
                color, marker = STYLE[path]
                xs, ys = zip(*pts)
                ax.plot(xs, [y * 1e3 for y in ys], ls, color=color, marker=marker,
                        label=f"{path}" + (" (sweep path)" if family == "mps-sweep" else ""))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(f"sites N (MPS classifier, {longest})")
        ax.set_ylabel("median ms")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    p = os.path.join(folder, "networks_time.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    files.append(p)

    fig, ax = plt.subplots(figsize=(7, 4.8))
    for family, ls in (("mps", "-"), ("mps-sweep", "--")):
        for path, pts in series(family, lambda r: r.peak).items():
            color, marker = STYLE[path]
            xs, ys = zip(*pts)
            ax.plot(xs, [y / 1e6 for y in ys], ls, color=color, marker=marker,
                    label=f"{path} [{PEAK_HOW[dict((n, lib) for n, lib, _, _ in PATHS)[path]]}]"
                    + (" (sweep path)" if family == "mps-sweep" else ""))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"sites N (MPS classifier, {longest})")
    ax.set_ylabel("peak MB of one forward+VJP")
    ax.set_title("peak memory of forward + all-operand VJP")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = os.path.join(folder, "networks_memory.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    files.append(p)
    return files


# --------------------------------------------------------------------------


def threads_note(args):
    if THREADS is None:
        return f"torch.set_num_threads({args.threads}); NumPy's BLAS and XLA as configured"
    return (f"{args.threads} thread(s) everywhere: torch.set_num_threads, "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
            + (", XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
               if args.threads == 1 else ""))


def header(args):
    vers = harness.versions(("torch", "jax", "jaxlib", "opt_einsum", "matplotlib"), blas=True)
    mode = "quick (tiny sizes, one call each: a smoke test)" if args.quick else \
        f"~{args.budget:g} s of interleaved repeats per cell, median"
    return "\n".join([
        f"- date: {harness.date_utc()}",
        f"- machine: {harness.cpu_name()}, {os.cpu_count()} cores; "
        f"load average at start {harness.loadavg()}",
        f"- versions: {', '.join(vers)}",
        f"- command: `{harness.command('bench/networks.py')}`",
        f"- float32; {threads_note(args)}; {mode}; call limit "
        f"{args.call_limit:g} s; default-path peers skipped when predicted beyond "
        f"{LIMITS['flops']:.0e} flops or {_bytes(LIMITS['bytes'])}",
    ])


INTRO = """\
    python bench/networks.py --memory-limit --profile --plot --write   # the run below, ~12 min
    python bench/networks.py --families mps-sweep --budget 1            # one family
    python bench/networks.py --quick                                    # smoke test, ~1 min

Forward and forward + all-operand VJP of four tensor networks, einvjp on
NumPy, torch and JAX against torch autograd and `jax.jit(jax.vjp)` over
`opt_einsum.contract` with einvjp's own path, and against `torch.einsum` /
`jnp.einsum` as users call them. What is timed is in the docstring of
`bench/networks.py`; in short: float32, output and gradients checked against
a float64 reference first, medians of interleaved repeats; "(fwd+VJP)/fwd" is
the forward+VJP time over the forward time (the cheap-gradient limit: a small
constant, ~3); peak MB is measured differently per library (how: NumPy
`tracemalloc` peak during one call; torch the profiler's CPU-allocator events,
their running sum's peak; JAX XLA's planned temp + output bytes of the jitted
forward+VJP); "fwd+VJP / einvjp same lib" is the peer's forward+VJP time over
einvjp's on the same library."""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default=",".join(FAMILIES),
                    help="comma-separated: " + ",".join(FAMILIES))
    ap.add_argument("--budget", type=float, default=0.3,
                    help="seconds of timed repeats per cell (fwd and fwd+VJP each)")
    ap.add_argument("--call-limit", type=float, default=4.0,
                    help="a path whose one call takes longer is shown as — and skipped at "
                    "larger sizes of the series")
    ap.add_argument("--max-flops", type=float, default=3e10,
                    help="skip a default-path peer predicted above this many flops")
    ap.add_argument("--max-bytes", type=float, default=4e9,
                    help="skip a default-path peer whose largest intermediate is predicted "
                    "above this many bytes")
    ap.add_argument("--memory-limit", nargs="?", const="peak/10", default=None,
                    help="add einvjp rows with memory_limit=<bytes>: peak/K (default peak/10) "
                    "or bytes (64M, 1e8)")
    ap.add_argument("--limit-min-peak", type=float, default=8e6,
                    help="memory_limit rows only where the unlimited peak is at least this "
                         "many bytes")
    ap.add_argument("--limit-families", default="peps,tt,ttn",
                    help="the families that get --memory-limit rows (default peps,tt,ttn: "
                         "the slice finder plans an MPS slowly and poorly)")
    ap.add_argument("--profile", action="store_true",
                    help="profile einvjp's forward+VJP on the largest MPS")
    ap.add_argument("--plot", action="store_true",
                    help="write bench/networks_time.png and bench/networks_memory.png")
    ap.add_argument("--write", action="store_true",
                    help="write the tables to bench/README.md (## Tensor networks)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one call: smoke test")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of every library (torch.set_num_threads, OpenBLAS, XLA's "
                    "Eigen pool; default 1: on this shared 2-core machine another process "
                    "often holds a core, and a 2-thread parallel region then waits ~10 ms "
                    "per op for a time slice)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    args = ap.parse_args(argv)
    LIMITS["flops"], LIMITS["bytes"] = args.max_flops, args.max_bytes
    if args.memory_limit:
        memory_limit_bytes(args.memory_limit, 1)  # reject a bad spec before the run

    fams = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in fams:
        if f not in FAMILIES:
            ap.error(f"unknown family {f!r} (choose from {', '.join(FAMILIES)})")

    import torch
    torch.set_num_threads(args.threads)
    import jax  # noqa: F401  (imported before timing starts)

    t_start = time.perf_counter()
    head = header(args)
    print(head, flush=True)
    all_sizes = sizes(args.quick)
    all_results, slow = [], {}
    for fam in fams:
        for size in all_sizes[fam]:
            all_results.append((size, run_size(size, args, slow)))
    load_end = harness.loadavg()
    tables = [family_table(f, all_results) for f in fams]
    scaling = [t for t in (scaling_table(all_results, "mps"),
                           scaling_table(all_results, "mps-sweep")) if t]
    prof = profile_report(all_results) if args.profile else ""
    total = time.perf_counter() - t_start
    tail = f"- load average at end {load_end}; whole run {total / 60:.1f} min"
    body = "\n\n".join(x for x in ["### VJP / forward vs N (MPS)", *scaling, prof, *tables] if x)
    print("\n" + body + "\n\n" + tail, flush=True)

    images = []
    if args.plot:
        images = plot(all_results, harness.HERE)
        print("wrote " + ", ".join(os.path.relpath(p) for p in images))
    if args.write:
        img_md = "\n".join(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in images)
        text = "\n\n".join(x for x in [head + "\n" + tail, img_md, body] if x)
        section = "## Tensor networks\n\n" + INTRO + "\n\n" + START + "\n" + text + "\n" + END
        write_networks(section)
        print(f"wrote {os.path.relpath(harness.README)}")
    return 0


def write_networks(section):
    """Replace the '## Tensor networks' section of bench/README.md (up to
    the next '## ' heading or the end), or append it."""
    with open(harness.README) as f:
        old = f.read()
    pat = re.compile(r"^## Tensor networks\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(old):
        m = pat.search(old)
        kept = old[m.start():m.end()]
        # keep what follows the generated part (hand-written notes) in place
        after = kept.split(END, 1)[1] if END in kept else "\n"
        new = old[:m.start()] + section + after + old[m.end():]
    else:
        new = old.rstrip() + "\n\n" + section + "\n"
    with open(harness.README, "w") as f:
        f.write(new)


if __name__ == "__main__":
    sys.exit(main())
