"""Index-notation text: one statement a line (the language in full:
docs/language.md).

    m[b]    = x[b,h] / H
    mu[b,h] = x[b,h] - m[b]
    v[b]    = mu[b,h]^2 / H
    s[b]    = sqrt(v[b] + eps)
    y[b,h]  = mu[b,h] / s[b] * gamma[h] + beta[h]

Rules:
  * `+ - * / ^` (or `**`), parentheses, function calls; writing two factors
    side by side multiplies them (`s[i] t[i]`, `2 x[i]`).
  * The scope rule: the right-hand side is split at its outermost `+`/`-`
    into top-level terms, each on its own.  In a term, a label that is not on
    the left is summed over the smallest product (two or more factors, side
    by side or joined by `*` or `/`) holding all its occurrences, else over
    the term.  Parenthesised sums, function arguments, powers and
    comparisons are not scopes (a product inside them is).  So `x[b,h] / H`
    sums h over the term, `exp(x[i]) / (1[j] exp(x[j]))` sums j in the
    denominator, `sqrt(x[i] x[i])` is a norm, `(x[i] - 2 x[i])^2` sums i over
    the square and `1 (x[i] + 2 x[i])` over the product.  A reduction binds
    the labels it reduces (`logsumexp(z[b,c], c) - t[b,c] z[b,c]`: two
    different c), as det and logdet bind their rows and columns.
  * A term missing a label of the left broadcasts along it.
  * `delta[i,j]` (or `δ[i,j]`) and `1[i]` are the Kronecker delta and the
    one-tensor; neither is materialised (a delta renames, a one-tensor
    broadcasts or, summed, counts).
  * An unbound upper-case name that is an index's name upper-cased (`H` for
    h) is that index's size; other unbound names are inputs (tensors if
    indexed, scalars otherwise).
  * Reductions take the labels they reduce: `logsumexp(x[b,j], j)`,
    `max(x[b,j], j)`; without them they reduce every label of the argument
    not needed outside.  `softmax(x[b,j], j)` normalises over j (default: the
    argument's last label).  Matrix functions (`inv`, `det`, `logdet`,
    `solve(a, b)`) act on the argument's last two labels (rows, columns).
  * The last statement is the output unless `return a, b` names others.
  * `compile(text, sizes={"i": 2})` sizes a label that no tensor carries
    (`y[i] = 1[i] x`).

>>> prog = compile_text('''
...     y[i,j] = x[i,k] a[k,j]
... ''')
>>> prog.input_names
['x', 'a']
>>> print(prog.derivative("x"))
∂l/∂x[p,q] = ∂l/∂y[p,j] a[q,j]
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .equation import checked_sizes
from .errors import ProgramError
from .ge import Index
from .ir import (Dim, Expr, Input, add, axes, const, contract, materialize, product, total)
from . import prims
from .program import Graph, Program

# --- Tokens and syntax tree ---------------------------------------------------

_OPS = ["**", ">=", "<=", "==", "!=", "[", "]", "(", ")", ",", "=", "+", "-", "*", "/",
        "^", "<", ">", "·", "×", "−"]


@dataclass
class Tok:
    kind: str   # "name", "num", "op", "end"
    text: str
    col: int


def _tokens(line, where):
    toks, i = [], 0
    while i < len(line):
        ch = line[i]
        if ch in " \t":
            i += 1
        elif ch == "#":
            break
        elif ch.isdigit() or (ch == "." and line[i + 1:i + 2].isdigit()):
            j = i
            while j < len(line) and (line[j].isdigit() or line[j] == "."):
                j += 1
            if j < len(line) and line[j] in "eE" and (line[j + 1:j + 2].isdigit() or (
                    line[j + 1:j + 2] in ("+", "-") and line[j + 2:j + 3].isdigit())):
                j += 2
                while j < len(line) and line[j].isdigit():
                    j += 1
            if line.count(".", i, j) > 1 or line[j:j + 1] == ".":
                k = j
                while k < len(line) and (line[k].isalnum() or line[k] == "."):
                    k += 1
                raise where.error(f"malformed number {line[i:k]!r}", i)
            toks.append(Tok("num", line[i:j], i))
            i = j
        elif ch.isalpha() or ch == "_":
            j = i
            while j < len(line) and (line[j].isalnum() or line[j] == "_"):
                j += 1
            toks.append(Tok("name", line[i:j], i))
            i = j
        else:
            op = next((o for o in _OPS if line.startswith(o, i)), None)
            if op is None:
                raise where.error(f"unexpected character {ch!r}", i)
            toks.append(Tok("op", {"·": "*", "×": "*", "−": "-", "**": "^"}.get(op, op), i))
            i += len(op)
    toks.append(Tok("end", "", len(line.rstrip())))
    return toks


@dataclass
class Num:
    value: object
    col: int


@dataclass
class Name:
    name: str
    col: int


@dataclass
class Ref:
    name: str
    labels: list          # [(label, col)]
    col: int


@dataclass
class One:
    labels: list
    col: int


@dataclass
class Delta:
    labels: list
    col: int


@dataclass
class Call:
    name: str
    args: list
    col: int


@dataclass
class Neg:
    arg: object
    col: int


@dataclass
class Sum:
    terms: list           # [(sign, expr)]
    col: int
    paren: bool = False   # written in parentheses: one term of what holds it


@dataclass
class Prod:
    factors: list         # [(op, expr)] with op "*" or "/"
    col: int


@dataclass
class Pow:
    base: object
    exp: object
    col: int


@dataclass
class Cmp:
    op: str
    a: object
    b: object
    col: int


@dataclass
class Statement:
    name: str
    labels: list          # [(label, col)]
    expr: object
    line: int
    text: str
    col: int = 0


@dataclass
class Where:
    """A line of the source, for errors with a caret."""
    line: int
    text: str

    def error(self, message, col):
        return ProgramError(f"line {self.line}, column {col + 1}: {message}",
                            equation=self.text, position=col)


class _Parser:
    def __init__(self, toks, where):
        self.toks, self.i, self.where = toks, 0, where

    @property
    def tok(self):
        return self.toks[self.i]

    def take(self, text=None, kind=None):
        t = self.tok
        if (text is not None and t.text != text) or (kind is not None and t.kind != kind):
            want = repr(text) if text else f"a {kind}"
            got = repr(t.text) if t.kind != "end" else "the end of the line"
            raise self.where.error(f"expected {want}, found {got}", t.col)
        self.i += 1
        return t

    def at(self, text):
        return self.tok.kind == "op" and self.tok.text == text

    def labels(self):
        self.take("[")
        labs = []
        if not self.at("]"):
            while True:
                t = self.take(kind="name")
                labs.append((t.text, t.col))
                if self.at("]"):
                    break
                self.take(",")
        self.take("]")
        return labs

    def expr(self):
        a = self.sum()
        if self.tok.kind == "op" and self.tok.text in ("<", ">", "<=", ">=", "==", "!="):
            op = self.take()
            a = Cmp(op.text, a, self.sum(), op.col)
        return a

    def sum(self):
        col = self.tok.col
        terms = [(1, self.term())]
        while self.at("+") or self.at("-"):
            sign = 1 if self.take().text == "+" else -1
            terms.append((sign, self.term()))
        return terms[0][1] if len(terms) == 1 else Sum(terms, col)

    def _starts_atom(self):
        t = self.tok
        return t.kind in ("name", "num") or (t.kind == "op" and t.text == "(")

    def term(self):
        col = self.tok.col
        factors = [("*", self.unary())]
        while True:
            if self.at("*") or self.at("/"):
                factors.append((self.take().text, self.unary()))
            elif self._starts_atom():
                factors.append(("*", self.unary()))
            else:
                break
        return factors[0][1] if len(factors) == 1 else Prod(factors, col)

    def unary(self):
        if self.at("-"):
            col = self.take().col
            return Neg(self.unary(), col)
        if self.at("+"):
            self.take()
            return self.unary()
        base = self.atom()
        if self.at("^"):
            col = self.take().col
            return Pow(base, self.unary(), col)
        return base

    def atom(self):
        t = self.tok
        if t.kind == "num":
            self.take()
            if self.at("[") and t.text == "1":
                return One(self.labels(), t.col)
            text = t.text
            value = Fraction(text) if all(c.isdigit() or c == "." for c in text) else float(text)
            return Num(value, t.col)
        if t.kind == "name":
            self.take()
            if self.at("["):
                labs = self.labels()
                if t.text in ("delta", "δ"):
                    if len(labs) != 2:
                        raise self.where.error("delta takes two labels", t.col)
                    return Delta(labs, t.col)
                return Ref(t.text, labs, t.col)
            if self.at("("):
                self.take("(")
                args = []
                if not self.at(")"):
                    while True:
                        args.append(self.expr())
                        if self.at(")"):
                            break
                        self.take(",")
                self.take(")")
                return Call(t.text, args, t.col)
            return Name(t.text, t.col)
        if self.at("("):
            self.take("(")
            e = self.expr()
            self.take(")")
            if isinstance(e, Sum):
                e.paren = True
            return e
        got = repr(t.text) if t.kind != "end" else "the end of the line"
        raise self.where.error(f"expected a value, found {got}", t.col)


def parse_program(text):
    """Statements and the returned names of a program's text."""
    statements, returns = [], None
    for n, line in enumerate(text.splitlines(), start=1):
        where = Where(n, line)
        toks = _tokens(line, where)
        if toks[0].kind == "end":
            continue
        if returns is not None:
            raise where.error("nothing may follow 'return'", toks[0].col)
        p = _Parser(toks, where)
        if toks[0].text == "return" and toks[0].kind == "name":
            p.take()
            returns = []
            while True:
                t = p.take(kind="name")
                returns.append((t.text, t.col, where))
                if p.tok.kind == "end":
                    break
                p.take(",")
            continue
        name = p.take(kind="name")
        labels = p.labels() if p.at("[") else []
        p.take("=")
        expr = p.expr()
        if p.tok.kind != "end":
            raise where.error(f"unexpected {p.tok.text!r}", p.tok.col)
        statements.append(Statement(name.text, labels, expr, n, line, name.col))
    if not statements:
        raise ProgramError("the program has no statement")
    return statements, returns


