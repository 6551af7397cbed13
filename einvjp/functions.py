"""The public functions.

- `compile`: index-notation text, or a Python function to trace, as a `Program`
- `dispatch`: an einvjp function (`einvjp.exp`, …) called on tracers (traced) or on
  arrays (run eagerly); installed as the way every `prims.Function` runs outside
  index notation
"""

from __future__ import annotations

import inspect

from .backend import Entry, backend_for, caller
from .errors import ProgramError, SignatureError
from .execute import evaluate
from .lang import TextProgram
from .trace import TracedProgram
from .tracer import Tracer, apply_traced, as_tracer, tracing
from . import prims


def dispatch(fn, args, kwargs):
    """A public function called on tracers (trace it) or on arrays (run it,
    through the backend's `call`: its name, then the arguments as given)."""
    if any(isinstance(a, Tracer) for a in args + tuple(kwargs.values())):
        return apply_traced(fn, _bound(fn, args, kwargs))
    return caller(args + tuple(kwargs.values())).call(_EAGER, fn.name, *args, **kwargs)


def _bound(fn, args, kwargs):
    """The arguments by name, defaults filled in."""
    try:
        bound = _signature(fn).bind(*args, **kwargs)
    except TypeError as err:
        raise SignatureError(f"einvjp.{fn.name}{_signature(fn)}: {err}") from None
    bound.apply_defaults()
    return bound.arguments


_SIGNATURES = {}


def _signature(fn):
    """What a public function takes on tracers and arrays (by its kind)."""
    found = _SIGNATURES.get(fn.name)
    if found is None:
        P = inspect.Parameter
        names = {"elementwise": {1: ["x"], 2: ["x", "y"], 3: ["condition", "x", "y"]}.get(
                     fn.nargs, [f"x{k}" for k in range(fn.nargs)]),
                 "solve": ["a", "b"]}.get(fn.kind, ["x"])
        params = [P(n, P.POSITIONAL_OR_KEYWORD) for n in names]
        if fn.kind == "reduce":
            params += [P("axis", P.POSITIONAL_OR_KEYWORD, default=None),
                       P("keepdims", P.POSITIONAL_OR_KEYWORD, default=False)]
            if fn is prims.logsumexp:
                params.append(P("b", P.KEYWORD_ONLY, default=None))
        elif fn.kind == "normalize":
            params.append(P("axis", P.POSITIONAL_OR_KEYWORD, default=-1))
        found = _SIGNATURES[fn.name] = inspect.Signature(params)
    return found


def _eager(name, *args, **kwargs):
    fn = prims.FUNCTIONS[name]
    arguments = _bound(fn, args, kwargs)
    with tracing() as ctx:
        r = apply_traced(fn, {k: as_tracer(a) if hasattr(a, "shape") else a
                              for k, a in arguments.items()})
    B = backend_for(list(ctx.constants.values()))
    values = {n: B.asarray(v) for n, v in ctx.constants.items()}
    out, = evaluate([r.node()], values, B)
    return out


_EAGER = Entry(_eager)
prims.Function.dispatch = dispatch


def compile(source, **options):  # noqa: A001 - einvjp's public name
    """Compile index-notation text (a string) or trace a Python function.

    Text is one statement a line, `name[labels] = expression`; a label on the
    right that is not on the left is summed over the smallest product that
    holds all its occurrences (or its whole additive term):

    >>> import numpy as np, einvjp
    >>> prog = einvjp.compile("y[i] = x[i,j] w[j] + b[i]")
    >>> prog(x=np.ones((2, 3)), w=np.arange(3.0), b=np.zeros(2))
    array([3., 3.])
    >>> print(prog.derivative("w"))
    ∂l/∂w[p] = ∂l/∂y[i] x[i,p]

    `sizes={"j": 3}` sizes labels that no tensor carries (`y[i,j] = x[i] 1[j]`).
    The language in full — the scope rule, broadcasting, `delta` and `1[…]`,
    every function, matrix functions, `return`, errors — is docs/language.md;
    the rules the derivatives follow are docs/notation.md.

    Usable as a decorator: `@einvjp.compile` over a function written with
    einvjp.einsum, einvjp.exp, … and `+ - * / **` (NumPy broadcasting, axis
    arguments), traced once per input signature."""
    if isinstance(source, str):
        return TextProgram(source, **options)
    if callable(source):
        return TracedProgram(source)
    raise ProgramError(f"compile() takes index-notation text or a function, not "
                       f"{type(source).__name__}")
