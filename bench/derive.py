"""How einvjp's derivation time grows with depth: a tanh MLP, one command.

    python bench/derive.py [--depths 4,8,16,32,64] [--runs 3] [--no-peers] [--write]

The program is a tanh MLP of `depth` layers, width 32, batch 16, float64,
with a scalar loss:

    h1[b,o] = tanh(x[b,i] w1[i,o] + c1[o])
    ...
    y       = h{depth}[b,o] h{depth}[b,o]

written two ways: as index-notation text (`einvjp.compile(text)`) and as a
traced Python function (`einvjp.compile(fn)` over `einvjp.tanh` and `@`).
A cell is one *first* `prog.vjp(1.0, **inputs)` on NumPy arrays, from a
freshly compiled program (after one warm-up at depth 2 for the imports): it
derives the VJP program, simplifies the forward and the VJP together, writes
the code and runs it once (for the text, the parsing is in `compile`,
outside the cell; for the traced function, the tracing is in the cell).  The
median of `--runs` fresh programs.  Every first call's gradients are checked
against torch autograd in float64 (a wrong answer is never timed).

For context, at the same depth: torch autograd's eager forward + backward
(`loss.backward()`, one thread, median of the runs after one more; it
derives nothing ahead of time) and jax's first `jax.jit(jax.grad(f))` call
(tracing, differentiating and compiling with XLA: jax's own derive-ahead
cost).  `--no-peers` skips them.

`--write` puts the table into bench/README.md between the derive markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import harness

# This checkout's einvjp, not another installed copy.
sys.path.insert(0, os.path.dirname(harness.HERE))

START, END = "<!-- derive:start -->", "<!-- derive:end -->"
BATCH, WIDTH = 16, 32


def mlp_text(depth):
    lines, prev = [], "x[b,i]"
    for k in range(1, depth + 1):
        lines.append(f"h{k}[b,o] = tanh({prev} w{k}[i,o] + c{k}[o])")
        prev = f"h{k}[b,i]"
    lines.append(f"y = {prev} {prev}")
    return "\n".join(lines)


def mlp_fn(depth, lib):
    """The same MLP as a Python function of (x, w1, c1, w2, c2, ...) over
    `lib` (einvjp, torch or jax.numpy): tanh and @."""
    params = ", ".join(f"w{k}, c{k}" for k in range(1, depth + 1))
    body = "".join(f"    h = lib.tanh(h @ w{k} + c{k})\n" for k in range(1, depth + 1))
    namespace = {"lib": lib}
    exec(f"def mlp(x, {params}):\n    h = x\n{body}    return (h * h).sum()\n", namespace)
    return namespace["mlp"]


def inputs(depth, seed=0):
    rng = np.random.default_rng(seed)
    values = {"x": rng.standard_normal((BATCH, WIDTH))}
    for k in range(1, depth + 1):
        values[f"w{k}"] = rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)
        values[f"c{k}"] = 0.1 * rng.standard_normal(WIDTH)
    return values


def torch_reference(depth, values):
    """float64 gradients from torch autograd."""
    import torch
    ts = {n: torch.tensor(v, requires_grad=True) for n, v in values.items()}
    mlp_fn(depth, torch)(*ts.values()).backward()
    return {n: t.grad.numpy() for n, t in ts.items()}


def first_vjp(make, depth, values):
    """Seconds of one first prog.vjp on a fresh program, and its gradients."""
    prog = make(depth)
    t = time.perf_counter()
    grads = prog.vjp(1.0, **values)
    return time.perf_counter() - t, grads


def make_text(depth):
    import einvjp
    return einvjp.compile(mlp_text(depth))


def make_traced(depth):
    import einvjp
    return einvjp.compile(mlp_fn(depth, einvjp))


def einvjp_cell(make, depth, values, want, runs):
    times = []
    for _ in range(runs):
        seconds, grads = first_vjp(make, depth, values)
        for n, g in want.items():
            harness.close(grads[n], g, f"depth {depth}: d/d{n}", 1e-9)
        times.append(seconds)
    return statistics.median(times)


def torch_cell(depth, values, runs):
    import torch
    torch.set_num_threads(1)  # tiny kernels: a second thread only waits at each join
    f = mlp_fn(depth, torch)
    times = []
    for _ in range(runs + 1):
        ts = [torch.tensor(v, requires_grad=True) for v in values.values()]
        t = time.perf_counter()
        f(*ts).backward()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def jax_cell(depth, values, want):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    names = list(values)
    grad = jax.jit(jax.grad(mlp_fn(depth, jnp), argnums=tuple(range(len(names)))))
    args = [jnp.asarray(v) for v in values.values()]
    t = time.perf_counter()
    grads = jax.block_until_ready(grad(*args))
    seconds = time.perf_counter() - t
    for n, g in zip(names, grads):
        harness.close(g, want[n], f"jax depth {depth}: d/d{n}", 1e-9)
    return seconds


def graph_size(depth, values):
    """Nodes of the simplified forward + VJP program (text form)."""
    from einvjp.ir import topo
    g = make_text(depth).graph(**values)
    _, fwd, grads = g.gradients(tuple(values))
    return len(topo(list(fwd) + [x for x in grads if x is not None]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default="4,8,16,32,64")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    depths = [int(d) for d in args.depths.split(",")]
    peers = not args.no_peers
    load_start = harness.loadavg()

    cols = ["depth", "nodes (forward + VJP)", "einvjp text: first vjp (s)",
            "per layer (ms)", "einvjp traced: first vjp (s)"]
    if peers:
        cols += ["torch eager fwd + bwd (ms)", "jax first jit(grad) (s)"]
    warm = inputs(2)  # imports and first-use costs, outside the table
    einvjp_cell(make_text, 2, warm, torch_reference(2, warm), 1)
    einvjp_cell(make_traced, 2, warm, torch_reference(2, warm), 1)
    rows = []
    for depth in depths:
        values = inputs(depth)
        want = torch_reference(depth, values)
        text = einvjp_cell(make_text, depth, values, want, args.runs)
        traced = einvjp_cell(make_traced, depth, values, want, args.runs)
        row = [str(depth), str(graph_size(depth, values)), f"{text:.3f}",
               f"{text / depth * 1e3:.2f}", f"{traced:.3f}"]
        if peers:
            row.append(f"{torch_cell(depth, values, args.runs) * 1e3:.2f}")
        rows.append(row)
        print(" | ".join(row), file=sys.stderr)
    if peers:  # after every torch cell: XLA's threads slow down torch calls that follow
        for depth, row in zip(depths, rows):
            values = inputs(depth)
            row.append(f"{jax_cell(depth, values, torch_reference(depth, values)):.2f}")
    ratio = float(rows[-1][2]) / float(rows[0][2])

    lines = ["## Derivation time vs depth (tanh MLP)", "",
             "`python bench/derive.py` derives the VJP of a tanh MLP of each depth "
             f"(width {WIDTH}, batch {BATCH}, float64, loss Σ h²) and times one *first* "
             "`prog.vjp` on NumPy arrays from a freshly compiled program: derive, simplify "
             "(forward and VJP together), write the code, run it once. Text: index-notation "
             "source (parsed in `compile`, outside the time); traced: a Python function "
             "(traced inside the time). Median of "
             f"{args.runs} fresh programs; gradients checked against torch autograd (float64)."]
    if peers:
        lines += ["For context: torch's eager forward + backward (1 thread; nothing derived "
                  "ahead), "
                  "and jax's first `jit(grad(f))` call (trace, differentiate, XLA compile)."]
    lines += ["", f"- date: {harness.date_utc()}",
              f"- machine: {harness.cpu_name()}, 2 cores; load average {load_start} at start, "
              f"{harness.loadavg()} at end (other processes share the machine)",
              f"- versions: {', '.join(harness.versions(['torch', 'jax'] if peers else []))}",
              f"- command: `{harness.command('bench/derive.py')}`", ""]
    lines += harness.table_head(cols)
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"depth {depths[-1]} / depth {depths[0]} (text): {ratio:.1f}x "
              f"for {depths[-1] // depths[0]}x the layers"]
    text = "\n".join(lines)
    print(text)
    if args.write:
        harness.write_section(START, END, text)


if __name__ == "__main__":
    main()