# --- Label occurrences -----------------------------------------------------------


def _children(e):
    if isinstance(e, Sum):
        return [t for _, t in e.terms]
    if isinstance(e, Prod):
        return [f for _, f in e.factors]
    if isinstance(e, Call):
        return e.args
    if isinstance(e, Neg):
        return [e.arg]
    if isinstance(e, Pow):
        return [e.base, e.exp]
    if isinstance(e, Cmp):
        return [e.a, e.b]
    return []


def occurrences(e, out=None):
    """Label names in order of first appearance, with repeats (a list)."""
    out = [] if out is None else out
    if isinstance(e, (Ref, One, Delta)):
        out += [lab for lab, _ in e.labels]
    for c in _children(e):
        occurrences(c, out)
    return out


def labels_of(e):
    return list(dict.fromkeys(occurrences(e)))


# --- Binding: text + input shapes -> graph ------------------------------------------

_PLACEHOLDER = 4  # the size every label gets when a program is printed without inputs


class TextProgram(Program):
    """A program written in index notation (see the module docstring)."""

    def __init__(self, text, sizes=None):
        self.text = text
        self.sizes = checked_sizes(sizes)  # label -> size, for labels no tensor carries
        self.statements, returns = parse_program(text)
        self.label_names = set()
        for st in self.statements:
            self.label_names.update(lab for lab, _ in st.labels)
            self.label_names.update(occurrences(st.expr))
        defined = {}
        self.input_names = []
        for st in self.statements:
            self._find_inputs(st, st.expr, defined)
            if st.name in defined:
                raise Where(st.line, st.text).error(
                    f"{st.name!r} is assigned twice (first on line {defined[st.name].line})",
                    st.col)
            defined[st.name] = st
        for st in self.statements:
            if st.name in self.input_names:
                raise Where(st.line, st.text).error(
                    f"{st.name!r} is used before it is assigned", st.col)
        self.defined = defined
        for st in self.statements:
            for e in _walk(st.expr):
                if isinstance(e, Call) and e.name not in prims.FUNCTIONS:
                    raise Where(st.line, st.text).error(f"unknown function {e.name!r}", e.col)
        if returns is None:
            self.returns = [self.statements[-1].name]
        else:
            for name, col, where in returns:
                if name not in defined:
                    raise where.error(f"undefined name {name!r} in return", col)
            self.returns = [name for name, _, _ in returns]
        self._graphs = {}

    def is_size(self, name):
        return name.isupper() and name.lower() in self.label_names

    def _find_inputs(self, st, e, defined):
        if isinstance(e, (Ref, Name)) and e.name not in defined and not (
                isinstance(e, Name) and (self.is_size(e.name) or e.name in self.label_names)):
            if e.name not in self.input_names:
                self.input_names.append(e.name)
        for c in _children(e):
            self._find_inputs(st, c, defined)

    def __repr__(self):
        return f"TextProgram(inputs={self.input_names}, outputs={self.returns})"

    def __str__(self):
        lines = [st.text.strip() for st in self.statements]
        if self.returns != [self.statements[-1].name]:
            lines.append("return " + ", ".join(self.returns))
        return "\n".join(lines)

    def _graph_for(self, values):
        sig = tuple((n, None if isinstance(values[n], (int, float, complex))
                     else tuple(int(d) for d in values[n].shape)) for n in self.input_names)
        g = self._graphs.get(sig)
        if g is None:
            g = self._graphs[sig] = _Binder(self, dict(sig)).graph()
        return g

    def _symbolic_graph(self):
        g = self._graphs.get("symbolic")
        if g is None:
            g = self._graphs["symbolic"] = _Binder(self, None).graph()
        return g


