"""Random programs (a test extra).

- `programs`: a hypothesis strategy drawing `RandomProgram`s
- `RandomProgram`: one drawn program as index-notation text, as traced Python
  and as a reference, with its inputs and their domains
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import einvjp
from .testing_trees import (LABELS, POSITIVE_OF, UNARY, Emit, Tree, Unfit, once_in,
                            tree_text)

class _Statement:
    def __init__(self, name, labels, terms):
        self.name, self.labels, self.terms = name, list(labels), terms  # terms: [(sign, Tree)]

    def text(self):
        lhs = f"{self.name}[{','.join(self.labels)}]" if self.labels else self.name
        rhs = ""
        for idx, (sign, t) in enumerate(self.terms):
            body = tree_text(t)
            if t.kind == "sum" or (t.kind == "neg" and idx):
                body = f"({body})"
            rhs += ("-" if sign < 0 else "") if idx == 0 else (" - " if sign < 0 else " + ")
            rhs += body
        return f"{lhs} = {rhs}"


class RandomProgram:
    """A generated program: `text` (index notation, with `sizes` for the
    labels no input carries; `compile()` compiles it), `traced_source` (a
    Python function over einvjp.*; `traced()` runs it into a function) and
    `reference_source` (the same meaning over a namespace `L`, with explicit
    einsums and reductions); `inputs` lists (name, shape, domain, as a
    Python number) and `values(seed)` draws them inside their domains."""

    def __init__(self, statements, inputs, sizes, bits):
        self.statements, self.inputs, self.sizes = statements, inputs, dict(sizes)
        self.text = "\n".join(st.text() for st in statements)
        names = [n for n, _, _, _ in inputs]
        sig = ", ".join(names)
        lines = {True: [f"def f({sig}):"], False: [f"def f(L, {sig}):"]}
        for traced in (True, False):
            em = Emit(dict(sizes), traced, bits)
            for st in statements:
                lines[traced].append(f"    {st.name} = {em.statement(st)}")
            lines[traced].append(f"    return {statements[-1].name}")
        self.traced_source = "\n".join(lines[True])
        self.reference_source = "\n".join(lines[False])

    def __repr__(self):
        return (f"RandomProgram(\n# text\n{self.text}\n# traced\n{self.traced_source}\n"
                f"# reference\n{self.reference_source}\n# inputs {self.inputs})")

    def compile(self):
        """The text compiled: an einvjp program."""
        return einvjp.compile(self.text, sizes=self.sizes)

    def traced(self):
        env = {"einvjp": einvjp}
        exec(self.traced_source, env)
        return env["f"]

    def reference(self):
        env = {}
        exec(self.reference_source, env)
        return env["f"]

    def values(self, seed):
        """The inputs, drawn inside their domains."""
        rng = np.random.default_rng(seed)
        out = {}
        for name, shape, domain, number in self.inputs:
            if domain == "real":
                v = rng.uniform(-1, 1, shape)
            elif domain == "pos":
                v = rng.uniform(0.5, 2, shape)
            elif domain == "small":
                v = rng.uniform(-0.1, 0.1, shape)
            else:  # a well-conditioned matrix: diagonally dominant, det > 0
                n = shape[-1]
                v = 0.3 * rng.uniform(-1, 1, shape) + (n + 1) * np.eye(n)
            out[name] = float(v) if number else np.asarray(v, dtype=np.float64)
        return out


def _labels_below(n):
    """Labels occurring below n, not counting those a binder below consumes."""
    if n.kind in ("ref", "one", "delta"):
        return list(n.labels)
    inner = [l for c in n.children() for l in _labels_below(c)]
    bound = n.labels if n.kind == "reduce" else n.pair if (
        n.kind == "mat" and n.fn != "inv") else n.pair[:1] if n.kind == "solve" else ()
    return [l for l in inner if l not in bound]


class _Gen:
    """Draws the trees of one program."""

    def __init__(self, draw, sizes, tensors):
        self.draw, self.sizes = draw, sizes
        self.tensors = tensors  # [(name, labels, domain)]; domain "pos" for positive

    def int(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def pick(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def coin(self, n=2):
        return once_in(self.draw, n)

    def relabel(self, labels):
        out = []
        for lab in labels:
            same = [l for l in LABELS if self.sizes[l] == self.sizes[lab]]
            out.append(lab if not self.coin(3) else self.pick(same))
        return out

    def ref(self, positive=False):
        pool = [t for t in self.tensors if t[2] == "pos"] if positive else \
            [t for t in self.tensors if t[2] not in ("mat",)]
        name, labels, _ = self.pick(pool)
        return Tree("ref", name=name, labels=self.relabel(labels))

    def num(self, texts=("2", "3", "0.5", "1.5", "0.25")):
        t = self.pick(texts)
        return Tree("num", text=t, value=float(t))

    def nonempty(self, labels):
        return [l for l in dict.fromkeys(labels) if self.sizes[l] > 0]

    def expr(self, depth, positive=False):
        if positive:
            return self.positive(depth)
        if depth <= 0:
            r = self.ref()
            return r if not self.coin(3) else Tree("prod", factors=[("*", self.num()), ("*", r)],
                                                 sep=" ")
        form = self.int(0, 11)
        if form == 0:
            return self.ref()
        if form in (1, 2):
            return self.product(depth)
        if form == 3:
            terms = [(1 if k == 0 or self.coin(2) else -1, self.expr(depth - 1))
                     for k in range(self.int(2, 3))]
            return Tree("sum", terms=terms)
        if form == 4:
            return Tree("call", fn=self.pick(UNARY), args=[self.expr(depth - 1)])
        if form == 5:
            return Tree("call", fn=self.pick(POSITIVE_OF + ["log"]), args=[self.positive(depth - 1)])
        if form == 6:
            return Tree("call", fn="maximum", args=[self.expr(depth - 1), self.expr(depth - 1)])
        if form == 7:
            if self.coin(2):
                p = self.pick(["2", "3"])
                return Tree("pow", base=self.expr(depth - 1), exp=p, value=float(p))
            if self.coin(3):
                return Tree("pow", base=self.positive(depth - 1), exp=self.expr(depth - 1))
            p = self.pick(["0.5", "-1", "1.5", "-0.5"])
            return Tree("pow", base=self.positive(depth - 1), exp=p, value=float(p))
        if form in (8, 9):
            arg = self.expr(depth - 1)
            labs = self.nonempty(_labels_below(arg))
            if not labs:
                return arg
            fn = self.pick(["sum", "logsumexp", "max", "mean", "softmax", "log_softmax"])
            lab = self.pick(labs)
            if fn in ("softmax", "log_softmax"):
                return Tree("norm", fn=fn, arg=arg, label=lab)
            return Tree("reduce", fn=fn, arg=arg, labels=[lab], named=True)
        return self.matrix(depth)

    def positive(self, depth):
        form = self.int(0, 6 if depth > 0 else 0)
        if form == 0:
            return self.ref(positive=True)
        if form == 1:
            return Tree("call", fn=self.pick(["exp", "softplus", "sigmoid"]),
                      args=[self.expr(depth - 1)])
        if form == 2:
            sq = Tree("pow", base=self.expr(depth - 1), exp="2", value=2.0)
            return Tree("sum", terms=[(1, Tree("num", text="1", value=1.0)), (1, sq)])
        if form == 3:
            factors = [("*", self.positive(depth - 1)) for _ in range(self.int(2, 3))]
            if self.coin(2):
                factors.insert(0, ("*", self.num()))
            if self.coin(3):
                factors.append(("/", self.positive(depth - 1)))
            return Tree("prod", factors=factors, sep=self.pick([" ", " * "]))
        if form == 4:
            return Tree("call", fn="exp", args=[Tree("call", fn="tanh", args=[self.expr(depth - 1)])])
        if form == 5:
            return Tree("call", fn="sqrt", args=[self.positive(depth - 1)])
        return Tree("call", fn="softplus", args=[self.expr(depth - 1)])

    def product(self, depth):
        factors = [("*", self.expr(depth - 1)) for _ in range(self.int(2, 4) - self.int(0, 1))]
        if self.coin(2):
            factors.insert(0, ("*", self.num()))
        if self.coin(3):
            factors.append(("/", self.positive(depth - 1)))
        if self.coin(4):
            factors.append(("/", self.num(("2", "3", "4"))))
        labs = self.nonempty(l for _, f in factors for l in _labels_below(f))
        if labs and self.coin(4):
            factors.append(("/", Tree("size", label=self.pick(labs))))
        if self.coin(6):
            factors.insert(self.int(0, len(factors)), ("*", Tree("one", labels=[self.pick(LABELS)])))
        if len(factors) == 1:
            factors.insert(0, ("*", self.num()))
        return Tree("prod", factors=factors, sep=self.pick([" ", " ", " * "]))

    def matrix(self, depth):
        r, c = ("i", "j") if self.coin(2) else ("j", "i")
        a = Tree("ref", name="a", labels=[r, c])
        form = self.int(0, 3)
        if form == 0:
            arg = a
        elif form == 1:
            arg = Tree("sum", terms=[(1, a), (-1, Tree("prod", factors=[
                ("*", Tree("num", text="2", value=2.0)), ("*", Tree("ref", name="u", labels=[r, c]))],
                sep=" "))])
        elif form == 2:
            k = self.pick(LABELS)
            inner = Tree("call", fn="tanh", args=[self.expr(depth - 1)])
            pert = Tree("prod", factors=[("*", Tree("num", text="0.1", value=0.1)), ("*", inner)],
                      sep=" ")
            arg = Tree("sum", terms=[(1, a), (1 if self.coin(2) else -1, pert)])
            if set(_labels_below(pert)) - {r, c}:
                arg = a
        else:
            k = self.pick([l for l in LABELS if self.sizes[l] == self.sizes["k"]])
            xx = Tree("prod", factors=[("*", Tree("ref", name="x2", labels=[r, k])),
                                     ("*", Tree("ref", name="x2", labels=[c, k]))], sep=" ")
            arg = Tree("sum", terms=[(1, xx), (1, a)])
        fn = self.pick(["det", "logdet", "inv", "solve"])
        if fn == "solve":
            b = Tree("ref", name="v", labels=[r]) if self.coin(2) else self.ref()
            if r not in _labels_below(b):
                b = Tree("prod", factors=[("*", b), ("*", Tree("ref", name="v", labels=[r]))],
                       sep=" ")
            return Tree("solve", a=arg, b=b, pair=(r, c))
        return Tree("mat", fn=fn, arg=arg, pair=(r, c), named=self.coin(4))

    def statement(self, name, depth, positive):
        nfree = self.int(0, 2)
        free = list(dict.fromkeys(self.pick(LABELS) for _ in range(nfree)))
        terms = [(1 if k == 0 or positive or self.coin(2) else -1,
                  self.expr(depth, positive)) for k in range(self.int(1, 3))]
        terms = [(s, t if t.kind != "sum" else Tree("prod", factors=[("*", self.num()), ("*", t)],
                                                  sep=" ")) for s, t in terms]
        if not positive and "i" in free and "j" not in free and self.coin(6):
            s, t = terms[0]
            f = t.factors if t.kind == "prod" else [("*", t)]
            terms[0] = (s, Tree("prod", factors=[("*", Tree("delta", labels=["i", "j"]))] + f,
                              sep=" "))
        return _Statement(name, free, terms)


@st.composite
def programs(draw, min_statements=2, max_statements=8, max_depth=3):
    """Random `RandomProgram`s of 2–8 statements: products of 2–4 factors
    with coefficients and quotients, parenthesised sums with mixed labels,
    elementwise functions (log, sqrt and fractional powers on positive
    arguments), powers with tensor exponents, reductions, softmax, matrix
    functions of well-conditioned matrices, delta and ones; sizes 0–4.

    >>> from hypothesis import find
    >>> rp = find(programs(max_statements=3), lambda rp: "exp" in rp.text)
    >>> prog = rp.compile()
    >>> values = rp.values(seed=0)             # inside each input's domain
    >>> y = prog(**{n: values[n] for n in prog.input_names})
    >>> grads = prog.vjp(np.ones_like(y), **{n: values[n] for n in prog.input_names})
    >>> sorted(grads) == sorted(n for n, _, _, number in rp.inputs if not number)
    True
    """
    sizes = {}
    for lab in LABELS:
        sizes[lab] = 0 if once_in(draw, 12) else draw(st.integers(1, 4))
    sizes["j"] = sizes["i"]
    g = _Gen(draw, sizes, [])

    def labels(lo, hi):
        return [g.pick(LABELS) for _ in range(g.int(lo, hi))]

    inputs = [("x", labels(1, 2), "real"), ("p", labels(1, 2), "pos"),
              ("w", labels(0, 2), "real"), ("q", labels(0, 1), "pos")]
    inputs = [(n, list(dict.fromkeys(l)), d) for n, l, d in inputs]
    inputs += [("a", ["i", "j"], "mat"), ("u", ["i", "j"], "small"), ("x2", ["i", "k"], "real"),
               ("v", ["i"], "real")]
    g.tensors = [(n, l, d) for n, l, d in inputs]
    number = {"q": not inputs[3][1] and g.coin(2)}
    count = draw(st.integers(min_statements, max_statements))
    statements = []
    for k in range(count):
        name = "y" if k == count - 1 else f"h{k + 1}"
        positive = k < count - 1 and g.coin(3)
        for _ in range(5):
            stmt = g.statement(name, g.int(1, max_depth), positive)
            try:
                for _ in range(3):  # the left's labels must be carried by a term
                    em = Emit(dict(sizes), False, lambda: False)
                    em.statement(stmt)
                    if set(stmt.labels) <= set(em.union):
                        break
                    stmt.labels = [l for l in stmt.labels if l in em.union]
                break
            except Unfit:
                continue
        else:
            stmt = _Statement(name, [], [(1, g.ref())])
        statements.append(stmt)
        g.tensors.append((name, stmt.labels, "pos" if positive else "real"))
    used = set()
    for stmt in statements:
        for _, t in stmt.terms:
            stack = [t]
            while stack:
                n = stack.pop()
                if n.kind == "ref":
                    used.add(n.name)
                stack += n.children()
    ins = [(n, tuple(sizes[l] for l in labs), d, number.get(n, False))
           for n, labs, d in inputs if n in used]
    bits = iter(draw(st.lists(st.booleans(), min_size=64, max_size=64)))
    return RandomProgram(statements, ins, sizes, lambda: next(bits, False))
