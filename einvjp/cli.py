"""The `einvjp` command: derive, check, demo, emit.

    einvjp derive "ik,kj->ij" --wrt 0 --names x,a
    einvjp check "bhqd,bhkd->bhqk" --shapes 2x3x4x5,2x3x6x5
    einvjp demo
    einvjp emit layer_norm.ein --backend torch --shape x=64x1024 --shape gamma=1024 \
        --shape beta=1024 --number eps=1e-5 -o layer_norm.py
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

from .core import einsum, vjp
from .derive import derive
from .equation import ELLIPSIS, parse
from .errors import EinvjpError
from .functions import compile as compile_program


def _parse_shapes(text):
    """'3x4,4x5' -> [(3, 4), (4, 5)]; '' or '-' is a 0-d operand (an
    argparse type: a malformed value is a usage error)."""
    shapes = []
    for part in text.split(","):
        part = part.strip()
        dims = [] if part in ("", "-", "()") else part.split("x")
        if not all(d.strip().isdigit() for d in dims):
            raise argparse.ArgumentTypeError(
                f"{text!r}: each shape is sizes joined by x, e.g. 3x4,4x5 ('-' for a scalar)")
        shapes.append(tuple(int(d) for d in dims))
    return shapes


def _parse_size(item):
    """'j=5' -> ('j', 5) (an argparse type)."""
    label, eq, size = item.partition("=")
    if not eq or not label.strip() or not size.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{item!r}: give a label and its size, e.g. j=5")
    return label.strip(), int(size)


def _default_shapes(equation, sizes):
    """A small random-free choice: label n gets size 2 + n % 3, '...' is (2,)."""
    spec = parse(equation)
    letters = sorted({lab for t in spec.inputs for lab in t.letters})
    size = {lab: sizes.get(lab, 2 + n % 3) for n, lab in enumerate(letters)}
    return [tuple(d for lab in t.labels for d in ((2,) if lab == ELLIPSIS else (size[lab],)))
            for t in spec.inputs]


def _parse_input_shape(item):
    """'x=64x1024' -> ('x', (64, 1024)); 'c=-' is a 0-d array (an argparse type)."""
    name, eq, dims = item.partition("=")
    try:
        shapes = _parse_shapes(dims) if eq and name.strip().isidentifier() else []
    except argparse.ArgumentTypeError:
        shapes = []
    if len(shapes) != 1:
        raise argparse.ArgumentTypeError(
            f"{item!r}: give an input and its shape, e.g. x=64x1024 ('x=-' for 0-d)")
    return name.strip(), shapes[0]


def _parse_number(item):
    """'eps=1e-5' -> ('eps', 1e-05); an integer stays one (an argparse type)."""
    name, eq, text = item.partition("=")
    try:
        value = int(text) if text.strip().lstrip("+-").isdigit() else float(text)
    except ValueError:
        value = None
    if not eq or not name.strip().isidentifier() or value is None:
        raise argparse.ArgumentTypeError(f"{item!r}: give an input and a number, e.g. eps=1e-5")
    return name.strip(), value


def cmd_emit(args, out):
    path = pathlib.Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        print(f"einvjp: error: cannot read {args.file}: {err.strerror}", file=sys.stderr)
        return 2
    prog = compile_program(text)
    values = dict(args.shape or ())
    values.update(args.number or ())
    name = args.name or "".join(c if c.isalnum() else "_" for c in path.stem).strip("_")
    if not name.isidentifier():
        name = "program"
    text = prog.source(args.backend, name=name, **values)
    if args.output:
        pathlib.Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: {name} for {args.backend}", file=out)
    else:
        out.write(text)
    return 0


def cmd_derive(args, out):
    n = len(parse(args.equation).inputs)
    for k in ([args.wrt] if args.wrt is not None else range(n)):
        d = derive(args.equation, wrt=k, names=args.names)
        if args.format == "einsum":
            print(d.equation, file=out)
        elif args.format == "latex":
            print(d.latex(), file=out)
        else:
            print(f"operand {k}:", file=out)
            for line in d.steps:
                print("  " + line, file=out)
            print(f"  as a GE: {d.equation}", file=out)
    return 0


def check(equation, shapes, sizes=None, seed=0, dtype="float64"):
    """Largest |VJP - central difference| over the operands (random-projection
    check in float64): returns (max_error, per-operand errors)."""
    rng = np.random.default_rng(seed)
    ops = [rng.standard_normal(s).astype(dtype) for s in shapes]
    y = einsum(equation, *ops, sizes=sizes)
    u = rng.standard_normal(np.shape(y))
    grads = vjp(equation, ops, u, sizes=sizes)
    errors, eps = [], 1e-6
    for k, (x, g) in enumerate(zip(ops, grads)):
        v = rng.standard_normal(x.shape)
        plus = [o if j != k else x + eps * v for j, o in enumerate(ops)]
        minus = [o if j != k else x - eps * v for j, o in enumerate(ops)]
        fd = np.sum((einsum(equation, *plus, sizes=sizes) - einsum(equation, *minus, sizes=sizes)) * u) / (2 * eps)
        errors.append(abs(float(np.sum(g * v)) - float(fd)) / max(1.0, abs(float(fd))))
    return max(errors, default=0.0), errors


def cmd_check(args, out):
    sizes = dict(args.size or ())
    shapes = args.shapes if args.shapes is not None else _default_shapes(args.equation, sizes)
    worst, errors = check(args.equation, shapes, sizes or None, seed=args.seed)
    print(f"{args.equation}  shapes {shapes}", file=out)
    for k, e in enumerate(errors):
        print(f"  operand {k}: relative error {e:.2e}", file=out)
    ok = worst < args.tol
    print(f"max error {worst:.2e}  ({'ok' if ok else 'FAILED'}, tolerance {args.tol:g})", file=out)
    return 0 if ok else 1


LAYER_NORM = """\
m[b]    = x[b,h] / H
mu[b,h] = x[b,h] - m[b]
v[b]    = mu[b,h]^2 / H
s[b]    = sqrt(v[b] + eps)
y[b,h]  = mu[b,h] / s[b] * gamma[h] + beta[h]"""

LAYER_NORM_BY_HAND = """\
∂l/∂gamma[q] = g[b,q] mu[b,q] / s[b]
∂l/∂beta[q]  = g[b,q] 1[b]
∂l/∂x[p,q]   = g[p,q] gamma[q] / s[p] - g[p,h] gamma[h] / H (1[q] / s[p] + mu[p,h] mu[p,q] / s[p]^3)"""


def _layer_norm_closed_form(dy, x, eps, gamma):
    """The layer norm's gradients derived by hand (docs/notation.md), in NumPy."""
    H = x.shape[1]
    mu = x - x.mean(1, keepdims=True)
    s = np.sqrt((mu ** 2).mean(1, keepdims=True) + eps)
    t = (dy * gamma).sum(1, keepdims=True)
    u = (dy * gamma * mu).sum(1, keepdims=True)
    return {"x": dy * gamma / s - (t / s + u * mu / s ** 3) / H,
            "gamma": (dy * mu / s).sum(0), "beta": dy.sum(0)}