class _Binder:
    """Elaborates the statements at given input shapes (None: placeholder
    sizes, for printing) into a Graph."""

    def __init__(self, prog, shapes):
        self.prog, self.shapes = prog, shapes
        self.inputs, self.tensors, self.sizes = {}, {}, {}

    def graph(self):
        for st in self.prog.statements:
            self.where = Where(st.line, st.text)
            node = self.statement(st)
            if node.name is None and not isinstance(node, Input):
                node.name = st.name
            self.tensors[st.name] = node
        outputs = [self.tensors[n] for n in self.prog.returns]
        return Graph(self.inputs, outputs, self.prog.returns)

    def error(self, message, col):
        return self.where.error(message, col)

    # sizes ----------------------------------------------------------------

    def _tensor(self, name, labels, col):
        """The node a reference names, and its shape."""
        if name in self.tensors:
            node = self.tensors[name]
            if len(labels) != node.ndim:
                raise self.error(f"{name!r} has {node.ndim} label(s), not {len(labels)}", col)
            return node
        if name in self.prog.defined:
            raise self.error(f"undefined name {name!r}: it is assigned on line "
                             f"{self.prog.defined[name].line}, after this use", col)
        node = self.inputs.get(name)
        if node is None:
            if self.shapes is None:
                shape = tuple(Dim(_PLACEHOLDER, lab.upper()) for lab, _ in labels)
            else:
                shape = self.shapes[name]
                if shape is None:
                    if labels:
                        raise self.error(f"{name!r} is indexed but a scalar was given", col)
                    shape = ()
            node = self.inputs[name] = Input(name, shape)
        if len(labels) != node.ndim:
            raise self.error(f"input {name!r} has {node.ndim} dimension(s) "
                             f"{tuple(int(s) for s in node.shape)} but is indexed with "
                             f"{len(labels)} label(s)", col)
        return node

    def _sizes(self, e, env):
        if isinstance(e, Ref):
            node = self._tensor(e.name, e.labels, e.col)
            for (lab, col), size in zip(e.labels, node.shape):
                self._bind(lab, int(size), col, env, e.name)
        elif isinstance(e, Name) and not self.prog.is_size(e.name) \
                and e.name not in self.prog.label_names:
            node = self._tensor(e.name, [], e.col)
        for c in _children(e):
            self._sizes(c, env)

    def _bind(self, lab, size, col, env, what):
        if lab in env and env[lab][0] != size:
            raise self.error(f"label {lab!r} has size {size} here ({what}) but "
                             f"{env[lab][0]} earlier in the statement ({env[lab][1]})", col)
        env.setdefault(lab, (size, what))
        self.sizes.setdefault(lab, size)

    def statement(self, st):
        env = {}
        self._sizes(st.expr, env)
        deltas = [e for e in _walk(st.expr) if isinstance(e, Delta)]
        for _ in deltas:  # a delta gives each of its labels the other's size
            for e in deltas:
                (a, _ca), (b, _cb) = e.labels
                if a in env and b not in env:
                    env[b] = (env[a][0], f"delta[{a},{b}]")
                elif b in env and a not in env:
                    env[a] = (env[b][0], f"delta[{a},{b}]")
        for lab in list(self.prog.sizes):
            if lab not in env and (lab in occurrences(st.expr) or
                                   lab in [name for name, _ in st.labels]):
                env[lab] = (int(self.prog.sizes[lab]), "sizes=")
        for e in _walk(st.expr):
            if isinstance(e, (One, Delta)):
                for lab, col in e.labels:
                    if lab not in env:
                        if lab in self.sizes:
                            env[lab] = (self.sizes[lab], "earlier statements")
                        else:
                            raise self.error(f"label {lab!r} has no size: no tensor in the "
                                             f"statement carries it", col)
            if isinstance(e, Delta):
                (a, ca), (b, cb) = e.labels
                if env[a][0] != env[b][0]:
                    raise self.error(f"delta[{a},{b}] joins sizes {env[a][0]} and "
                                     f"{env[b][0]}", e.col)
        for lab, col in st.labels:
            if lab not in env:
                raise self.error(f"label {lab!r} on the left is carried by no term on the "
                                 f"right, so it cannot be broadcast (its size is unknown)", col)
        if len({lab for lab, _ in st.labels}) != len(st.labels):
            raise self.error("a label repeats on the left; write the diagonal with delta",
                             st.labels[0][1])
        self.index = {lab: Index(lab, Dim(size, lab.upper())) for lab, (size, _) in env.items()}
        lhs = [self.index[lab] for lab, _ in st.labels]
        free = {lab for lab, _ in st.labels}
        terms = st.expr.terms if isinstance(st.expr, Sum) and not st.expr.paren \
            else [(1, st.expr)]
        built = []
        for sign, t in terms:
            self.scopes = _Scopes(self, t, free)
            built.append((self.term(t), sign))
        if not any(ren for (_, ren), _ in built):
            return materialize(total(*[(e, s) for (e, _), s in built], out=None), lhs) \
                if len(built) > 1 else materialize(_times(built[0][0][0], built[0][1]), lhs)
        out = axes(Input("", [l.size for l in lhs]), [l.name for l in lhs])
        nodes = [(materialize(e, [ren.get(l, l) for l in lhs]), out, s) for (e, ren), s in built]
        return add(nodes, out)

    # building ----------------------------------------------------------------

    def label(self, name, alias):
        return self.index[alias.get(name, name)]

    def term(self, t):
        """A top-level term, its dummy labels summed: (Expr, renames of left
        labels made by deltas)."""
        if isinstance(t, Prod):
            return self.scope(t, {}, top=True)
        x = self.build(t, {})
        summed = {self.index[n] for n in self.scopes.summed.get(id(t), ())}
        return product(x, out=[l for l in x.labels if l not in summed]), {}

    def scope(self, e, alias, top=False):
        """A product: its factors multiplied, the labels whose scope it is
        summed.  Returns (Expr, renames of left labels made by deltas)."""
        here = set(self.scopes.summed.get(id(e), ()))
        renames, kept = {}, []
        alias = dict(alias)
        for _, f in e.factors:
            if isinstance(f, Delta):
                (a, ca), (b, cb) = f.labels
                a, b = alias.get(a, a), alias.get(b, b)
                if a == b:
                    continue
                if b not in here and a in here:
                    a, b = b, a
                if b not in here:
                    if not (top and a in self.scopes.free and b in self.scopes.free):
                        kept.append(f)  # both labels live on outside: an identity factor
                        continue
                    renames[self.index[b]] = self.index[a]
                for k, v in list(alias.items()):
                    if v == b:
                        alias[k] = a
                alias[b] = a
        exprs, coeff, ones = [], 1, []
        for op, f in e.factors:
            if isinstance(f, Delta) and not any(f is k for k in kept):
                continue
            if isinstance(f, One):
                ones += [alias.get(l, l) for l, _ in f.labels]
                continue
            x = self.build(f, alias)
            if op == "/":
                if x.constant is not None:
                    coeff = x.constant.inverse() * coeff
                    continue
                x = prims.reciprocal(x)
            exprs.append(x)
        present = list(dict.fromkeys([l for x in exprs for l in x.labels] +
                                     [self.index[n] for n in ones]))
        summed = {self.index[alias.get(n, n)] for n in here if alias.get(n, n) in here}
        out = [l for l in present if l not in summed]
        return product(*exprs, out=out, coeff=coeff,
                       summed=[self.index[n] for n in ones]), renames

    def build(self, e, alias):
        if isinstance(e, Num):
            return const(e.value)
        if isinstance(e, Name):
            if e.name in self.tensors:
                return Expr(self.tensors[e.name], ())
            if self.prog.is_size(e.name):
                lab = e.name.lower()
                size = self.index[lab].size if lab in self.index else Dim(self.sizes[lab],
                                                                          e.name)
                return const(size)
            if e.name in self.prog.label_names:
                raise self.error(f"label {e.name!r} used as a value", e.col)
            return Expr(self._tensor(e.name, [], e.col), ())
        if isinstance(e, Ref):
            node = self._tensor(e.name, e.labels, e.col)
            labs = [self.label(lab, alias) for lab, _ in e.labels]
            if len(set(labs)) < len(labs):
                d = list(dict.fromkeys(labs))
                return Expr(contract([(node, labs)], d), d)
            return Expr(node, labs)
        if isinstance(e, One):
            labs = list(dict.fromkeys(self.label(lab, alias) for lab, _ in e.labels))
            return product(out=labs)
        if isinstance(e, Delta):
            # Not a factor of a product: nothing to rename, so the identity
            # (a diagonal embedding of 1, never an array of its own).
            a, b = (self.label(lab, alias) for lab, _ in e.labels)
            if a is b:
                return product(out=[a])
            d = Index(a.name, a.size)
            return Expr(contract([], [d, d]), [a, b])
        if isinstance(e, Neg):
            return -self.build(e.arg, alias)
        if isinstance(e, Sum):
            return total(*[(self.build(t, alias), s) for s, t in e.terms])
        if isinstance(e, Prod):
            return self.scope(e, alias)[0]
        if isinstance(e, Pow):
            base = self.build(e.base, alias)
            p = self.constant(e.exp)
            if p is None:
                p = self.build(e.exp, alias)
            return prims.pow(base, p)
        if isinstance(e, Cmp):
            fn = {">": prims.gt, ">=": prims.ge, "<": prims.lt, "<=": prims.le,
                  "==": prims.eq, "!=": prims.ne}[e.op]
            return fn(self.build(e.a, alias), self.build(e.b, alias))
        if isinstance(e, Call):
            return self.call(e, alias)
        raise self.error(f"cannot build {e!r}", getattr(e, "col", 0))  # pragma: no cover

    def constant(self, e):
        """The value of a constant exponent, or None."""
        if isinstance(e, Num):
            return e.value
        if isinstance(e, Neg):
            v = self.constant(e.arg)
            return None if v is None else -v
        if isinstance(e, Name) and self.prog.is_size(e.name):
            return self.sizes.get(e.name.lower())
        return None

    def call(self, e, alias):
        try:
            return self._call(e, alias)
        except ProgramError as err:
            if err.equation is not None:
                raise
            raise self.error(err.message, e.col) from err

    def _call(self, e, alias):
        fn = prims.FUNCTIONS[e.name]
        args, label_args = _call_args(e, fn, self.prog.label_names)
        nargs = 2 if fn.kind == "solve" else (fn.nargs if fn.kind == "elementwise" else 1)
        if fn.name == "logsumexp" and len(args) == 2:  # weighted: log Σ w exp(x)
            nargs = 2
        if len(args) != nargs:
            raise self.error(f"{e.name}() takes {nargs} argument(s)"
                             f"{' and labels' if fn.kind != 'elementwise' else ''}, "
                             f"{len(args)} given", e.col)
        if fn.kind == "elementwise":
            return fn(*[self.build(a, alias) for a in args])
        # The call's own labels (those it binds or keeps) are never renamed
        # inside it, nor is a label renamed into one of them: a delta outside
        # the call renames the call's result instead (a diagonal where two of
        # its labels become one).
        own = set(self.scopes.labels.get(id(e), ()))
        inside = {k: v for k, v in alias.items() if k not in own and v not in own}
        after = {self.index[k]: self.index[v] for k, v in alias.items()
                 if k not in inside and k not in self.scopes.binds.get(id(e), ())}
        idx = [self.index[n] for n in self.scopes.labels.get(id(e), ())]
        built = [self.build(a, inside) for a in args]
        return _renamed(self._structured(e, fn, idx, built), after)

    def _structured(self, e, fn, idx, built):
        if fn.kind == "reduce":
            return fn.build(*built[:1], over=idx, **({"weight": built[1]} if built[1:] else {}))
        if fn.kind == "normalize":
            if not idx:
                raise self.error(f"{e.name}() needs a label to normalise over; its argument "
                                 f"has none", e.col)
            return fn.build(built[0], over=idx)
        if len(idx) != 2 or idx[0].size != idx[1].size:
            have = ", ".join(f"{l.name} ({int(l.size)})" for l in idx) or "none"
            raise self.error(f"{e.name}() acts on two labels of equal size (rows, columns); "
                             f"it found {have} (name them after the argument, as in "
                             f"{e.name}(a[i,j] b[j,k], i, k))", e.col)
        if fn.kind == "solve":
            if idx[0] not in built[1].labels:
                raise self.error(f"solve(a, b): b must carry the row label {idx[0].name!r} "
                                 f"of a (a's labels are rows {idx[0].name!r}, columns "
                                 f"{idx[1].name!r})", e.args[1].col if hasattr(
                                     e.args[1], "col") else e.col)
            return fn.build(built[0], built[1], pair=idx)
        return fn.build(built[0], pair=idx)


