"""What the benchmarks in bench/ share: thread pinning, checks against a
float64 reference, warm-up, interleaved timing (medians), result cells, the
machine and versions header, the load average and writing a section of
bench/README.md between markers.

Not a script: the benchmarks import it by path (`python bench/run.py` puts
bench/ on sys.path).  It imports NumPy only when a function needs it, so that
a script can pin the thread counts (`pin_threads`) before NumPy loads.
"""

from __future__ import annotations

import gc
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")


# --------------------------------------------------------------------------
# Threads


def pin_threads(argv, default=1):
    """The thread count `--threads N` in `argv` (else `default`), given to
    OpenBLAS, OpenMP and MKL through the environment, and at 1 to XLA's CPU
    client too; -> N.  Call it before NumPy and JAX load: their thread pools
    are sized then (torch takes `torch.set_num_threads(N)` at any time)."""
    n = default
    for k, a in enumerate(argv):
        if a == "--threads" and k + 1 < len(argv):
            n = int(argv[k + 1])
        elif a.startswith("--threads="):
            n = int(a.split("=", 1)[1])
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()
    return n


# --------------------------------------------------------------------------
# Checks


def to_numpy(x):
    """A torch tensor, jax array or NumPy array as a float64 NumPy array."""
    import numpy as np
    if hasattr(x, "detach"):
        x = x.detach()
    return np.asarray(x, dtype=np.float64)


def close(got, want, what, tol):
    """Raise unless `got` matches `want` (float64) to `tol` of max |want|;
    -> the relative error."""
    import numpy as np
    got = to_numpy(got)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape} != {want.shape}")
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
    err = float(np.max(np.abs(got - want))) / scale if want.size else 0.0
    if not err <= tol:
        raise AssertionError(f"{what}: max error {err:.2e} of max |ref| (tolerance {tol})")
    return err


def first_call(fn):
    """A first call (jit compile, planning, first touch), then a second one
    timed -> (its result, its seconds)."""
    result, _, second = first_calls(fn)
    return result, second


def first_calls(fn):
    """Two calls, both timed -> (the second's result, the first's seconds:
    jit compile, planning, first touch, and the second's)."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    t = time.perf_counter()
    result = fn()
    return result, first, time.perf_counter() - t


# --------------------------------------------------------------------------
# Timing


def warm(fn, first, budget, calls, seconds):
    """Warm-up calls (the checked call, `first` seconds, counts as one; a
    path slower than budget/4 gets no more; else at least `calls`, and more
    for up to `seconds`, at most 50) -> the fastest call seen, an estimate of
    one call."""
    times = [first]
    if first < budget / 4:
        t_start = time.perf_counter()
        while len(times) < calls or (time.perf_counter() - t_start < seconds
                                     and len(times) < 50):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return max(min(times), 1e-7)


def measure(fns, estimates, repeats_for):
    """Median seconds per call of each function, timed *interleaved*: the
    repeats of every function are spread evenly over the same stretch of
    time, round-robin with who goes first rotating, so a burst of load from
    other processes hits all of them alike.

    A repeat times `number` back-to-back calls (number so that a repeat lasts
    >= ~5 ms, timeit-style) with time.perf_counter, gc off; a function gets
    `repeats_for(number, estimate)` repeats.
    -> [(median, repeats, number, fastest repeat)] per function."""
    plan = []
    for est in estimates:
        number = max(1, int(0.005 / est))
        plan.append((number, repeats_for(number, est)))
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
                    continue                    # this function's repeats are spread thinner
                fn = fns[k]
                t = time.perf_counter()
                for _ in range(number):
                    fn()
                times[k].append((time.perf_counter() - t) / number)
    finally:
        if gc_was:
            gc.enable()
    return [(statistics.median(ts), len(ts), number, min(ts))
            for ts, (number, _) in zip(times, plan)]


# --------------------------------------------------------------------------
# Cells


def mps_chain(sites, bond, phys, batch, classes=None):
    """(equation, shapes) of a batch of product states x_k[b, p_k] contracted
    with an open-boundary MPS: A_1[p_1, r_1], A_k[r_{k-1}, p_k, r_k],
    A_N[r_{N-1}, p_N (, c)] -> [b (, c)], `c` the class label when
    `classes` is given.  Operands interleaved x_1, A_1, x_2, A_2, ...;
    labels opt_einsum's symbols in the order b, c, p_k, r_k."""
    from opt_einsum import get_symbol
    names = (get_symbol(k) for k in range(2 * sites + 1))
    b = next(names)
    c = next(names) if classes else ""
    p = [next(names) for _ in range(sites)]
    r = [next(names) for _ in range(sites - 1)]
    terms, shapes = [], []
    for k in range(sites):
        terms.append(b + p[k])
        shapes.append((batch, phys))
        if k == 0:
            terms.append(p[k] + r[k])
            shapes.append((phys, bond))
        elif k == sites - 1:
            terms.append(r[k - 1] + p[k] + c)
            shapes.append((bond, phys) + ((classes,) if classes else ()))
        else:
            terms.append(r[k - 1] + p[k] + r[k])
            shapes.append((bond, phys, bond))
    return ",".join(terms) + "->" + b + c, shapes


