"""einvjp programs against the peers: forward + backward, in one run.

    python bench/programs.py [--repeats N] [--budget S] [--quick] [--write]
                             [--threads 2,1] [--profile] [-v]

Two whole programs (not single einsums), float32, torch.set_num_threads(2):

  layernorm  the layer norm in index notation (examples/layer_norm.py),
             B=64, H=1024, eps=1e-5, with gamma and beta
  mlp        y = gelu(x W1 + b1) W2 + b2, x (64,512), W1 (512,2048),
             W2 (2048,512), a traced Python function over einvjp.einsum /
             einvjp.gelu; gelu is the exact (erf) one, as torch's default
             F.gelu(approximate='none') and jax.nn.gelu(approximate=False)

Paths of one workload (all measured in the same process, interleaved):

  einvjp-torch  prog(**inputs) on torch tensors (requires_grad) + .backward(ct)
  torch         the same math in torch ops + autograd (the eager composite)
  F.*           torch.nn.functional.layer_norm / F.linear (a reference line)
  *-compiled    einvjp-torch and torch under torch.compile(fullgraph=True)
                (Inductor): the program, and the composite in torch ops
  einvjp-numpy  prog.vjp(ct, **inputs) on NumPy arrays (gradients only;
                for information)
  einvjp-jax    jax.jit(jax.value_and_grad(sum(prog(...) * ct)))
  jax           the same over jnp
  ratios        einvjp-torch / torch (target <= 1.0), einvjp-compiled /
                torch-compiled (target <= 1.2), einvjp-jax / jax

Every path runs once (planning, jit), then once more with its output and
gradients checked against a float64 torch reference (so a wrong answer is never
timed), then warm-up, then the median of N timed repeats (timeit-style:
time.perf_counter around `number` back-to-back calls so a repeat lasts >= 5 ms,
gc off), the repeats of one library's paths of a workload interleaved
round-robin so that load from other processes falls on every path alike.  One
library at a time (torch, then einvjp-numpy, then jax, each run, checked,
warmed and timed before the next starts): a torch call right after a jax call
runs ~25% slower while XLA's thread pool still holds a core, and in one
round-robin of all paths the path after jax paid that every round.  A path
that raises
prints its error in its cell and the run goes on.

`--threads 2,1` re-runs the torch columns at 1 thread after the full table at 2
(a control: on a loaded 2-core machine every 2-thread kernel may wait for a
descheduled OpenMP worker).  `--profile` then times the einvjp-torch layer norm
per IR node and runs cProfile and torch.profiler over it (at the last thread
count given): where does einvjp lose time?  `--write` puts the table into
bench/README.md between the programs markers.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

import numpy as np

import harness
from harness import README, close, to_numpy

START, END = "<!-- programs:start -->", "<!-- programs:end -->"
DTYPE = np.float32
TORCH_THREADS = 2
EPS = 1e-5
TOL = 2e-4   # relative to max |reference|


def layer_norm_program():
    """The layer norm in index notation: examples/layer_norm.py's
    PROGRAM (examples/ is not a package: loaded by path)."""
    import importlib.util
    path = os.path.join(os.path.dirname(harness.HERE), "examples", "layer_norm.py")
    spec = importlib.util.spec_from_file_location("einvjp_example_layer_norm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PROGRAM


def mlp_fn(x, w1, b1, w2, b2):
    """The MLP block, traced by einvjp.compile."""
    import einvjp
    h = einvjp.gelu(einvjp.einsum("bi,io->bo", x, w1) + b1)
    return einvjp.einsum("bo,oj->bj", h, w2) + b2


# --------------------------------------------------------------------------
# Workloads: inputs (name -> float32 array; scalars as Python numbers), the
# cotangent, the torch and jnp formulations of the same math.


def sizes(quick):
    if quick:
        return {"layernorm": dict(B=8, H=32), "mlp": dict(B=8, D=16, F=64)}
    return {"layernorm": dict(B=64, H=1024), "mlp": dict(B=64, D=512, F=2048)}


def make_layernorm(B, H, seed=0):
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.standard_normal((B, H)).astype(DTYPE) * 2 + 0.5,
              "gamma": (1 + 0.1 * rng.standard_normal(H)).astype(DTYPE),
              "beta": (0.1 * rng.standard_normal(H)).astype(DTYPE)}
    ct = rng.standard_normal((B, H)).astype(DTYPE)
    return inputs, {"eps": EPS}, ct


def make_mlp(B, D, F, seed=1):
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.standard_normal((B, D)).astype(DTYPE),
              "w1": (rng.standard_normal((D, F)) / np.sqrt(D)).astype(DTYPE),
              "b1": (0.1 * rng.standard_normal(F)).astype(DTYPE),
              "w2": (rng.standard_normal((F, D)) / np.sqrt(F)).astype(DTYPE),
              "b2": (0.1 * rng.standard_normal(D)).astype(DTYPE)}
    ct = rng.standard_normal((B, D)).astype(DTYPE)
    return inputs, {}, ct


def torch_layernorm(x, gamma, beta, eps=EPS):
    """The layer norm as torch ops (the eager composite)."""
    m = x.mean(-1, keepdim=True)
    mu = x - m
    v = (mu * mu).mean(-1, keepdim=True)
    return mu / (v + eps).sqrt() * gamma + beta


def torch_mlp(x, w1, b1, w2, b2):
    import torch
    import torch.nn.functional as F
    return torch.matmul(F.gelu(torch.matmul(x, w1) + b1, approximate="none"), w2) + b2


def torch_F_layernorm(x, gamma, beta, eps=EPS):
    import torch.nn.functional as F
    return F.layer_norm(x, (x.shape[-1],), gamma, beta, eps)


def torch_F_mlp(x, w1, b1, w2, b2):
    import torch.nn.functional as F
    return F.linear(F.gelu(F.linear(x, w1.T, b1), approximate="none"), w2.T, b2)


def jnp_layernorm(x, gamma, beta, eps=EPS):
    import jax.numpy as jnp
    m = jnp.mean(x, -1, keepdims=True)
    mu = x - m
    v = jnp.mean(mu * mu, -1, keepdims=True)
    return mu / jnp.sqrt(v + eps) * gamma + beta


def jnp_mlp(x, w1, b1, w2, b2):
    import jax
    return jax.nn.gelu(x @ w1 + b1, approximate=False) @ w2 + b2


def workloads(quick):
    import einvjp
    sz = sizes(quick)
    ln = dict(title=f"layernorm (B={sz['layernorm']['B']}, H={sz['layernorm']['H']})",
              prog=layer_norm_program(), data=make_layernorm(**sz["layernorm"]),
              torch=torch_layernorm, ref=("F.layer_norm", torch_F_layernorm),
              jnp=jnp_layernorm, ref64=torch_layernorm)
    m = sz["mlp"]
    mlp = dict(title=f"mlp (x {m['B']}x{m['D']}, W1 {m['D']}x{m['F']}, W2 {m['F']}x{m['D']}, "
                     "erf gelu)",
               prog=einvjp.compile(mlp_fn), data=make_mlp(**m),
               torch=torch_mlp, ref=("F.linear", torch_F_mlp), jnp=jnp_mlp, ref64=torch_mlp)
    return {"layernorm": ln, "mlp": mlp}


# --------------------------------------------------------------------------
# Reference and checks


def reference(w):
    """Output and gradients (by input name) in float64, by torch autograd."""
    import torch
    inputs, scalars, ct = w["data"]
    leaves = {n: torch.tensor(np.asarray(a, np.float64), requires_grad=True)
              for n, a in inputs.items()}
    y = w["ref64"](**leaves, **scalars)
    y.backward(torch.tensor(np.asarray(ct, np.float64)))
    return y.detach().numpy(), {n: t.grad.numpy() for n, t in leaves.items()}


def check(result, ref):
    """result = (output or None, {name: gradient}); -> the worst error."""
    y, grads = result
    ref_y, ref_grads = ref
    errs = [] if y is None else [close(y, ref_y, "output", TOL)]
    if set(grads) != set(ref_grads):
        raise AssertionError(f"gradients for {sorted(grads)}, expected {sorted(ref_grads)}")
    errs += [close(grads[n], ref_grads[n], f"d/d{n}", TOL) for n in ref_grads]
    return max(errs)


def check_pair(a, b, names):
    """einvjp's gradients against the peer's (both float32), directly."""
    for n in names:
        close(a[1][n], to_numpy(b[1][n]), f"einvjp vs peer d/d{n}", TOL)


# --------------------------------------------------------------------------
# Paths: each builds a zero-argument callable doing forward + backward and
# returning (output or None, {name: gradient}).


def _path_torch_fn(fn):
    def path(w):
        import torch
        inputs, scalars, ct = w["data"]
        leaves = {n: torch.tensor(a, requires_grad=True) for n, a in inputs.items()}
        ct_t = torch.from_numpy(ct)

        def run():
            for t in leaves.values():
                t.grad = None
            y = fn(**leaves, **scalars)
            y.backward(ct_t)
            return y, {n: t.grad for n, t in leaves.items()}
        return run
    return path


def path_einvjp_torch(w):
    return _path_torch_fn(w["prog"])(w)


def path_torch(w):
    return _path_torch_fn(w["torch"])(w)


def path_torch_F(w):
    return _path_torch_fn(w["ref"][1])(w)


def _compiled(fn):
    """`fn` under torch.compile(fullgraph=True) (Inductor), called with keywords."""
    import torch
    return torch.compile(lambda **kw: fn(**kw), fullgraph=True)


def path_einvjp_torch_compiled(w):
    return _path_torch_fn(_compiled(w["prog"]))(w)


def path_torch_compiled(w):
    return _path_torch_fn(_compiled(w["torch"]))(w)


def path_einvjp_numpy(w):
    inputs, scalars, ct = w["data"]
    prog = w["prog"]

    def run():
        return None, prog.vjp(ct, **inputs, **scalars)   # gradients only
    return run


def _path_jax_fn(make):
    def path(w):
        import jax
        import jax.numpy as jnp
        inputs, scalars, ct = w["data"]
        names = list(inputs)
        fn = make(w)
        ct_j = jnp.asarray(ct)
        arrays = [jnp.asarray(inputs[n]) for n in names]

        def loss(*args):
            y = fn(**dict(zip(names, args)), **scalars)
            return jnp.sum(y * ct_j), y

        vg = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(names))), has_aux=True))

        def run():
            (_, y), grads = vg(*arrays)
            jax.block_until_ready((y, grads))
            return y, dict(zip(names, grads))
        return run
    return path


path_einvjp_jax = _path_jax_fn(lambda w: w["prog"])
path_jax = _path_jax_fn(lambda w: w["jnp"])

COLUMNS = [  # (column, path, peer of the direct gradient check)
    ("einvjp-torch", path_einvjp_torch, "torch"),
    ("torch", path_torch, None),
    ("F.ref", path_torch_F, None),
    ("einvjp-compiled", path_einvjp_torch_compiled, "torch"),
    ("torch-compiled", path_torch_compiled, None),
    ("einvjp-numpy", path_einvjp_numpy, "torch"),
    ("einvjp-jax", path_einvjp_jax, "jax"),
    ("jax", path_jax, None),
]
TORCH_COLUMNS = ("einvjp-torch", "torch", "F.ref", "einvjp-compiled", "torch-compiled")
RATIOS = [("einvjp-torch", "torch", 1.0), ("einvjp-compiled", "torch-compiled", 1.2),
          ("einvjp-jax", "jax", None)]


# --------------------------------------------------------------------------
# Timing


def _repeats(args):
    """Repeats per cell: `--repeats`, or ~`--budget` seconds, at least 15."""
    def repeats_for(number, est):
        return args.repeats if args.repeats else max(
            15, min(int(args.budget / (number * est)), 2000))
    return repeats_for


class Cell(harness.Cell):
    ERR_WIDTH = 30


def run_workload(w, args, columns=None):
    """The cells of one workload.  One library at a time (torch, then NumPy,
    then jax): its paths run, are checked, warmed up and timed interleaved
    before the next library's paths first run.  A torch call right after a
    jax one measured ~25% slower on two cores (XLA's thread pool still holds
    a core), and OpenBLAS's threads spin after a NumPy call: timed in one
    round-robin with them, a torch path pays for its neighbours."""
    columns = columns or COLUMNS
    ref = reference(w)
    cells, results = {}, {}
    for library in ("torch", "numpy", "jax"):
        group = [c for c in columns if _library(c[0]) == library]
        ready = []
        for col, path, _ in group:
            try:
                fn = path(w)
                result, first = harness.first_call(fn)   # after planning, jit
                err = check(result, ref)              # checked before any timing
                results[col] = result
                cells[col] = Cell(first, repeats=1, number=1, err=err)
                if not args.quick:
                    ready.append((col, fn, harness.warm(fn, first, args.budget, 5, 0.3)))
            except Exception as e:  # noqa: BLE001 - a failing path is a result
                cells[col] = harness.error_cell(e, args.verbose, Cell)
        # einvjp's gradients against its peer's, directly (float32 vs float32).
        for col, _, peer in group:
            if peer and col in results and peer in results:
                try:
                    check_pair(results[col], results[peer], list(ref[1]))
                except AssertionError as e:
                    cells[col] = Cell(error=f"AssertionError: {e}")
                    ready = [r for r in ready if r[0] != col]
        if ready:
            timed = harness.measure([fn for _, fn, _ in ready], [est for _, _, est in ready],
                                    _repeats(args))
            for (col, _, _), (sec, reps, number, best) in zip(ready, timed):
                cells[col] = Cell(sec, repeats=reps, number=number, err=cells[col].err,
                                  best=best)
    return cells


def _library(col):
    return "numpy" if col == "einvjp-numpy" else "jax" if "jax" in col else "torch"


# --------------------------------------------------------------------------
# Report


HEADS = {"einvjp-torch": "einvjp-torch", "torch": "torch (eager)",
         "F.ref": "F.layer_norm / F.linear", "einvjp-compiled": "einvjp-torch, torch.compile",
         "torch-compiled": "torch, torch.compile", "einvjp-numpy": "einvjp-numpy",
         "einvjp-jax": "einvjp-jax", "jax": "jax"}


def table(ws, results, columns=None, title=None):
    columns = columns or COLUMNS
    cols = [c for c, _, _ in columns]
    ratios_ = [r for r in RATIOS if r[0] in cols and r[1] in cols]
    lines = [(title or "median ms per forward+backward (float32; einvjp-numpy: gradients "
              "only)") + "; in parentheses: the fastest repeat, and the ratio of the fastest",
             "",
             *harness.table_head(["workload", *(HEADS[c] for c in cols),
                                  *(f"{a} / {b}" for a, b, _ in ratios_)])]
    notes = []
    for name, w in ws.items():
        row = results[name]
        ratios = []
        for num, den, target in ratios_:
            a, b = row[num], row[den]
            if a.error is None and b.error is None and a.repeats > 1:
                r = a.seconds / b.seconds
                mark = "" if target is None else (" ✓" if r <= target else f" ✗ (> {target})")
                ratios.append(f"{r:.2f}{mark} ({a.best / b.best:.2f})")
            else:
                ratios.append("—")
        lines.append(f"| {w['title']} | " + " | ".join(row[c].text() for c in cols)
                     + " | " + " | ".join(ratios) + " |")
        for c in cols:
            if row[c].error is not None:
                notes.append(f"- {name} / {c}: {harness.short(row[c].error, 300)}")
    reps = sorted({row[c].repeats for row in results.values() for c in cols
                   if row[c].error is None})
    lines += ["", f"timed repeats per cell: {', '.join(map(str, reps))}; worst relative "
              "error of any checked call vs the float64 reference: "
              f"{max((row[c].err or 0) for row in results.values() for c in cols):.1e}"]
    if notes:
        lines += ["", "errors:", ""] + notes
    return "\n".join(lines)


def header(args, load_start, load_end, threads):
    vers = harness.versions(("torch", "jax", "jaxlib", "opt_einsum"),
                            dirty="uncommitted changes in einvjp/ backends/")
    mode = ("quick (tiny sizes, 1 call each: a smoke test, not a measurement)" if args.quick
            else f"{args.repeats} repeats" if args.repeats
            else f"repeats for ~{args.budget:g} s per cell (>= 15)")
    return "\n".join([
        f"- date: {harness.date_utc()}",
        f"- machine: {harness.cpu_name()}, {os.cpu_count()} cores; "
        f"load average {load_start} at start, "
        f"{load_end} at end (other processes share the machine)",
        f"- versions: {', '.join(vers)}",
        f"- command: `{harness.command('bench/programs.py')}`",
        f"- float32; torch.set_num_threads({', then '.join(map(str, threads))}); {mode}; "
        "median of timed "
        "repeats after warm-up, one library's paths of a workload interleaved (torch, "
        "then numpy, then jax)",
    ])


DESCRIPTION = """\
## Programs: layer norm and an MLP block, forward + backward