def _renamed(x, renames):
    """`x` with its labels renamed; the diagonal where two become one."""
    labs = [renames.get(lab, lab) for lab in x.labels]
    if len(set(labs)) == len(labs):
        return Expr(x.node, labs)
    d = list(dict.fromkeys(labs))
    return Expr(contract([(x.node, labs)], d), d)


def _call_args(e, fn, label_names):
    """(value arguments, label arguments) of a call: a non-elementwise
    function takes the labels it acts on after its values."""
    args, labels = list(e.args), []
    if fn.kind != "elementwise":
        while args and isinstance(args[-1], Name) and args[-1].name in label_names:
            labels.insert(0, args.pop())
    return args, labels


class _Scopes:
    """Where each dummy label of one top-level term is summed: over the
    smallest product (two or more factors) holding all its occurrences, or
    the term itself; see the module docstring.

    `summed[id(node)]` are the label names summed at a product (or the term);
    `labels[id(call)]` the labels a non-elementwise call acts on (reduced,
    normalised over, or its rows and columns).  A call *binds* the labels it
    reduces or consumes (reductions, det, logdet, solve's rows): their
    occurrences inside it are its own.  The labels it keeps (softmax's, inv's,
    solve's columns) count, outside, as occurring at the call."""

    def __init__(self, binder, term, free):
        self.binder, self.term, self.free = binder, term, set(free)
        self.labels, self.binds, self.keeps = {}, {}, {}
        self.label_names = binder.prog.label_names
        self._explicit(term)
        self._implicit(term, set())
        self._defaults(term, self._analyse())
        self.summed = {}
        for lab, node in self._analyse().items():
            self.summed.setdefault(node, []).append(lab)

    def _fn(self, e):
        fn = prims.FUNCTIONS.get(e.name) if isinstance(e, Call) else None
        return None if fn is None or fn.kind == "elementwise" else fn

    def _set(self, e, fn, names):
        names = list(names)
        self.labels[id(e)] = names
        if fn.kind == "reduce" or fn.name in ("det", "logdet"):
            self.binds[id(e)], self.keeps[id(e)] = names, []
        elif fn.kind == "solve":
            self.binds[id(e)], self.keeps[id(e)] = names[:1], names[1:]
        else:
            self.binds[id(e)], self.keeps[id(e)] = [], names

    def _explicit(self, e):
        fn = self._fn(e)
        if fn is not None:
            args, labs = _call_args(e, fn, self.label_names)
            arg_labels = labels_of(args[0]) if args else []
            for k, lab in enumerate(labs):
                if lab.name not in arg_labels:
                    raise self.binder.error(f"label {lab.name!r} is not a label of "
                                            f"{e.name}'s argument", lab.col)
                if lab.name in [other.name for other in labs[:k]]:
                    raise self.binder.error(f"label {lab.name!r} is given to {e.name} twice",
                                            lab.col)
            if labs:
                self._set(e, fn, [lab.name for lab in labs])
        for c in _children(e):
            self._explicit(c)

    def _count(self, e, shadow, skip, out):
        """Occurrences of each label outside the subtree `skip`."""
        if e is skip:
            return
        if isinstance(e, (Ref, One, Delta)):
            for lab, _ in e.labels:
                if lab not in shadow:
                    out[lab] = out.get(lab, 0) + 1
            return
        inner = shadow | set(self.binds.get(id(e), ()))
        for c in _children(e):
            self._count(c, inner, skip, out)

    def _implicit(self, e, shadow):
        """A reduction without labels reduces those of its argument that
        occur nowhere else in the term and are not on the left."""
        fn = self._fn(e)
        if fn is not None and fn.kind == "reduce" and id(e) not in self.labels:
            args, _ = _call_args(e, fn, self.label_names)
            outside = {}
            self._count(self.term, set(), e, outside)
            self._set(e, fn, [lab for lab in (self._own(args[0]) if args else [])
                              if lab not in self.free and lab not in shadow
                              and not outside.get(lab)])
        inner = shadow | set(self.binds.get(id(e), ())) | set(self.keeps.get(id(e), ()))
        for c in _children(e):
            self._implicit(c, inner)

    def _analyse(self):
        """label -> id of the product (or term) where it is summed."""
        occ = {}
        self._occurrences(self.term, (id(self.term),), set(), occ)
        scope = {}
        for lab, paths in occ.items():
            if lab in self.free:
                continue
            common = paths[0]
            for p in paths[1:]:
                n = 0
                while n < min(len(common), len(p)) and common[n] == p[n]:
                    n += 1
                common = common[:n]
            scope[lab] = common[-1]
        return scope

    def _occurrences(self, e, path, shadow, occ):
        if isinstance(e, Prod) and path[-1] != id(e):
            path = path + (id(e),)
        if isinstance(e, (Ref, One, Delta)):
            for lab, _ in e.labels:
                if lab not in shadow:
                    occ.setdefault(lab, []).append(path)
            return
        mine = set(self.binds.get(id(e), ())) | set(self.keeps.get(id(e), ()))
        for c in _children(e):
            self._occurrences(c, path, shadow | mine, occ)
        for lab in self.keeps.get(id(e), ()):
            if lab not in shadow:
                occ.setdefault(lab, []).append(path)

    def _own(self, e):
        """The labels of `e` in order of first appearance, but for those a
        call inside it binds."""
        occ = {}
        self._occurrences(e, (id(e),), set(), occ)
        return list(occ)

    def _defaults(self, e, scope):
        """Calls that act on labels without naming them: softmax on the last
        label of its argument, matrix functions on the last two (labels
        summed inside the argument do not count)."""
        fn = self._fn(e)
        if fn is not None and fn.kind != "reduce" and id(e) not in self.labels:
            args, _ = _call_args(e, fn, self.label_names)
            if args:
                inside = {id(n) for n in _walk(args[0]) if isinstance(n, Prod)}
                own = [lab for lab in self._own(args[0]) if scope.get(lab) not in inside]
                self._set(e, fn, own[-1:] if fn.kind == "normalize" else own[-2:])
        for c in _children(e):
            self._defaults(c, scope)


def _walk(e):
    yield e
    for c in _children(e):
        yield from _walk(c)


def _times(e, sign):
    return e if sign == 1 else -e


def compile_text(text, **options):
    return TextProgram(text, **options)
