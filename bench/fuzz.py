"""Fuzz the core with many generated cases (the einvjp.testing strategies).

    python bench/fuzz.py --examples 5000 [--seed N] [--no-jax]
    python bench/fuzz.py --programs 5000 [--seed N] [--part K/N] [--keep FILE]

`--programs N` fuzzes the program layer instead: N random programs
(`einvjp.testing.programs`), each as index-notation text and as traced
Python, checked by `einvjp.testing.check_program` (values and every
gradient against jax float64, torch autograd, printed programs and
derivatives compiled again).  It prints how many programs it checked and
each distinct disagreement (check and message) with the count of programs
that showed it and the shortest one as a reproducer.  `--part K/N` checks
every N-th of the drawn programs, from the K-th: N processes with the same
seed, K = 0 … N-1, share one run of N programs between them.  `--keep FILE`
appends each disagreeing program to FILE (pickled), since two runs with the
same seed need not draw the same programs: `pickle.load` gives (index,
RandomProgram, input seed, failures) and `check_program(prog, seed)` replays it.

Each case is checked three ways: the forward against numpy.einsum (or the
delta/ones reference for the GE extensions), the VJP against central
differences (check_vjp), and the VJP against jax.vjp in float64 and
complex128.  Failures are collected, not raised: the run reports how many
cases it ran, how many failed, and the first failures with a reproducer.

A reproducer is printed as a call; `random_operands` is
`einvjp.testing.random_operands`.

Hypothesis only draws the cases (`@given` with a counter, no shrinking);
they are then checked in order, the JAX references compiled a chunk of cases
at a time (XLA compilation dominates, and one compilation of many cases is
far cheaper than one each).
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
import time
import traceback

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

import einvjp
from einvjp.testing import (check_program, check_vjp, einsum_cases, is_numpy_einsum,
                            jax_vjp_batch, programs, random_operands, reference_einsum)


def draw(strategy, n, seed):
    """n values of `strategy` (with a seed for their arrays each)."""
    drawn = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy, st.integers(0, 2**31 - 1))
    def collect(value, array_seed):
        drawn.append((value, array_seed))

    if seed is not None:
        collect = hypothesis_seed(seed)(collect)
    collect()
    return drawn[:n]


def draw_cases(n, seed, max_operands):
    """n cases (with an operand seed each) from the strategies."""
    return draw(einsum_cases(max_operands=max_operands), n, seed)


def check_numpy(case, operand_seed):
    eq, shapes, sizes = case
    ops = random_operands(shapes, seed=operand_seed)
    y = np.asarray(einvjp.einsum(eq, *ops, sizes=sizes))
    expected = np.einsum(eq, *ops) if is_numpy_einsum(eq, shapes) else \
        reference_einsum(eq, ops, sizes)
    assert y.shape == np.shape(expected), f"forward shape {y.shape} != {np.shape(expected)}"
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12, err_msg="forward")
    for dtype in (np.float64, np.complex128):
        check_vjp(eq, random_operands(shapes, dtype, operand_seed), sizes,
                  seed=operand_seed % 1000)


def jax_work(case, operand_seed):
    eq, shapes, sizes = case
    work = []
    for dtype in (np.float64, np.complex128):
        ops = random_operands(shapes, dtype, operand_seed)
        shape = np.shape(reference_einsum(eq, ops, sizes))
        work.append((eq, ops, random_operands([shape], dtype, operand_seed + 1)[0], sizes))
    return work


def compare_jax(work, expected):
    for (eq, ops, u, sizes), want in zip(work, expected):
        grads = einvjp.vjp(eq, ops, u, sizes=sizes)
        assert len(grads) == len(ops), f"{len(grads)} gradients for {len(ops)} operands"
        for k, (g, e) in enumerate(zip(grads, want)):
            msg = f"jax: operand {k} {ops[k].dtype}"
            assert np.shape(g) == ops[k].shape, f"{msg}: shape {np.shape(g)}"
            assert np.asarray(g).dtype == ops[k].dtype, f"{msg}: dtype {np.asarray(g).dtype}"
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-11, err_msg=msg)


def jax_references(chunk):
    """jax.vjp of a chunk of cases in one jit; a case JAX rejects is retried
    alone so that it does not hide the others."""
    works = [jax_work(case, s) for case, s in chunk]
    try:
        flat = jax_vjp_batch([item for work in works for item in work])
        return [(work, flat[2 * i:2 * i + 2]) for i, work in enumerate(works)]
    except Exception:
        out = []
        for work in works:
            try:
                out.append((work, jax_vjp_batch(work)))
            except Exception as err:  # JAX itself rejects the case
                out.append((work, err))
        return out


def describe(case, operand_seed):
    eq, shapes, sizes = case
    return (f"einvjp.einsum({eq!r}, *random_operands({[tuple(s) for s in shapes]}, "
            f"seed={operand_seed}), sizes={sizes!r})")


def draw_programs(n, seed):
    """n random programs (with an input seed each)."""
    return draw(programs(), n, seed)


def failure_class(check, message):
    """A disagreement's kind: the check and its message's first line, numbers
    and names of columns left out."""
    first = message.splitlines()[0] if message else ""
    if first.startswith("AssertionError") and len(message.splitlines()) > 3:
        first = "AssertionError: " + " ".join(message.splitlines()[3:5])
    return check, re.sub(r"[0-9.e+-]{2,}|\b\d\b", "#", first)[:160]


def run_programs(n, seed, show, part=(0, 1), keep=None):
    import warnings
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    drawn = draw_programs(n, seed)
    classes, checked, skipped, failed = {}, 0, 0, 0
    for k, (prog, s) in enumerate(drawn):
        if k % part[1] != part[0]:
            continue
        try:
            failures = check_program(prog, s)
        except Exception as err:  # the reference itself failed: a generator bug
            failures = [("reference", f"{type(err).__name__}: {err}")]
        if failures is None:
            skipped += 1
            continue
        checked += 1
        failed += bool(failures)
        for check, message in failures:
            c = classes.setdefault(failure_class(check, message), [])
            c.append((len(prog.text), prog, s, message))
        if failures and keep:
            with open(keep, "ab") as f:  # the program itself: draws differ between runs
                pickle.dump((k, prog, s, failures), f)
        if failures:
            print(f"  program {k} disagreed: {failures[0][0]}: "
                  f"{failures[0][1].splitlines()[0][:120]}", file=sys.stderr, flush=True)
        if (k + 1) % 50 == 0:
            print(f"  {k + 1}/{len(drawn)} programs, {failed} failed, "
                  f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(f"checked {checked} programs ({skipped} outside the reference's domain, not "
          f"compared) in {time.perf_counter() - start:.1f} s: {failed} disagreed, "
          f"{len(classes)} distinct disagreement(s)")
    ordered = sorted(classes.items(), key=lambda kv: -len(kv[1]))
    for (check, first), found in ordered[:show]:
        _, prog, s, message = min(found, key=lambda f: f[0])
        print(f"\n[{check}] in {len(found)} program(s): {first}")
        print(f"  reproducer (inputs: RandomProgram.values({s})):")
        print("\n".join("    " + line for line in prog.text.splitlines()))
        print("  traced:")
        print("\n".join("    " + line for line in prog.traced_source.splitlines()))
        print("  inputs:", prog.inputs)
        print("\n".join("    | " + line for line in message.splitlines()[:8]))
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="number of cases")
    parser.add_argument("--programs", type=int, default=None,
                        help="fuzz this many random programs instead of einsums")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed")
    parser.add_argument("--max-operands", type=int, default=4)
    parser.add_argument("--no-jax", action="store_true", help="skip the jax.vjp comparison")
    parser.add_argument("--chunk", type=int, default=64,
                        help="cases a JAX compilation (default 64)")
    parser.add_argument("--show", type=int, default=5, help="failures to print in full")
    parser.add_argument("--keep", default=None, metavar="FILE",
                        help="with --programs: append each disagreeing program (pickled: "
                             "index, RandomProgram, seed, failures) to FILE")
    parser.add_argument("--part", default="0/1",
                        help="with --programs: check only the drawn programs k with "
                             "k %% N == K (K/N), to share a run among processes")
    args = parser.parse_args(argv)
    if args.programs is not None:
        part = tuple(int(v) for v in args.part.split("/"))
        return run_programs(args.programs, args.seed,
                            args.show if args.show != 5 else 1000, part, args.keep)

    start = time.perf_counter()
    cases = draw_cases(args.examples, args.seed, args.max_operands)
    use_jax = not args.no_jax
    if use_jax:
        try:
            import jax  # noqa: F401
        except ImportError:
            print("jax is not installed: skipping the jax.vjp comparison")
            use_jax = False
    failures, skipped_jax = [], 0
    for i in range(0, len(cases), args.chunk):
        chunk = cases[i:i + args.chunk]
        for case, s in chunk:
            try:
                check_numpy(case, s)
            except Exception as err:
                failures.append((case, s, "numpy/finite differences", err))
        if use_jax:
            for (case, s), (work, expected) in zip(chunk, jax_references(chunk)):
                if isinstance(expected, Exception):
                    skipped_jax += 1
                    continue
                try:
                    compare_jax(work, expected)
                except Exception as err:
                    failures.append((case, s, "jax.vjp", err))
        done = i + len(chunk)
        print(f"  {done}/{len(cases)} cases, {len(failures)} failure(s), "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    failed_cases = {(c.equation, tuple(map(tuple, c.shapes)), repr(c.sizes), s)
                    for c, s, _, _ in failures}
    checks = "numpy, finite differences" + (", jax.vjp" if use_jax else "")
    distinct = len({(c.equation, tuple(map(tuple, c.shapes)), repr(c.sizes)) for c, _ in cases})
    print(f"ran {len(cases)} cases ({distinct} distinct equation/shapes; {checks}) "
          f"in {time.perf_counter() - start:.1f} s: {len(failed_cases)} failed"
          + (f"; {skipped_jax} rejected by jax (not compared)" if skipped_jax else ""))
    for case, s, check, err in failures[:args.show]:
        print(f"\n[{check}] {describe(case, s)}")
        print("".join(traceback.format_exception_only(type(err), err)).rstrip())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
