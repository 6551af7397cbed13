"""einvjp's Hessians and Hessian-vector products against JAX and torch.func.

    python bench/hessians.py [--quick] [--write] [--symbolic] [--budget S]
                             [--call-limit S] [--workloads quad,logreg,...]
                             [--threads N] [-v]

Workloads: the formulas of the matrix-calculus benchmarks (WORKLOADS below:
the index-notation program, the same f over jnp and torch, its inputs), each
at two sizes, float64, a scalar f differentiated twice with respect to one
input x.  Two rows per workload and size:

  Hessian  d2f/dx2, of shape x.shape + x.shape
             jax           jax.jit(jax.hessian(f, argnums=k))
             torch.func    torch.func.hessian(f, argnums=k) (eager)
             einvjp-numpy  prog.hessian("x", **inputs) on NumPy arrays
             einvjp-torch  the same on torch tensors
             einvjp-jax    jax.jit of the same on jax arrays
  HVP      (d2f/dx2) v for a fixed random v of x's shape
             jax           jax.jit of jax.jvp(jax.grad(f), (x,), (v,))[1]
             torch.func    torch.func.jvp(torch.func.grad(f), (x,), (v,))[1]
             einvjp-*      prog.hvp("x", v, **inputs) ("n/a" if einvjp has none)

matfact-UV is the mixed block d2f/dUdV (shape U.shape + V.shape) instead:
prog.hessian(("U", "V"), ...) against jacfwd(grad(f, U), V) (jax under jit,
torch.func eager); it has no HVP row.

Before any timing each program's value is checked against the jnp f, and
every path's result against the jax one (the torch.func one if jax fails) to
TOL of its largest entry: torch.func is held to the same, so the reference is
two libraries agreeing.  Then warm-up and the median of the timed repeats,
all paths of one size interleaved round-robin (bench/harness.py), ~--budget
seconds each, at least 3; a path whose one call exceeds --call-limit is timed
once.  "1st call" is a path's first call: for jax trace, compile and run, for
einvjp the derivation, planning and run (the median is of the later calls).
A speedup is a peer's median over einvjp's (> 1: einvjp is faster); the
geo-means run over every workload and size.  One thread everywhere by default
(--threads, as bench/networks.py).  --symbolic prints the Hessian einvjp
derives for each workload (`prog.derivative(x, order=2)`).  --write puts the tables into bench/README.md between the
hessians markers.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (imports no NumPy: the threads are pinned first)

THREADS = harness.pin_threads(sys.argv[1:]) if __name__ == "__main__" else None

import numpy as np  # noqa: E402

from harness import close, to_numpy  # noqa: E402

START, END = "<!-- hessians:start -->", "<!-- hessians:end -->"
TOL = 1e-10           # relative to the largest entry of the reference
NA = "n/a"            # the error of a cell einvjp has no method for


# --------------------------------------------------------------------------
# Workloads


class Workload:
    """A scalar f: `text`, its einvjp program; `f(o, **inputs)`, the same
    over jnp or torch (`o` holds the library's functions, `ops` below);
    `wrt`, the input (or the pair of inputs of a mixed block) it is
    differentiated by; `make(rng, **size)`, its inputs (float64 NumPy) at a
    size; the sizes of a full run and of `--quick`."""

    def __init__(self, name, formula, text, f, wrt, make, sizes, quick):
        self.name, self.formula, self.text, self.f = name, formula, text, f
        self.wrt, self.make, self.sizes, self.quick = wrt, make, sizes, quick

    @property
    def mixed(self):
        return isinstance(self.wrt, tuple)


def normal(rng, *shape, scale=1.0):
    return rng.normal(size=shape) * scale


def _tensor(rng, n):
    return dict(T=normal(rng, n, n, n), a=normal(rng, n), b=normal(rng, n), c=normal(rng, n))


def _tucker(rng, n, r):
    return dict(T=normal(rng, n, n, n), G=normal(rng, r, r, r), A=normal(rng, n, r),
                B=normal(rng, n, r), C=normal(rng, n, r))


def _matfact(rng, m, r):
    return dict(A=normal(rng, m, m), U=normal(rng, m, r), V=normal(rng, m, r))


MATFACT = ("(A[i,j] - U[i,k] V[j,k])^2", lambda o, A, U, V: o.sum((A - U @ V.T) ** 2))

WORKLOADS = [
    Workload("quad", "xᵀAx; x (n), A (n,n)", "f = x[i] A[i,j] x[j]",
             lambda o, x, A: x @ A @ x, "x",
             lambda rng, n: dict(x=normal(rng, n), A=normal(rng, n, n)),
             [dict(n=256), dict(n=1024)], dict(n=16)),
    Workload("logreg", "Σ log(1 + exp(−y ∘ Xw)); X (N,d), y = ±1",
             "z[n] = y[n] X[n,d] w[d]\nf = log(1 + exp(-z[n]))",
             lambda o, y, X, w: o.sum(o.log(1 + o.exp(-y * (X @ w)))), "w",
             lambda rng, N, d: dict(y=rng.choice([-1.0, 1.0], N), X=normal(rng, N, d),
                                    w=normal(rng, d, scale=d ** -0.5)),
             [dict(N=1000, d=100), dict(N=1000, d=300)], dict(N=50, d=8)),
    Workload("lsq", "‖MW − T‖²; M (N,k), W (k,k)", "f = (M[n,i] W[i,o] - T[n,o])^2",
             lambda o, M, W, T: o.sum((M @ W - T) ** 2), "W",
             lambda rng, N, k: dict(M=normal(rng, N, k), W=normal(rng, k, k), T=normal(rng, N, k)),
             [dict(N=100, k=20), dict(N=100, k=40)], dict(N=10, k=4)),
    Workload("trace", "tr(XᵀBX); X (n,n), B (n,n)", "f = X[i,j] B[i,k] X[k,j]",
             lambda o, X, B: o.einsum("ij,ik,kj->", X, B, X), "X",
             lambda rng, n: dict(X=normal(rng, n, n), B=normal(rng, n, n)),
             [dict(n=30), dict(n=60)], dict(n=5)),
    Workload("matfact", "‖A − UVᵀ‖²; A (m,m), U, V (m,r)", "f = " + MATFACT[0],
             MATFACT[1], "U", _matfact, [dict(m=30, r=10), dict(m=100, r=20)], dict(m=6, r=2)),
    Workload("matfact-UV", "‖A − UVᵀ‖², the mixed block", "f = " + MATFACT[0],
             MATFACT[1], ("U", "V"), _matfact, [dict(m=30, r=10), dict(m=100, r=20)],
             dict(m=6, r=2)),
    Workload("logsumexp", "log Σ exp(Ax); A (n,n)", "f = logsumexp(A[i,j] x[j], i)",
             lambda o, A, x: o.logsumexp(A @ x), "x",
             lambda rng, n: dict(A=normal(rng, n, n), x=normal(rng, n, scale=n ** -0.5)),
             [dict(n=256), dict(n=1024)], dict(n=16)),
    Workload("logdet", "log |det X|; X (n,n) = 2I + noise", "f = logdet(X[i,j])",
             lambda o, X: o.logdet(X), "X",
             lambda rng, n: dict(X=2 * np.eye(n) + normal(rng, n, n, scale=n ** -0.5)),
             [dict(n=30), dict(n=60)], dict(n=5)),
    Workload("rank1", "‖T − a∘b∘c‖²; T (n,n,n)", "f = (T[i,j,k] - a[i] b[j] c[k])^2",
             lambda o, T, a, b, c: o.sum((T - o.einsum("i,j,k->ijk", a, b, c)) ** 2), "a",
             _tensor, [dict(n=30), dict(n=60)], dict(n=5)),
    Workload("tucker", "‖T − G ×₁A ×₂B ×₃C‖²; T (n,n,n), core G (r,r,r)",
             "f = (T[i,j,k] - G[p,q,r] A[i,p] B[j,q] C[k,r])^2",
             lambda o, T, G, A, B, C: o.sum((T - o.einsum("pqr,ip,jq,kr->ijk", G, A, B, C)) ** 2),
             "G", _tucker, [dict(n=20, r=5), dict(n=40, r=10)], dict(n=6, r=2)),
    Workload("cycle4", "tr(ABCD), `ab,bc,cd,da->` (linear in A: the Hessian is 0)",
             "f = A[a,b] B[b,c] C[c,d] D[d,a]",
             lambda o, A, B, C, D: o.einsum("ab,bc,cd,da->", A, B, C, D), "A",
             lambda rng, n: {k: normal(rng, n, n) for k in "ABCD"},
             [dict(n=30), dict(n=60)], dict(n=5)),
    Workload("cycle4-AAAA", "tr(A⁴), `ab,bc,cd,da->` with A in every slot",
             "f = A[a,b] A[b,c] A[c,d] A[d,a]",
             lambda o, A: o.einsum("ab,bc,cd,da->", A, A, A, A), "A",
             lambda rng, n: dict(A=normal(rng, n, n, scale=n ** -0.5)),
             [dict(n=30), dict(n=60)], dict(n=5)),
]


def ops(lib):
    """The functions the workloads' f use, in jnp or torch."""
    if lib == "jax":
        import jax
        import jax.numpy as jnp
        return SimpleNamespace(sum=jnp.sum, log=jnp.log, exp=jnp.exp, einsum=jnp.einsum,
                               logsumexp=jax.nn.logsumexp,
                               logdet=lambda X: jnp.linalg.slogdet(X)[1])
    import torch
    return SimpleNamespace(sum=torch.sum, log=torch.log, exp=torch.exp, einsum=torch.einsum,
                           logsumexp=lambda z: torch.logsumexp(z, 0),
                           logdet=lambda X: torch.linalg.slogdet(X)[1])


def size_label(size):
    return ", ".join(f"{k}={v}" for k, v in size.items())


# --------------------------------------------------------------------------
# Paths: each gives {"Hessian": fn, "HVP": fn or None}, fn a zero-argument
# callable returning the result (None: the row does not apply; NA: einvjp has
# no method for it).


def _swap(arrays, k, x):
    return (*arrays[:k], x, *arrays[k + 1:])


def library(lib):
    """How a path runs on `lib`: its arrays made from NumPy ones, its jit
    (jax's only), its wait for a result, and its transforms (jax's or
    torch.func's grad, hessian, jacfwd, jvp: the same signatures)."""
    same = lambda a: a  # noqa: E731
    if lib == "numpy":
        return SimpleNamespace(convert=same, jit=same, done=same, ad=None)
    if lib == "torch":
        import torch
        import torch.func
        return SimpleNamespace(convert=torch.from_numpy, jit=same, done=same, ad=torch.func)
    import jax
    return SimpleNamespace(convert=jax.numpy.asarray, jit=jax.jit,
                           done=lambda r: r.block_until_ready(), ad=jax)


def _paths_peer(lib):
    def paths(w, inputs, v, prog):
        L, o, names = library(lib), ops(lib), list(inputs)
        arrays, v, ad = [L.convert(a) for a in inputs.values()], L.convert(v), L.ad

        def f(*a):
            return w.f(o, **dict(zip(names, a)))
        if w.mixed:
            i, j = (names.index(n) for n in w.wrt)
            mixed = L.jit(ad.jacfwd(ad.grad(f, i), j))
            return {"Hessian": lambda: L.done(mixed(*arrays)), "HVP": None, "gradient": None}
        k = names.index(w.wrt)
        hess = L.jit(ad.hessian(f, k))
        hvp = L.jit(lambda v, *a: ad.jvp(lambda x: ad.grad(f, k)(*_swap(a, k, x)),
                                         (a[k],), (v,))[1])
        grad = L.jit(ad.grad(f, k))
        return {"Hessian": lambda: L.done(hess(*arrays)),
                "HVP": lambda: L.done(hvp(v, *arrays)),
                "gradient": lambda: L.done(grad(*arrays))}
    return paths


def _paths_einvjp(lib):
    def paths(w, inputs, v, prog):
        L = library(lib)
        ins, v = {n: L.convert(a) for n, a in inputs.items()}, L.convert(v)
        hess = L.jit(lambda **a: prog.hessian(w.wrt, **a))
        out = {"Hessian": lambda: L.done(hess(**ins)), "HVP": None, "gradient": None}
        if not w.mixed:
            hvp = getattr(prog, "hvp", None)
            out["HVP"] = NA if hvp is None else \
                (lambda h: lambda: L.done(h(v, **ins)))(L.jit(lambda v, **a: hvp(w.wrt, v, **a)))
            grad = L.jit(lambda **a: prog.grad(w.wrt, **a))
            out["gradient"] = lambda: L.done(grad(**ins))
        return out
    return paths


COLUMNS = [("jax", _paths_peer("jax")), ("torch.func", _paths_peer("torch")),
           ("einvjp-numpy", _paths_einvjp("numpy")), ("einvjp-torch", _paths_einvjp("torch")),
           ("einvjp-jax", _paths_einvjp("jax"))]
HEADS = {"jax": "jax (jit)", "torch.func": "torch.func", "einvjp-numpy": "einvjp numpy",
         "einvjp-torch": "einvjp torch", "einvjp-jax": "einvjp jax (jit)"}
SPEEDUPS = [("jax", "einvjp-numpy"), ("jax", "einvjp-jax"), ("torch.func", "einvjp-torch")]
ROWS = ("Hessian", "HVP", "gradient")


# --------------------------------------------------------------------------
# Running one size


class Cell(harness.Cell):
    ERR_WIDTH = 24

    def text(self):
        return NA if self.error == NA else super().text()


def value_error(w, prog, inputs):
    """None if the program's value equals the jnp f's, else the message."""
    import jax.numpy as jnp
    want = np.asarray(w.f(ops("jax"), **{n: jnp.asarray(a) for n, a in inputs.items()}))
    try:
        close(prog(**inputs), want, "the program's value against jnp's f", 1e-12)
    except Exception as e:  # noqa: BLE001 - a wrong or failing program is a result
        return f"{type(e).__name__}: {e}"
    return None


def run_size(w, size, args):
    """The cells {(row, column): Cell} of one workload at one size, and the
    seconds of the first calls {(row, column): seconds}."""
    import einvjp
    rng = np.random.default_rng(sum(map(ord, w.name)))
    inputs = w.make(rng, **size)
    x = inputs[w.wrt[0] if w.mixed else w.wrt]
    v = normal(rng, *x.shape)
    prog = einvjp.compile(w.text)
    wrong = value_error(w, prog, inputs)
    cells, ready, refs, firsts = {}, [], {}, {}
    for col, make_paths in COLUMNS:
        try:
            fns = make_paths(w, inputs, v, prog)
        except Exception as e:  # noqa: BLE001
            fns = {row: e for row in ROWS}
        for row in ROWS:
            fn = fns[row]
            if fn is None:
                continue
            if fn is NA:
                cells[row, col] = Cell(error=NA)
                continue
            try:
                if isinstance(fn, Exception):
                    raise fn
                if col.startswith("einvjp") and wrong:
                    raise AssertionError(wrong)
                result, first, second = harness.first_calls(fn)
                firsts[row, col] = first
                got = to_numpy(result)
                if row not in refs:   # the first library that succeeds: jax, else torch.func
                    refs[row] = np.tensordot(refs["Hessian"], v, v.ndim) \
                        if row == "HVP" and "Hessian" in refs else got
                err = close(got, refs[row], f"{row} against the reference", TOL)
                cells[row, col] = Cell(second, repeats=1, number=1, err=err)
                if second <= args.call_limit:
                    ready.append(((row, col), fn, harness.warm(fn, second, args.budget, 3,
                                                               min(0.2, args.budget / 2))))
            except Exception as e:  # noqa: BLE001 - a failing path is a result
                cells[row, col] = harness.error_cell(e, args.verbose, Cell)
    if ready:
        timed = harness.measure([fn for _, fn, _ in ready], [est for _, _, est in ready],
                                lambda number, est: max(3, min(int(args.budget / (number * est)),
                                                               200)))
        for (key, _, _), (sec, reps, number, best) in zip(ready, timed):
            cells[key] = Cell(sec, repeats=reps, number=number, err=cells[key].err, best=best)
    return cells, firsts


# --------------------------------------------------------------------------
# Report


def speedup(cells, row, num, den):
    a, b = cells.get((row, num)), cells.get((row, den))
    if a is None or b is None or a.error is not None or b.error is not None:
        return None
    return a.seconds / b.seconds


def _ratio(cells, a, b, col):
    """cells[a, col] over cells[b, col]: the time of one row over another's."""
    x, y = cells.get((a, col)), cells.get((b, col))
    if x is None or y is None or x.error is not None or y.error is not None:
        return None
    return x.seconds / y.seconds


def fmt(r):
    return "—" if r is None else f"{r:.2f}"


def geomean(rs):
    rs = [r for r in rs if r is not None]
    return fmt(math.exp(sum(map(math.log, rs)) / len(rs)) if rs else None)


def what(w):
    a, b = w.wrt if w.mixed else (w.wrt, w.wrt)
    return f"∂²f/∂{a}²" if a == b else f"∂²f/∂{a}∂{b}"


def workload_table(w, results):
    """One workload: a row per size and Hessian/HVP."""
    lines = [f"#### {w.name}: {w.formula}; {what(w)}", "",
             "    " + w.text.replace("\n", "\n    "), "",
             *harness.table_head(["size", "derivative", *(HEADS[c] for c, _ in COLUMNS),
                                  *(f"{a} / {b}" for a, b in SPEEDUPS),
                                  "1st call s: jax / einvjp numpy"])]
    notes = {}   # an error message -> where it was raised
    for size, (cells, first) in results:
        for row in ROWS:
            if not any(r == row for r, _ in cells):
                continue
            texts = [cells[row, c].text() if (row, c) in cells else "" for c, _ in COLUMNS]
            sp = [fmt(speedup(cells, row, a, b)) for a, b in SPEEDUPS]
            jit = " / ".join(f"{first[row, c]:.3g}" if (row, c) in first else "—"
                             for c in ("jax", "einvjp-numpy"))
            cols = [size_label(size), row, *texts, *sp, jit]
            lines.append("| " + " | ".join(cols) + " |")
            for c, _ in COLUMNS:
                if (row, c) in cells and cells[row, c].error not in (None, NA):
                    notes.setdefault(harness.short(cells[row, c].error, 300), []).append(
                        f"{size_label(size)} {row} {c}")
    notes = [f"- {'; '.join(where)}: {msg}" for msg, where in notes.items()]
    return "\n".join(lines + (["", "errors:", "", *notes] if notes else []))


def summary_table(ws, results):
    """Per workload the geo-mean speedups over its sizes; the last row over
    every workload and size."""
    cols = [(row, a, b) for row in ROWS for a, b in SPEEDUPS]
    lines = ["### Speedups, geo-mean over the sizes (peer median / einvjp median; "
             "> 1: einvjp faster)", "",
             *harness.table_head(["workload", *(f"{row}: {a} / {b}" for row, a, b in cols),
                                  "einvjp numpy: HVP / gradient"])]
    cost = ("gradient", "einvjp-numpy", "HVP")  # an HVP over a gradient, both einvjp's
    every = {k: [] for k in cols + [cost]}
    for w in ws:
        per = {k: [speedup(cells, *k) for _, (cells, _) in results[w.name]] for k in cols}
        per[cost] = [_ratio(cells, "HVP", "gradient", "einvjp-numpy")
                     for _, (cells, _) in results[w.name]]
        for k in per:
            every[k] += per[k]
        lines.append(f"| {w.name} | " + " | ".join(geomean(per[k]) for k in cols + [cost]) + " |")
    lines.append("| **geo-mean, all** | " + " | ".join(f"**{geomean(every[k])}**"
                                                      for k in cols + [cost]) + " |")
    return "\n".join(lines)


def symbolic(w, size):
    """The Hessian einvjp derives for `w`, as `prog.derivative(x, order=2)`
    prints it."""
    import einvjp
    inputs = w.make(np.random.default_rng(0), **size)
    return str(einvjp.compile(w.text).derivative(w.wrt, order=2, **inputs))


def symbolic_section(ws):
    lines = ["### The Hessians einvjp derives (`prog.derivative(x, order=2)`)", ""]
    for w in ws:
        lines += [f"{w.name}, {what(w)}:", "", "    " + symbolic(w, w.quick).replace(
            "\n", "\n    "), ""]
    return "\n".join(lines)


def header(args, load_start, load_end, minutes):
    vers = harness.versions(("torch", "jax", "jaxlib"), blas=True,
                            dirty="uncommitted changes in einvjp/ backends/")
    mode = ("quick: small sizes" if args.quick else "full sizes") + \
        f"; ~{args.budget:g} s of interleaved repeats per cell (>= 3), median; " \
        f"a path slower than {args.call_limit:g} s a call timed once"
    return "\n".join([
        f"- date: {harness.date_utc()}",
        f"- machine: {harness.cpu_name()}, {os.cpu_count()} cores; load average "
        f"{load_start} at start, {load_end} at end (other processes share the machine)",
        f"- versions: {', '.join(vers)}",
        f"- command: `{harness.command('bench/hessians.py')}` ({minutes:.1f} min)",
        f"- float64; {THREADS or args.threads} thread(s) in every library (torch.set_num_threads, "
        "OpenBLAS, XLA); " + mode,
    ])


DESCRIPTION = """\
## Hessians

    python bench/hessians.py --symbolic --write   # the run below, ~7 min
    python bench/hessians.py --quick               # small sizes, a smoke test

Full Hessians and Hessian-vector products of scalar functions (the formulas
of the matrix-calculus benchmarks), float64, einvjp against JAX and torch.func
in one run. Hessian: `prog.hessian(name, **inputs)` against
`jax.jit(jax.hessian(f))` and `torch.func.hessian(f)`; HVP: `prog.hvp(name,
v, **inputs)` against `jax.jit` of `jax.jvp(jax.grad(f), (x,), (v,))[1]` and
`torch.func.jvp(torch.func.grad(f), ...)`; einvjp on NumPy, on torch tensors
and under `jax.jit` on jax arrays. Each program's value is checked against
the jnp f, and every result against the jax one (torch.func to the same
tolerance, 1e-10 of the largest entry) before any timing. A cell is the
median ms (the fastest repeat in parentheses), all paths of one size timed
interleaved; "n/a": einvjp has no such method in this build. A speedup is
the peer's median over einvjp's: above 1, einvjp is faster. What is timed is
in the docstring of `bench/hessians.py`."""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(w.name for w in WORKLOADS),
                    help="comma-separated: " + ",".join(w.name for w in WORKLOADS))
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds of timed repeats per cell (default 0.5, --quick 0.05)")
    ap.add_argument("--call-limit", type=float, default=2.0,
                    help="a path whose one call takes longer is timed once")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    ap.add_argument("--write", action="store_true", help="write the tables to bench/README.md")
    ap.add_argument("--symbolic", action="store_true",
                    help="also print the Hessian einvjp derives for each workload")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of every library (read before NumPy and JAX load)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    args = ap.parse_args(argv)
    if args.budget is None:
        args.budget = 0.05 if args.quick else 0.5
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    known = {w.name: w for w in WORKLOADS}
    for n in names:
        if n not in known:
            ap.error(f"unknown workload {n!r} (choose from {', '.join(known)})")
    ws = [known[n] for n in names]

    import torch
    torch.set_num_threads(THREADS or args.threads)
    import jax
    jax.config.update("jax_enable_x64", True)

    t_start, load_start = time.perf_counter(), harness.loadavg()
    results = {}
    for w in ws:
        results[w.name] = []
        for size in [w.quick] if args.quick else w.sizes:
            print(f"{w.name}, {size_label(size)} ...", file=sys.stderr, flush=True)
            results[w.name].append((size, run_size(w, size, args)))
    errs = [c.err for rs in results.values() for _, (cells, _) in rs for c in cells.values()
            if c.err is not None]
    parts = [header(args, load_start, harness.loadavg(), (time.perf_counter() - t_start) / 60),
             summary_table(ws, results),
             f"worst relative error of a checked result: {max(errs, default=0):.1e} "
             f"(tolerance {TOL:g})",
             "### Per workload: median ms (fastest repeat)",
             *(workload_table(w, results[w.name]) for w in ws)]
    if args.symbolic:
        parts.append(symbolic_section(ws))
    text = "\n\n".join(parts)
    print(text)
    if args.write:
        harness.write_section(START, END, DESCRIPTION + "\n\n" + text)
        print(f"\nwritten to {harness.README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