def short(msg, n=60):
    """One line, no table pipes, at most n characters."""
    msg = " ".join(str(msg).split()).replace("|", "/")
    return msg if len(msg) <= n else msg[: n - 1] + "…"


class Cell:
    """One table cell: a median (and the fastest repeat, the checked call's
    worst relative error) or an error."""

    ERR_WIDTH = None   # shorten the error's type in the cell to this many characters

    def __init__(self, seconds=None, error=None, repeats=0, number=0, err=None, best=None):
        self.seconds, self.error, self.repeats, self.number = seconds, error, repeats, number
        self.err = err  # the checked call's worst relative error
        self.best = best  # the fastest timed repeat

    def text(self):
        if self.error is not None:   # the full message goes under the table
            kind = self.error.split(":")[0]
            return "ERR: " + (kind if self.ERR_WIDTH is None else short(kind, self.ERR_WIDTH))
        best = "" if self.best is None else f" ({self.best * 1e3:.3g})"
        return f"{self.seconds * 1e3:.3f}{best}"


def error_cell(err, verbose, cell=Cell):
    """The cell of a path that raised `err` (traceback printed if verbose)."""
    if verbose:
        traceback.print_exc()
    return cell(error=f"{type(err).__name__}: {err}")


def table_head(cols):
    """A markdown table's header row and alignment row: the first column
    left, the others right."""
    return ["| " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]


# --------------------------------------------------------------------------
# Header


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def versions(mods, blas=False, dirty="uncommitted changes"):
    """python, numpy (with its BLAS if `blas`), the installed `mods`, and
    the einvjp commit (`+ dirty` when einvjp/ or backends/ have changes)."""
    from importlib.metadata import version
    import numpy as np
    vers = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    if blas:
        try:
            info = np.__config__.CONFIG["Build Dependencies"]["blas"]
            vers[-1] += f" ({info['name']} {info.get('version', '')})"
        except Exception:  # noqa: BLE001
            pass
    for mod in mods:
        try:
            vers.append(f"{mod} {version(mod)}")
        except Exception:  # noqa: BLE001
            pass
    try:
        commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--",
                                  "../einvjp", "../backends"],
                                 capture_output=True, text=True).stdout.strip()
        vers.append(f"einvjp @ {commit}" + (f" + {dirty}" if changed else ""))
    except Exception:  # noqa: BLE001
        pass
    return vers


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def date_utc():
    return subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()


def command(script):
    """The command line this run was started with, e.g. `python bench/run.py --quick`."""
    return f"python {script}" + ("" if len(sys.argv) == 1 else " " + " ".join(sys.argv[1:]))


# --------------------------------------------------------------------------
# README


def write_section(start, end, text, new_file="", path=README):
    """Replace (or add) only the section between the markers `start` and
    `end` of bench/README.md, re-reading the file just before writing; a new
    file starts with `new_file`."""
    body = f"{start}\n{text}\n{end}"
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if start in old and end in old:
            new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: body, old,
                         flags=re.S)
        else:
            new = old.rstrip() + "\n\n" + body + "\n"
    else:
        new = new_file + body + "\n"
    with open(path, "w") as f:
        f.write(new)