def cmd_demo(args, out):
    print("einvjp demo: derivatives in index notation, derived and checked\n", file=out)
    print("1. A layer norm, written in index notation:\n", file=out)
    for line in LAYER_NORM.splitlines():
        print("   " + line, file=out)
    prog = compile_program(LAYER_NORM)
    print("\n   derived by hand, with g = ∂l/∂y:\n", file=out)
    for line in LAYER_NORM_BY_HAND.splitlines():
        print("   " + line, file=out)
    print("\n   einvjp derives:\n", file=out)
    for name in ("gamma", "beta", "x"):
        print(f"   {prog.derivative(name)}", file=out)
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(8, 16)), "eps": 1e-5,
              "gamma": rng.normal(size=16), "beta": rng.normal(size=16)}
    dy = rng.normal(size=(8, 16))
    got = prog.vjp(dy, **inputs)
    want = _layer_norm_closed_form(dy, inputs["x"], inputs["eps"], inputs["gamma"])
    print("\n   checked against the closed form derived by hand on random 8x16 inputs:",
          file=out)
    for name, w in want.items():
        err = float(np.max(np.abs(got[name] - w)))
        print(f"   max |einvjp - by hand| for ∂l/∂{name}: {err:.1e}", file=out)
        if not err < 1e-9:
            print("   FAILED", file=out)
            return 1
    print("\n2. One einsum: y[i,j] = x[i,k] a[k,j], derived step by step:", file=out)
    for line in derive("ik,kj->ij", wrt=0, names=("x", "a")).steps:
        print("   " + line, file=out)
    print("\n3. Deltas that survive become diagonal embeddings, lone labels broadcasts:", file=out)
    for eq in ("ii->i", "ij->i", "ab,bc->aaca"):
        for k in range(len(parse(eq).inputs)):
            d = derive(eq, wrt=k)
            print(f"   {eq:12s} wrt {k}:  {d}    [{d.equation}]", file=out)
    print("\n4. Float64 check of einvjp.vjp against central differences:", file=out)
    for eq, shapes, sizes in (("ik,kj->ij", [(3, 4), (4, 5)], None),
                              ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)], None),
                              ("ii,ij->j", [(4, 4), (4, 3)], None),
                              ("...j,...j->...j", [(2, 1, 3), (5, 3)], None),
                              ("i->ij", [(3,)], {"j": 4})):
        worst, _ = check(eq, shapes, sizes)
        print(f"   {eq:18s} {str(shapes):28s} max error {worst:.1e}", file=out)
        if not worst < 1e-6:
            print("   FAILED", file=out)
            return 1
    return 0