`python bench/programs.py [--repeats N] [--budget S] [--quick] [--write] [--threads 2,1] [--profile]`
times whole einvjp programs (not single einsums) against the peers, in one run:

| workload | einvjp program | torch (eager composite) | reference line | jax |
|---|---|---|---|---|
| layernorm, B=64, H=1024, eps=1e-5 | the layer norm in index notation (examples/layer_norm.py), `einvjp.compile(text)` | `mean`, `-`, `mean(mu*mu)`, `sqrt`, `/`, `*gamma`, `+beta` with autograd | `F.layer_norm` | the same math in `jnp` |
| mlp, x 64x512, W1 512x2048, W2 2048x512, biases | `gelu(einsum("bi,io->bo", x, w1) + b1)` then `einsum("bo,oj->bj", h, w2) + b2`, a traced function | `F.gelu(x @ w1 + b1, approximate="none") @ w2 + b2` | `F.linear` (addmm) | `jax.nn.gelu(..., approximate=False)` |

gelu is the exact (erf) gelu on every path (einvjp's `gelu` is `0.5 x (1 + erf(x/√2))`).
One cell is one forward + backward for a fixed random cotangent `ct`:
einvjp-torch calls the program on `requires_grad` tensors and `.backward(ct)`
(grads reset to None each call), like the torch columns; einvjp-numpy is
`prog.vjp(ct, **inputs)` (gradients only, for information); the jax columns
are `jax.jit(jax.value_and_grad(lambda *a: sum(f(*a) * ct)))` with
`block_until_ready`. Each path runs once, then once more with its output and
gradients checked against a float64 torch reference (and einvjp's gradients
against the peer's float32 ones): a wrong answer is never timed. Then warm-up
and the median of the timed repeats, the repeats of one library's paths of a
workload interleaved round-robin, the libraries one after another (a torch call
right after a jax call measured ~25% slower on two cores while XLA's thread
pool still holds one; in one round-robin of every path, einvjp-torch came
right after jax every round). A cell shows the median (the fastest repeat in
parentheses); a ratio is the ratio of medians (of the fastest repeats in
parentheses). Ratio targets: einvjp-torch / torch ≤ 1.0; einvjp-torch /
torch under `torch.compile(fullgraph=True)` (Inductor; the program, and the
eager composite's torch ops) ≤ 1.2; einvjp-jax / jax is reported.

With `--threads 2,1` the torch columns run a second time at 1 thread, in the
same process. On a 2-core machine loaded by other processes a 2-thread torch
kernel has to wait at its OpenMP join for a worker the scheduler has taken off
the core: a 64x1024 multiply measured 17–30 µs with 1 thread, and with 2
threads 20 µs in the best case but a 16 ms median. The 2-thread columns then
measure those stalls (how many parallel kernels a path launches, and how long
its Python gaps between them let the worker go idle), and their ratios swing
from run to run; the 1-thread table is the steadier measure of what einvjp
itself costs.
"""


# --------------------------------------------------------------------------
# Profile: where the einvjp-torch layer norm spends its time


def profile(ws, calls=300):
    """Where the einvjp-torch layer norm spends its time: per IR node
    (einvjp.program.evaluate_node wrapped in this process only), cProfile,
    and the aten ops torch.profiler sees, against the eager composite."""
    import statistics
    import torch
    w = ws["layernorm"]
    fn_e, fn_t = path_einvjp_torch(w), path_torch(w)
    for _ in range(20):
        fn_e(), fn_t()

    print(f"\n## per IR node: einvjp-torch layer norm, {calls} forward+backward calls, "
          f"{torch.get_num_threads()} torch thread(s)\n")
    try:
        import einvjp.program as ep
        orig, stats = ep.evaluate_node, {}

        def timed(node, args, *rest):
            t = time.perf_counter()
            r = orig(node, args, *rest)
            dt = time.perf_counter() - t
            k = id(node)
            if k not in stats:
                prim = getattr(getattr(node, "prim", None), "name", "")
                ins = ", ".join(str(tuple(a.shape)) if hasattr(a, "shape") else "number"
                                for a in args)
                stats[k] = [f"{type(node).__name__} {prim}".strip(), ins,
                            str(tuple(getattr(r, "shape", ()))), []]
            stats[k][3].append(dt)
            return r
        ep.evaluate_node = timed
        try:
            total = []
            for _ in range(calls):
                t = time.perf_counter()
                fn_e()
                total.append(time.perf_counter() - t)
        finally:
            ep.evaluate_node = orig
        print("| node | inputs | output | evaluations per call | min µs | median µs |")
        print("|---|---|---|---:|---:|---:|")
        mins = 0.0
        for kind, ins, out, ts in stats.values():
            mins += min(ts) * len(ts) / calls
            print(f"| {kind} | {ins} | {out} | {len(ts) / calls:.0f} | {min(ts) * 1e6:.1f} | "
                  f"{statistics.median(ts) * 1e6:.1f} |")
        print(f"\nwhole call: min {min(total) * 1e6:.0f} µs, median "
              f"{statistics.median(total) * 1e6:.0f} µs; sum over nodes of min × evaluations: "
              f"{mins * 1e6:.0f} µs (the rest is outside evaluate_node: autograd engine, "
              "Function.apply, setup)")
    except Exception as e:  # noqa: BLE001 - einvjp internals may move
        print(f"(per-node timing unavailable: {type(e).__name__}: {e})")

    pr = cProfile.Profile()
    pr.enable()
    for _ in range(calls):
        fn_e()
    pr.disable()
    print(f"\n## cProfile: einvjp-torch layer norm, {calls} calls, by own time (top 30)\n")
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(30)
    print(s.getvalue())
    print("## cProfile by cumulative time (top 30)\n")
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(30)
    print(s.getvalue())

    from torch.profiler import ProfilerActivity, profile as tprofile
    n = 20
    views = {"aten::view", "aten::as_strided", "aten::reshape", "aten::_reshape_alias",
             "aten::permute", "aten::transpose", "aten::expand", "aten::empty",
             "aten::empty_strided", "aten::detach", "aten::alias", "aten::t",
             "aten::unsqueeze", "aten::squeeze", "aten::_unsafe_view", "aten::resolve_conj",
             "aten::resolve_neg", "aten::result_type", "aten::promote_types", "aten::to",
             "aten::lift_fresh", "aten::matmul", "aten::empty_like"}
    for label, fn in (("einvjp-torch", fn_e), ("torch eager", fn_t)):
        with tprofile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(n):
                fn()
        rows = [e for e in prof.key_averages(group_by_input_shape=True)
                if e.key.startswith("aten::") and e.key not in views]
        rows.sort(key=lambda e: (e.key, str(e.input_shapes)))
        B, H = w["data"][0]["x"].shape
        big = sum(e.count for e in rows
                  if any(isinstance(sh, list) and len(sh) == 2 and sh[0] * sh[1] >= B * H
                         for sh in e.input_shapes)) / n
        print(f"\n## aten kernels per call: {label} ({big:.0f} touch a full {B}x{H} "
              "operand)\n")
        for e in rows:
            print(f"  {e.key:24s} x{e.count / n:4.1f}  {e.input_shapes}")


# --------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed repeats per cell (default: ~--budget seconds per cell, >= 15)")
    ap.add_argument("--budget", type=float, default=3.0, help="seconds per cell")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 call: smoke test")
    ap.add_argument("--write", action="store_true", help="write the table to bench/README.md")
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile + torch.profiler the einvjp-torch layer norm")
    ap.add_argument("--threads", default=str(TORCH_THREADS),
                    help="torch thread counts, comma-separated: the first for the full table, "
                         "the others re-run the torch columns only (e.g. 2,1)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    args = ap.parse_args(argv)

    import torch
    threads = [int(t) for t in args.threads.split(",")]
    load_start = harness.loadavg()
    ws = workloads(args.quick)
    tables = []
    for k, n in enumerate(threads):
        torch.set_num_threads(n)
        columns = COLUMNS if k == 0 else [c for c in COLUMNS if c[0] in TORCH_COLUMNS]
        results = {}
        for name, w in ws.items():
            print(f"{name}, {n} torch thread(s) ...", file=sys.stderr, flush=True)
            results[name] = run_workload(w, args, columns)
        title = (f"torch.set_num_threads({n}): median ms per forward+backward (float32"
                 + ("; einvjp-numpy: gradients only)" if k == 0 else
                    "; the torch columns again, a control for thread oversubscription)"))
        tables.append(f"### {n} torch thread(s)\n\n" + table(ws, results, columns, title))
    torch.set_num_threads(threads[0])
    text = header(args, load_start, harness.loadavg(), threads) + "\n\n" + "\n\n".join(tables)
    print(text)
    if args.write:
        harness.write_section(START, END, DESCRIPTION + "\n" + text)
        print(f"\nwritten to {README}", file=sys.stderr)
    if args.profile:   # at the last thread count given (the least noisy under load: 1)
        torch.set_num_threads(threads[-1])
        profile(ws)


if __name__ == "__main__":
    main()
