"""einvjp benchmark: forward + backward against the peers, in one run.

    python bench/run.py [--backend numpy,torch,jax] [--workloads matmul,...]
                        [--repeats N] [--budget S] [--quick] [--write]

Every cell times one forward + backward: the forward output and the
gradients of *all* operands for a fixed random cotangent (for JAX: value and
gradient of sum(y * cotangent), the same VJP).  float32 everywhere.  Each
cell: a first call (jit, planning), a checked call (output and gradients
compared with a float64 torch reference, so a wrong answer is never timed),
warm-up, then the median of N timed repeats (timeit-style: time.perf_counter
around `number` calls, gc off).  N is chosen so a cell takes about
`--budget` seconds unless `--repeats` is given.  The repeats of the peers of
one workload are interleaved, so load from other processes hits them alike.  A path that raises prints its error in the cell and the run goes on.

Sections (peers measured in the same process, same run):
  numpy  einvjp.vjp on NumPy arrays | torch.einsum + .backward | jax.jit(
         jax.value_and_grad(jnp.einsum ...)) | HIPS autograd.numpy.einsum
         ratio = einvjp-numpy / torch-autograd, target <= 1.5 each
  torch  einvjp.einsum on torch tensors + .backward | torch.einsum + .backward
         ratio target <= 1.0 geo-mean, <= 1.25 each
  jax    jit(value_and_grad) over einvjp.einsum | same over jnp.einsum
         ratio target <= 1.0 geo-mean, <= 1.25 each

`--write` puts the tables into bench/README.md between the bench markers.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
DTYPE = np.float32
TORCH_THREADS = 2


# --------------------------------------------------------------------------
# Workloads


def _mps(sites, bond, phys, batch):
    """One many-operand einsum: a batch of product states x_k (batch, phys)
    contracted with an open-boundary MPS A_1 (phys, bond), A_k (bond, phys,
    bond), A_n (bond, phys) -> (batch,).  Operands interleaved x_1, A_1, ..."""
    from opt_einsum import get_symbol
    b = get_symbol(0)
    p = [get_symbol(1 + k) for k in range(sites)]
    r = [get_symbol(1 + sites + k) for k in range(sites - 1)]
    terms, shapes = [], []
    for k in range(sites):
        terms.append(b + p[k])
        shapes.append((batch, phys))
        if k == 0:
            terms.append(p[k] + r[k])
            shapes.append((phys, bond))
        elif k == sites - 1:
            terms.append(r[k - 1] + p[k])
            shapes.append((bond, phys))
        else:
            terms.append(r[k - 1] + p[k] + r[k])
            shapes.append((bond, phys, bond))
    return ",".join(terms) + "->" + b, shapes


def workloads(quick=False):
    """name -> (equation, operand shapes).  `quick`: tiny sizes for smoke tests."""
    if quick:
        mps_eq, mps_shapes = _mps(4, 3, 2, 5)
        return {
            "matmul": ("ik,kj->ij", [(8, 6), (6, 7)]),
            "attention": ("bhqd,bhkd->bhqk", [(2, 3, 5, 4), (2, 3, 6, 4)]),
            "bilinear": ("bi,oij,bj->bo", [(5, 4), (3, 4, 6), (5, 6)]),
            "tt-linear": ("bijk,aip,pjq,qkc->bac",
                          [(5, 2, 3, 4), (1, 2, 3), (3, 3, 2), (2, 4, 1)]),
            "trace": ("ii,ij->j", [(6, 6), (6, 5)]),
            "mps": (mps_eq, mps_shapes),
        }
    mps_eq, mps_shapes = _mps(12, 16, 4, 64)
    return {
        "matmul": ("ik,kj->ij", [(512, 512), (512, 512)]),
        "attention": ("bhqd,bhkd->bhqk", [(8, 8, 128, 64), (8, 8, 128, 64)]),
        "bilinear": ("bi,oij,bj->bo", [(128, 64), (32, 64, 64), (128, 64)]),
        "tt-linear": ("bijk,aip,pjq,qkc->bac",
                      [(64, 16, 16, 16), (1, 16, 8), (8, 16, 8), (8, 16, 1)]),
        "trace": ("ii,ij->j", [(512, 512), (512, 512)]),
        "mps": (mps_eq, mps_shapes),
    }


def make_inputs(name, eq, shapes, seed=0):
    """float32 operands and cotangent.  MPS cores are scaled so that the
    chain neither explodes nor vanishes (each site's transfer matrix has
    entries of variance 1/bond)."""
    rng = np.random.default_rng(seed)
    ops = []
    for k, s in enumerate(shapes):
        x = rng.standard_normal(s)
        if name == "mps" and k % 2 == 1:   # a core
            bond = max(d for d in s) if len(s) == 3 else s[0] * s[1] // min(s)
            phys = min(s)
            x /= math.sqrt(bond * phys)
        ops.append(x.astype(DTYPE))
    out_shape = _out_shape(eq, shapes)
    ct = rng.standard_normal(out_shape).astype(DTYPE)
    return ops, ct


def _out_shape(eq, shapes):
    ins, out = eq.split("->")
    size = {}
    for term, s in zip(ins.split(","), shapes):
        size.update(zip(term, s))
    return tuple(size[c] for c in out)


def _naive_cost(eq, shapes):
    """Iterations of an unoptimized np.einsum: the product of all label sizes."""
    ins, _ = eq.split("->")
    size = {}
    for term, s in zip(ins.split(","), shapes):
        size.update(zip(term, s))
    return math.prod(size.values())


# --------------------------------------------------------------------------
# Reference and checks


def reference(eq, ops, ct):
    """Output and gradients in float64, by torch autograd."""
    import torch
    leaves = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in ops]
    y = torch.einsum(eq, *leaves)
    y.backward(torch.tensor(np.asarray(ct, np.float64)))
    return y.detach().numpy(), [x.grad.numpy() for x in leaves]


def _close(got, want, what):
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape} != {want.shape}")
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
    err = float(np.max(np.abs(got - want))) / scale if want.size else 0.0
    if not err <= 2e-3:
        raise AssertionError(f"{what}: max error {err:.2e} of max |ref| (tolerance 2e-3)")


def check(result, ref):
    """`result` = (output or None, gradients); compare with the reference."""
    y, grads = result
    ref_y, ref_grads = ref
    if y is not None:
        _close(_np(y), ref_y, "output")
    if len(grads) != len(ref_grads):
        raise AssertionError(f"{len(grads)} gradients for {len(ref_grads)} operands")
    for k, (g, r) in enumerate(zip(grads, ref_grads)):
        if g is None:
            raise AssertionError(f"gradient {k} is None")
        _close(_np(g), r, f"gradient {k}")


def _np(x):
    if hasattr(x, "detach"):
        x = x.detach()
    return np.asarray(x)


# --------------------------------------------------------------------------
# Paths: each returns a zero-argument callable doing forward + backward and
# returning (output or None, gradients).  Setup (jit, device transfer) is
# done outside the callable.


def path_einvjp_numpy(eq, ops, ct):
    import einvjp

    def run():
        return None, einvjp.vjp(eq, ops, ct)   # einvjp.vjp does not return y
    return run


def path_torch(eq, ops, ct, fn=None):
    import torch
    einsum = fn or torch.einsum
    ct_t = torch.from_numpy(ct)

    def run():
        leaves = [torch.from_numpy(a).requires_grad_() for a in ops]  # fresh leaves
        y = einsum(eq, *leaves)
        y.backward(ct_t)
        return y, [x.grad for x in leaves]
    return run


def path_einvjp_torch(eq, ops, ct):
    import einvjp
    return path_torch(eq, ops, ct, fn=einvjp.einsum)


def path_jax(eq, ops, ct, fn=None):
    import jax
    import jax.numpy as jnp
    einsum = fn or jnp.einsum
    n = len(ops)

    def f(*args):
        y = einsum(eq, *args[:n])
        return jnp.sum(y * args[n]), y

    g = jax.jit(jax.value_and_grad(f, argnums=tuple(range(n)), has_aux=True))
    args = [jnp.asarray(a) for a in ops] + [jnp.asarray(ct)]

    def run():
        (_, y), grads = g(*args)
        jax.block_until_ready((y, grads))
        return y, grads
    return run


def path_einvjp_jax(eq, ops, ct):
    import einvjp
    return path_jax(eq, ops, ct, fn=einvjp.einsum)


def path_autograd(eq, ops, ct):
    import autograd
    import autograd.numpy as anp
    # HIPS autograd's einsum VJP calls np.einsum without `optimize`: a nested
    # loop over every label.  Do not start what cannot finish.
    shapes = [a.shape for a in ops]
    if _naive_cost(eq, shapes) > 5e8:
        raise NotImplementedError("unoptimized np.einsum over "
                                  f"{_naive_cost(eq, shapes):.1e} terms per VJP")
    n = len(ops)
    vjp_maker = autograd.make_vjp(lambda *a: anp.einsum(eq, *a), argnum=tuple(range(n)))

    def run():
        vjp, y = vjp_maker(*ops)
        return y, vjp(ct)
    return run


# The NumPy section uses y = None for einvjp (einvjp.vjp skips the final
# step's output); the peers all produce y and the gradients.
SECTIONS = {
    "numpy": {
        "title": "NumPy backend: einvjp.vjp vs the peers",
        "cols": [("einvjp-numpy", path_einvjp_numpy), ("torch autograd", path_torch),
                 ("jax jit(value_and_grad)", path_jax), ("HIPS autograd", path_autograd)],
        "ratio": ("einvjp-numpy", "torch autograd"),
        "target": (1.5, None),
    },
    "torch": {
        "title": "Torch backend: einvjp.einsum + .backward vs torch.einsum + .backward",
        "cols": [("einvjp-torch", path_einvjp_torch), ("torch.einsum", path_torch)],
        "ratio": ("einvjp-torch", "torch.einsum"),
        "target": (1.25, 1.0),
    },
    "jax": {
        "title": "JAX backend: jit(value_and_grad) over einvjp.einsum vs over jnp.einsum",
        "cols": [("einvjp-jax", path_einvjp_jax), ("jnp.einsum", path_jax)],
        "ratio": ("einvjp-jax", "jnp.einsum"),
        "target": (1.25, 1.0),
    },
}


# --------------------------------------------------------------------------
# Timing


def _warm(fn, first, budget):
    """Warm-up calls (the check call, `first` seconds, counts as one; a slow
    path gets no more) -> the fastest call seen, an estimate of one call."""
    warm = [first]
    if first < budget / 4:
        t_start = time.perf_counter()
        while len(warm) < 3 or (time.perf_counter() - t_start < 0.2 and len(warm) < 50):
            t = time.perf_counter()
            fn()
            warm.append(time.perf_counter() - t)
    return max(min(warm), 1e-7)


def measure(fns, estimates, repeats=None, budget=1.5):
    """Median seconds per call of each function, timed *interleaved*: the
    repeats of every peer are spread evenly over the same stretch of time, so
    a burst of load from other processes hits all of them alike.

    A repeat times `number` back-to-back calls (number so that a repeat lasts
    >= ~5 ms, timeit-style) with time.perf_counter, gc off.  Unless `repeats`
    is given, each function gets enough repeats for ~`budget` seconds (at
    least 5; at least 3 for calls slower than budget/4)."""
    plan = []
    for est in estimates:
        number = max(1, int(0.005 / est))
        if repeats is None:
            reps = max(3 if est > budget / 4 else 5, min(int(budget / (number * est)), 2000))
        else:
            reps = repeats
        plan.append((number, reps))
    rounds = max(reps for _, reps in plan)
    times = [[] for _ in fns]
    gc.collect()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            order = list(range(len(fns)))
            order = order[r % len(order):] + order[: r % len(order)]  # rotate who goes first
            for k in order:
                number, reps = plan[k]
                if (r + 1) * reps // rounds == r * reps // rounds:
                    continue                    # this path's repeats are spread thinner
                fn = fns[k]
                t = time.perf_counter()
                for _ in range(number):
                    fn()
                times[k].append((time.perf_counter() - t) / number)
    finally:
        if gc_was:
            gc.enable()
    return [(statistics.median(ts), len(ts), number) for ts, (number, _) in zip(times, plan)]


class Cell:
    def __init__(self, seconds=None, error=None, repeats=0, number=0):
        self.seconds, self.error, self.repeats, self.number = seconds, error, repeats, number

    def text(self):
        if self.error is not None:   # the full message goes under the table
            return "ERR: " + self.error.split(":")[0]
        return f"{self.seconds * 1e3:.3f}"


def _short(msg, n=60):
    msg = " ".join(str(msg).split())
    msg = msg.replace("|", "/")
    return msg if len(msg) <= n else msg[: n - 1] + "…"


def _error(err, args):
    if args.verbose:
        traceback.print_exc()
    return Cell(error=f"{type(err).__name__}: {err}")


def run_workload(cols, eq, ops, ct, ref, args):
    """Every path of a section on one workload: build, first call (jit,
    planning), a checked call, warm-up, then interleaved timing."""
    cells, ready = {}, []
    for col, path in cols:
        try:
            fn = path(eq, ops, ct)
            fn()                            # jit compile / plan / first touch
            t = time.perf_counter()
            result = fn()
            first = time.perf_counter() - t
            check(result, ref)              # checked once, before any timing
            if args.quick:
                cells[col] = Cell(first, repeats=1, number=1)
            else:
                ready.append((col, fn, _warm(fn, first, args.budget)))
        except Exception as err:  # noqa: BLE001 - a failing path is a result
            cells[col] = _error(err, args)
    if ready:
        try:
            timed = measure([fn for _, fn, _ in ready], [est for _, _, est in ready],
                            args.repeats, args.budget)
            for (col, _, _), (sec, reps, number) in zip(ready, timed):
                cells[col] = Cell(sec, repeats=reps, number=number)
        except Exception as err:  # noqa: BLE001
            for col, _, _ in ready:
                cells[col] = _error(err, args)
    return {col: cells[col] for col, _ in cols}


# --------------------------------------------------------------------------
# Report


def geomean(xs):
    xs = [x for x in xs if x is not None and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def section_table(sec, results, names):
    cfg = SECTIONS[sec]
    cols = [c for c, _ in cfg["cols"]]
    num, den = cfg["ratio"]
    each, mean = cfg["target"]
    lines = [f"### {cfg['title']}", "",
             "median ms per forward+backward (float32)", "",
             "| workload | " + " | ".join(cols) + f" | ratio {num} / {den} |",
             "|---|" + "---:|" * (len(cols) + 1)]
    ratios, notes = [], []
    for name in names:
        row = results[name]
        a, b = row[num], row[den]
        if a.error is None and b.error is None:
            r = a.seconds / b.seconds
            ratios.append(r)
            rtext = f"{r:.2f}" + ("" if r <= each else f" ✗ (> {each})")
        else:
            rtext = "—"
        lines.append(f"| {name} | " + " | ".join(row[c].text() for c in cols) + f" | {rtext} |")
        for c in cols:
            if row[c].error is not None:
                notes.append(f"- {name} / {c}: {_short(row[c].error, 300)}")
    g = geomean(ratios)
    gtext = "—" if g is None else f"{g:.2f}"
    if g is not None and mean is not None:
        gtext += " ✓" if g <= mean else f" ✗ (> {mean})"
    row_g = ["geo-mean"]
    for c in cols:
        ts = [results[n][c].seconds for n in names if results[n][c].error is None]
        row_g.append(f"{geomean(ts) * 1e3:.3f}" if len(ts) == len(names) and ts else "")
    lines.append("| " + " | ".join(f"**{x}**" if x else "" for x in row_g) + f" | **{gtext}** |")
    target = f"target: each ratio <= {each}" + (f", geo-mean <= {mean}" if mean else "")
    lines += ["", target + " (✗ marks a miss)"]
    if notes:
        lines += ["", "errors / skipped:", ""] + notes
    return "\n".join(lines)


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    vers = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        vers[-1] += f" ({blas['name']} {blas.get('version', '')})"
    except Exception:  # noqa: BLE001
        pass
    for mod in ("torch", "jax", "opt_einsum", "autograd"):
        try:
            from importlib.metadata import version
            vers.append(f"{mod} {version(mod)}")
        except Exception:  # noqa: BLE001
            pass
    try:
        commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--",
                                "../einvjp", "../backends"],
                               capture_output=True, text=True).stdout.strip()
        vers.append(f"einvjp @ {commit}" + (" + uncommitted changes" if dirty else ""))
    except Exception:  # noqa: BLE001
        pass
    return cpu, os.cpu_count(), vers, _loadavg()


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def header(args):
    date = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    cpu, cores, vers, load = machine()
    cmd = "python bench/run.py" + ("" if len(sys.argv) == 1 else " " + " ".join(sys.argv[1:]))
    mode = "quick (tiny sizes, 1 call, smoke test only)" if args.quick else (
        f"{args.repeats} repeats" if args.repeats else
        f"repeats chosen for ~{args.budget:g} s per cell")
    return "\n".join([
        f"- date: {date}",
        f"- machine: {cpu}, {cores} cores; load average at start {load}",
        f"- versions: {', '.join(vers)}",
        f"- command: `{cmd}`",
        f"- float32; torch.set_num_threads({TORCH_THREADS}); {mode}; "
        "median of timed repeats after warm-up",
    ])


def write_readme(text):
    body = f"{START}\n{text}\n{END}"
    if os.path.exists(README):
        old = open(README).read()
        if START in old and END in old:
            new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: body, old,
                         flags=re.S)
        else:
            new = old.rstrip() + "\n\n" + body + "\n"
    else:
        new = "# einvjp benchmarks\n\n" + body + "\n"
    with open(README, "w") as f:
        f.write(new)


# --------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="numpy,torch,jax",
                    help="comma-separated sections: numpy,torch,jax")
    ap.add_argument("--workloads", default=None,
                    help="comma-separated: " + ",".join(workloads()))
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed repeats per cell (default: ~--budget seconds per cell)")
    ap.add_argument("--budget", type=float, default=1.5, help="seconds per cell")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 call: smoke test")
    ap.add_argument("--write", action="store_true", help="write the tables to bench/README.md")
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    args = ap.parse_args(argv)

    sections = [s.strip() for s in args.backend.split(",") if s.strip()]
    for s in sections:
        if s not in SECTIONS:
            ap.error(f"unknown backend {s!r} (choose from {', '.join(SECTIONS)})")
    wl = workloads(args.quick)
    names = list(wl) if not args.workloads else [w.strip() for w in args.workloads.split(",")]
    for w in names:
        if w not in wl:
            ap.error(f"unknown workload {w!r} (choose from {', '.join(wl)})")

    import torch
    torch.set_num_threads(TORCH_THREADS)

    head = header(args)
    print(head, flush=True)
    shapes_lines = ["", "| workload | equation | shapes |", "|---|---|---|"]
    for w in names:
        eq, shapes = wl[w]
        shown = eq if len(eq) <= 60 else eq[:57] + "…"
        sh = ", ".join("x".join(map(str, s)) for s in shapes) if len(shapes) <= 4 else \
            f"{len(shapes)} operands: x_k {shapes[0]}, A_1 {shapes[1]}, A_k {shapes[3]}, " \
            f"A_n {shapes[-1]}"
        shapes_lines.append(f"| {w} | `{shown}` | {sh} |")
    print("\n".join(shapes_lines), flush=True)

    data = {w: make_inputs(w, *wl[w]) for w in names}
    refs = {w: reference(wl[w][0], *data[w]) for w in names}
    tables = []
    for sec in sections:
        results = {}
        for w in names:
            eq, _ = wl[w]
            ops, ct = data[w]
            results[w] = run_workload(SECTIONS[sec]["cols"], eq, ops, ct, refs[w], args)
            for col, cell in results[w].items():
                extra = f" ({cell.repeats}x{cell.number})" if cell.error is None else ""
                print(f"  [{sec}] {w:10s} {col:26s} {cell.text()}{extra}", flush=True)
        table = section_table(sec, results, names)
        tables.append(table)
        print("\n" + table + "\n", flush=True)

    load_end = f"- load average at end {_loadavg()} (other processes share the 2 cores: " \
        "medians resist them, they do not remove them)"
    print(load_end)
    if args.write:
        write_readme(head + "\n" + load_end + "\n" + "\n".join(shapes_lines) + "\n\n"
                     + "\n\n".join(tables))
        print(f"wrote {os.path.relpath(README)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