def main(argv=None, out=None):
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="einvjp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("derive", help="print the VJPs of an equation with their derivation")
    p.add_argument("equation")
    p.add_argument("--wrt", type=int, default=None, help="operand index (default: all)")
    p.add_argument("--format", choices=("text", "einsum", "latex"), default="text")
    p.add_argument("--names", default=None, help="operand names, e.g. x,a")
    p.set_defaults(run=cmd_derive)
    p = sub.add_parser("check", help="float64 numerical check of the VJPs on random inputs")
    p.add_argument("equation")
    p.add_argument("--shapes", type=_parse_shapes, default=None,
                   help="e.g. 3x4,4x5 (default: small sizes)")
    p.add_argument("--size", type=_parse_size, action="append",
                   help="size of an output-only label, e.g. j=5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-6)
    p.set_defaults(run=cmd_check)
    p = sub.add_parser("demo", help="the main demo")
    p.set_defaults(run=cmd_demo)
    p = sub.add_parser("emit", help="write a program and its VJP as a standalone module")
    p.add_argument("file", help="a file holding the program in index notation")
    p.add_argument("--backend", choices=("numpy", "torch", "jax"), default="numpy")
    p.add_argument("--shape", type=_parse_input_shape, action="append",
                   help="an array input's shape, e.g. x=64x1024 ('x=-' for 0-d)")
    p.add_argument("--number", type=_parse_number, action="append",
                   help="a number input, written into the code, e.g. eps=1e-5")
    p.add_argument("--name", default=None,
                   help="the function's name (default: the file's name)")
    p.add_argument("-o", "--output", default=None, help="the file to write (default: stdout)")
    p.set_defaults(run=cmd_emit)
    args = parser.parse_args(argv)
    try:
        code = args.run(args, out)
        out.flush()
        return code
    except EinvjpError as err:
        print(f"einvjp: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `einvjp demo | head`: the reader left; no traceback
        # Python flushes stdout again at exit: point it at devnull first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
