"""Index-notation text as a syntax tree.

- `parse_program`: text -> `Statement`s (and the names a `return` line gives)
- the tree: `Num`, `Name`, `Ref`, `One`, `Delta`, `Call`, `Neg`, `Sum`, `Prod`,
  `Pow`, `Cmp`; `Where` (a line, for errors with a caret)
- `children`, `walk`, `occurrences`, `labels_of`, `call_args`: reading the tree
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .errors import ProgramError

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


def children(e):
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
    for c in children(e):
        occurrences(c, out)
    return out


def labels_of(e):
    return list(dict.fromkeys(occurrences(e)))


def walk(e):
    yield e
    for c in children(e):
        yield from walk(c)


def call_args(e, fn, label_names):
    """(value arguments, label arguments) of a call: a non-elementwise
    function takes the labels it acts on after its values."""
    args, labels = list(e.args), []
    if fn.kind != "elementwise":
        while args and isinstance(args[-1], Name) and args[-1].name in label_names:
            labels.insert(0, args.pop())
    return args, labels
