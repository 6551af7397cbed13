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
import math
import os
import sys

import numpy as np

import harness
from harness import README, Cell, close

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
DTYPE = np.float32
TORCH_THREADS = 2
TOL = 2e-3   # relative to max |reference|


# --------------------------------------------------------------------------
# Workloads


def _mps(sites, bond, phys, batch):
    """One many-operand einsum: a batch of product states x_k (batch, phys)
    contracted with an open-boundary MPS A_1 (phys, bond), A_k (bond, phys,
    bond), A_n (bond, phys) -> (batch,).  Operands interleaved x_1, A_1, ..."""
    return harness.mps_chain(sites, bond, phys, batch)


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


def check(result, ref):
    """`result` = (output or None, gradients); compare with the reference."""
    y, grads = result
    ref_y, ref_grads = ref
    if y is not None:
        close(y, ref_y, "output", TOL)
    if len(grads) != len(ref_grads):
        raise AssertionError(f"{len(grads)} gradients for {len(ref_grads)} operands")
    for k, (g, r) in enumerate(zip(grads, ref_grads)):
        if g is None:
            raise AssertionError(f"gradient {k} is None")
        close(g, r, f"gradient {k}", TOL)


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


def _repeats(args):
    """Repeats per cell: `--repeats`, or enough for ~`--budget` seconds (at
    least 5; at least 3 for calls slower than budget/4)."""
    def repeats_for(number, est):
        if args.repeats is not None:
            return args.repeats
        return max(3 if est > args.budget / 4 else 5,
                   min(int(args.budget / (number * est)), 2000))
    return repeats_for


def run_workload(cols, eq, ops, ct, ref, args):
    """Every path of a section on one workload: build, first call (jit,
    planning), a checked call, warm-up, then interleaved timing."""
    cells, ready = {}, []
    for col, path in cols:
        try:
            fn = path(eq, ops, ct)
            result, first = harness.first_call(fn)   # after jit compile / plan
            check(result, ref)              # checked once, before any timing
            if args.quick:
                cells[col] = Cell(first, repeats=1, number=1)
            else:
                ready.append((col, fn, harness.warm(fn, first, args.budget, 3, 0.2)))
        except Exception as err:  # noqa: BLE001 - a failing path is a result
            cells[col] = harness.error_cell(err, args.verbose)
    if ready:
        try:
            timed = harness.measure([fn for _, fn, _ in ready],
                                    [est for _, _, est in ready], _repeats(args))
            for (col, _, _), (sec, reps, number, _) in zip(ready, timed):
                cells[col] = Cell(sec, repeats=reps, number=number)
        except Exception as err:  # noqa: BLE001
            for col, _, _ in ready:
                cells[col] = harness.error_cell(err, args.verbose)
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
             *harness.table_head(["workload", *cols, f"ratio {num} / {den}"])]
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
                notes.append(f"- {name} / {c}: {harness.short(row[c].error, 300)}")
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


def header(args):
    vers = harness.versions(("torch", "jax", "opt_einsum", "autograd"), blas=True)
    mode = "quick (tiny sizes, 1 call, smoke test only)" if args.quick else (
        f"{args.repeats} repeats" if args.repeats else
        f"repeats chosen for ~{args.budget:g} s per cell")
    return "\n".join([
        f"- date: {harness.date_utc()}",
        f"- machine: {harness.cpu_name()}, {os.cpu_count()} cores; "
        f"load average at start {harness.loadavg()}",
        f"- versions: {', '.join(vers)}",
        f"- command: `{harness.command('bench/run.py')}`",
        f"- float32; torch.set_num_threads({TORCH_THREADS}); {mode}; "
        "median of timed repeats after warm-up",
    ])


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

    load_end = f"- load average at end {harness.loadavg()} (other processes share the 2 cores: " \
        "medians resist them, they do not remove them)"
    print(load_end)
    if args.write:
        harness.write_section(START, END, head + "\n" + load_end + "\n"
                              + "\n".join(shapes_lines) + "\n\n" + "\n\n".join(tables),
                              new_file="# einvjp benchmarks\n\n")
        print(f"wrote {os.path.relpath(README)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
