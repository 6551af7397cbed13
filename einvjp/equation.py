"""Equation strings: parsed once into typed objects, bound to shapes once.

`parse` is the only place that reads an equation string.  It returns a
`Spec`: per operand a `Term` of letters (and at most one ellipsis), each with
the column it was written at so that errors can point at it.  `bind` turns a
spec and the operands' shapes into a `GE` over `Index` objects that carry
their sizes; after that no string is looked at again.

>>> spec = parse("ij,jk")
>>> spec.output.labels, spec.explicit
(('i', 'k'), False)
>>> ge = bind(spec, [(2, 3), (3, 4)])
>>> [(i.name, i.size) for i in ge.out]
[('i', 2), ('k', 4)]
"""

from __future__ import annotations

import functools
import operator
from collections import Counter
from dataclasses import dataclass

from opt_einsum import get_symbol

from .errors import (BroadcastError, EquationSyntaxError, LabelSizeError,
                     MissingSizeError, OperandCountError, RankError, WrtError)
from .ge import GE, Index

ELLIPSIS = "..."


@dataclass(frozen=True)
class Term:
    """The labels of one operand (or of the output) as written.

    `labels` holds single letters and at most one `ELLIPSIS`; `columns[i]` is
    where `labels[i]` stands in the equation; `column` is where the term starts.
    """
    labels: tuple
    columns: tuple
    column: int

    @property
    def has_ellipsis(self) -> bool:
        return ELLIPSIS in self.labels

    @property
    def letters(self) -> tuple:
        return tuple(lab for lab in self.labels if lab != ELLIPSIS)


@dataclass(frozen=True)
class Spec:
    """A parsed equation: input terms, the output term, and the source text."""
    text: str
    inputs: tuple
    output: Term
    explicit: bool
    arrow: int  # column of "->", or len(text) in implicit mode
    named: tuple = ()  # (letter, label as given) per label of the interleaved form

    def name(self, letter) -> str:
        """A label as the user wrote it, for messages."""
        return repr(dict(self.named).get(letter, letter))

    @property
    def equation(self) -> str:
        """The spec as an equation string (in its letters)."""
        write = lambda t: "".join(t.labels)  # noqa: E731
        return ",".join(map(write, self.inputs)) + "->" + write(self.output)


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Spec:
    """Parse an einsum equation (NumPy's grammar, plus the GE extensions).

    >>> parse("ii->i").inputs[0].labels
    ('i', 'i')
    >>> parse("a...a->a...").output.labels
    ('a', '...')
    >>> parse("i->ii").output.labels
    ('i', 'i')
    """
    if not isinstance(text, str):
        raise EquationSyntaxError(f"equation must be a string, not {type(text).__name__}")
    arrow = text.find("->")
    if arrow >= 0 and text.find("->", arrow + 2) >= 0:
        raise EquationSyntaxError("'->' appears twice", equation=text,
                                  position=text.find("->", arrow + 2))
    explicit = arrow >= 0
    lhs_end = arrow if explicit else len(text)
    inputs, start = [], 0
    while True:
        comma = text.find(",", start, lhs_end)
        stop = lhs_end if comma < 0 else comma
        inputs.append(_term(text, start, stop, "operand", len(inputs)))
        if comma < 0:
            break
        start = comma + 1
    if explicit:
        output = _term(text, arrow + 2, len(text), "output", None)
    else:
        output = _implicit_output(inputs)
    return Spec(text, tuple(inputs), output, explicit, lhs_end)


def _term(text: str, start: int, stop: int, what: str, k) -> Term:
    labels, columns, i = [], [], start
    name = f"operand {k}" if k is not None else "the output"
    while i < stop:
        ch = text[i]
        if ch == " ":
            i += 1
        elif ch == ".":
            if text[i:i + 3] != ELLIPSIS or i + 3 > stop:
                raise EquationSyntaxError(
                    f"malformed ellipsis in {name}: '.' must come as '...'",
                    equation=text, position=i)
            if ELLIPSIS in labels:
                raise EquationSyntaxError(f"{name} has more than one ellipsis",
                                          equation=text, position=i)
            labels.append(ELLIPSIS)
            columns.append(i)
            i += 3
        elif is_label(ch):
            labels.append(ch)
            columns.append(i)
            i += 1
        elif ch == "," and what == "output":
            raise EquationSyntaxError("the output term cannot contain ','",
                                      equation=text, position=i)
        else:
            raise EquationSyntaxError(
                f"invalid character {ch!r} in {name}: labels must be letters "
                f"a-z or A-Z or characters from U+00C0 on, with '...' for an ellipsis",
                equation=text, position=i)
    return Term(tuple(labels), tuple(columns), start)


def is_label(ch: str) -> bool:
    """Whether a character is a label: an ASCII letter, or any character from
    U+00C0 on (every symbol `opt_einsum.get_symbol` gives, so any number of
    labels can be written).

    >>> is_label("a"), is_label("À"), is_label("京"), is_label("µ"), is_label("2")
    (True, True, True, False, False)
    """
    return (ch.isascii() and ch.isalpha()) or (ord(ch) >= 0xC0 and not 0xD800 <= ord(ch) < 0xE000)


def _implicit_output(inputs) -> Term:
    """NumPy's implicit mode: the labels seen once, in order of code point,
    after the ellipsis dimensions."""
    counts = {}
    for term in inputs:
        for lab in term.letters:
            counts[lab] = counts.get(lab, 0) + 1
    labels = tuple(sorted(lab for lab, n in counts.items() if n == 1))
    if any(t.has_ellipsis for t in inputs):
        labels = (ELLIPSIS,) + labels
    return Term(labels, (None,) * len(labels), None)


def is_interleaved(args) -> bool:
    """Whether einsum's arguments are NumPy's interleaved form: an operand,
    then a list (or tuple) of its labels, and so on."""
    return len(args) >= 2 and not isinstance(args[0], str) and isinstance(args[1], (list, tuple))


def interleaved(args):
    """NumPy's interleaved form as (Spec, operands): `a, [0, 1], b, [1, 2]`,
    then optionally the output's labels `[0, 2]`.  Labels are any hashable
    values, `Ellipsis` stands for '...'.  Each label gets a letter
    (`opt_einsum.get_symbol` order, by sorted label when the labels compare);
    the spec's text shows the lists, so errors point at the label as given.

    >>> spec, ops = interleaved(("a", [0, 1], "b", [1, 2]))
    >>> spec.text, spec.equation, ops
    ('[0, 1], [1, 2]', 'ab,bc->ac', ('a', 'b'))
    >>> interleaved(("a", ["i", Ellipsis], ["i"]))[0].text
    "['i', ...] -> ['i']"
    """
    operands, sublists = args[0:len(args) - len(args) % 2:2], list(args[1::2])
    explicit = len(args) % 2 == 1
    if explicit:
        sublists.append(args[-1])
    seen = {}
    for k, sub in enumerate(sublists):
        name = "the output" if explicit and k == len(sublists) - 1 else f"operand {k}"
        if not isinstance(sub, (list, tuple)):
            raise EquationSyntaxError(f"the labels of {name} must be a list, not "
                                      f"{type(sub).__name__} (NumPy's interleaved form: "
                                      f"einsum(a, [0, 1], b, [1, 2], [0, 2]))")
        for lab in sub:
            try:
                hash(lab)
            except TypeError:
                raise EquationSyntaxError(f"label {lab!r} of {name} is not hashable; labels "
                                          f"are numbers, strings or other hashable values, "
                                          f"with Ellipsis for '...'") from None
            if lab is not Ellipsis:
                seen.setdefault(lab, None)
    try:
        order = sorted(seen)
    except TypeError:  # labels that do not compare (0 and "a"): as first seen
        order = list(seen)
    letter = {lab: get_symbol(n) for n, lab in enumerate(order)}
    text, terms, arrow, n, twice = "", [], None, len(args) // 2, None
    for k, sub in enumerate(sublists):
        if k == n:
            text += " -> "
            arrow = len(text) - 3
        elif k:
            text += ", "
        labels, columns, start = [], [], len(text)
        text += "["
        for j, lab in enumerate(sub):
            shown = "..." if lab is Ellipsis else repr(lab)
            text += (", " if j else "") + shown
            columns.append(len(text) - len(shown))
            if lab is Ellipsis and ELLIPSIS in labels and twice is None:
                twice = (k, columns[-1])
            labels.append(ELLIPSIS if lab is Ellipsis else letter[lab])
        text += "]"
        terms.append(Term(tuple(labels), tuple(columns), start))
    if twice is not None:
        raise EquationSyntaxError(
            f"{'the output' if twice[0] == n else f'operand {twice[0]}'} has more than one "
            f"ellipsis", equation=text, position=twice[1])
    inputs = tuple(terms[:n])
    if explicit:
        output = terms[-1]
    else:  # NumPy's implicit output: the labels seen once, sorted, after the ellipsis
        once = Counter(lab for t in inputs for lab in t.letters)
        labels = tuple(letter[lab] for lab in order if once[letter[lab]] == 1)
        labels = ((ELLIPSIS,) if any(t.has_ellipsis for t in inputs) else ()) + labels
        output = Term(labels, (None,) * len(labels), None)
    named = tuple((c, lab) for lab, c in letter.items())
    return Spec(text, inputs, output, explicit, len(text) if arrow is None else arrow, named), tuple(operands)


def lettered_sizes(spec: Spec, sizes):
    """`sizes=` of the interleaved form (keyed by the labels as given), checked
    and keyed by the spec's letters; labels the spec lacks are dropped."""
    letter = {label: lab for lab, label in spec.named}
    return {letter[lab]: size for lab, size in checked_sizes(sizes, spec.text).items()
            if lab in letter}


def checked_sizes(sizes, equation=None):
    """`sizes` (label -> size) with each size a Python int, as NumPy takes a
    shape: an integer 0 or more (a NumPy integer too; not a bool, not 2.5)."""
    out = {}
    for lab, size in dict(sizes or {}).items():
        try:
            out[lab] = None if isinstance(size, bool) else operator.index(size)
        except TypeError:
            out[lab] = None
        if out[lab] is None or out[lab] < 0:
            raise LabelSizeError(f"sizes={{{lab!r}: {size!r}}}: a size must be an integer "
                                 f"0 or more", equation=equation)
    return out


def bind(spec: Spec, shapes, sizes=None) -> GE:
    """Bind a spec to operand shapes: one `Index` per label, sized.

    NumPy's broadcasting applies: a dimension of size 1 may meet a larger one
    of the same label or ellipsis position.  Such a dimension gets a fresh
    size-1 index of its own (summed away in the forward, so the VJP puts it
    back as a size-1 broadcast, i.e. keepdims).

    >>> ge = bind(parse("ij,ij->ij"), [(3, 1), (3, 4)])
    >>> [i.size for i in ge.terms[0]], [i.size for i in ge.out]
    ([3, 1], [3, 4])
    >>> ge.terms[0][1] is ge.out[1]
    False
    """
    text = spec.text
    sizes = checked_sizes(sizes, text)
    if len(shapes) != len(spec.inputs):
        raise OperandCountError(
            f"the equation has {len(spec.inputs)} operand term(s) but "
            f"{len(shapes)} operand(s) were given",
            equation=text, position=spec.arrow if len(shapes) < len(spec.inputs) else None)
    # Ellipsis widths and label sizes, checked per occurrence.
    widths, seen = [], {}
    for k, (term, shape) in enumerate(zip(spec.inputs, shapes)):
        n_letters = len(term.letters)
        if term.has_ellipsis:
            width = len(shape) - n_letters
            if width < 0:
                raise RankError(
                    f"operand {k} has {len(shape)} dimension(s) {tuple(shape)} but its "
                    f"term names {n_letters} label(s) besides '...'",
                    equation=text, position=term.column)
        else:
            width = 0
            if len(shape) != n_letters:
                raise RankError(
                    f"operand {k} has {len(shape)} dimension(s) {tuple(shape)} but its "
                    f"term names {n_letters} label(s)",
                    equation=text, position=term.column)
        widths.append(width)
        for lab, col, size in zip(*_dims(term, shape, width)):
            if isinstance(lab, int):
                continue
            prev = seen.get(lab)
            if prev is not None and prev[0] == k and prev[2] != size:
                raise LabelSizeError(
                    f"label {spec.name(lab)} appears twice in operand {k} with sizes "
                    f"{prev[2]} and {size}; a repeated label needs equal sizes",
                    equation=text, position=col)
            if prev is not None and size != prev[2] and 1 not in (size, prev[2]):
                raise LabelSizeError(
                    f"size of label {spec.name(lab)} in operand {k} ({size}) does not match "
                    f"operand {prev[0]} ({prev[2]})",
                    equation=text, position=col)
            if prev is None or prev[2] == 1:
                seen[lab] = (k, col, size)
    for lab, size in sizes.items():
        if lab in seen and seen[lab][2] not in (size, 1):
            raise LabelSizeError(
                f"sizes={{{spec.name(lab)}: {size}}} does not match operand {seen[lab][0]} "
                f"({seen[lab][2]})", equation=text, position=seen[lab][1])
    # Ellipsis: right-aligned broadcast, like NumPy.
    ell_width = max(widths, default=0)
    ell_sizes = [1] * ell_width
    ell_owner = [None] * ell_width
    for k, (term, shape, width) in enumerate(zip(spec.inputs, shapes, widths)):
        if width == 0:
            continue
        at = term.labels.index(ELLIPSIS)
        for j, size in enumerate(shape[at:at + width]):
            pos = ell_width - width + j
            if size != 1 and ell_sizes[pos] not in (1, size):
                other = ell_owner[pos]
                raise BroadcastError(
                    f"ellipsis dimensions of operand {k} {tuple(shape[at:at + width])} cannot "
                    f"be broadcast with operand {other[0]} {other[1]}",
                    equation=text, position=term.columns[at])
            if size != 1:
                ell_sizes[pos] = size
                ell_owner[pos] = (k, tuple(shape[at:at + width]))
    ell_index = [Index(f"…{j}", s) for j, s in enumerate(ell_sizes)]
    index = {lab: Index(lab, sizes.get(lab, 1) if seen[lab][2] == 1 else seen[lab][2])
             for lab in seen}
    # Terms over Index objects; a size-1 dimension that broadcasts gets its own.
    terms = []
    for k, (term, shape, width) in enumerate(zip(spec.inputs, shapes, widths)):
        fresh, labels = {}, []
        for lab, col, size in zip(*_dims(term, shape, width)):
            idx = ell_index[lab] if isinstance(lab, int) else index[lab]
            if size != idx.size:
                idx = fresh.setdefault(lab, Index(idx.name, size))
            labels.append(idx)
        terms.append(tuple(labels))
    out = []
    for lab, col in zip(spec.output.labels, spec.output.columns):
        if lab == ELLIPSIS:
            out.extend(ell_index)
        elif lab in index:
            out.append(index[lab])
        elif lab in sizes:
            out.append(index.setdefault(lab, Index(lab, int(sizes[lab]))))
        else:
            raise MissingSizeError(
                f"output label {spec.name(lab)} is carried by no operand; give its size with "
                f"sizes={{{spec.name(lab)}: n}}", equation=text, position=col)
    return GE(tuple(terms), tuple(out))


def _dims(term: Term, shape, width):
    """(label, column, size) per dimension; ellipsis dimensions are labelled
    by their right-aligned position in the broadcast ellipsis (an int)."""
    labels, columns, dim_sizes = [], [], []
    dim = 0
    for lab, col in zip(term.labels, term.columns):
        if lab == ELLIPSIS:
            for j in range(width):
                labels.append(-width + j)
                columns.append(col)
                dim_sizes.append(shape[dim])
                dim += 1
        else:
            labels.append(lab)
            columns.append(col)
            dim_sizes.append(shape[dim])
            dim += 1
    return labels, columns, dim_sizes


def operand_index(k, n: int, equation: str) -> int:
    """`k` (any integer, negative counts from the end) as an operand index.

    >>> operand_index(-1, 3, "i,i,i")
    2
    """
    try:
        index = operator.index(k)
    except TypeError:
        index = None
    if index is None or not -n <= index < n:
        raise WrtError(f"wrt={k!r} is not an operand index: the equation has {n} "
                       f"operand(s), 0 to {n - 1}", equation=equation)
    return index % n


def wanted(wrt, n: int, equation: str) -> list:
    """`wrt=` (None for all, an int or a sequence of ints) as operand indices.

    >>> wanted(None, 2, "i,i"), wanted(-1, 2, "i,i")
    ([0, 1], [1])
    """
    if wrt is None:
        return list(range(n))
    ks = list(wrt) if isinstance(wrt, (list, tuple, range)) else [wrt]
    return [operand_index(k, n, equation) for k in ks]


def check_shape(spec: Spec, k: int, shape, expected, position: int):
    """Raise a RankError or LabelSizeError unless operand `k` (argument
    `position` of the caller) has the shape `expected` it was bound with,
    naming the label and both sizes.

    >>> check_shape(parse("ij,jk"), 1, (4, 5), (3, 5), 0)
    Traceback (most recent call last):
      ...
    einvjp.errors.LabelSizeError: size of label 'j' in operand 1 (argument 0) is 4, but it was planned with 3
        ij,jk
           ^
    """
    shape, expected = tuple(shape), tuple(expected)
    if shape == expected:
        return
    term = spec.inputs[k]
    where = f"operand {k} (argument {position})"
    if len(shape) != len(expected):
        raise RankError(f"{where} has {len(shape)} dimension(s) {shape} but it was planned "
                        f"with shape {expected}", equation=spec.text, position=term.column)
    width = len(expected) - len(term.letters)
    for lab, col, size, want in zip(*_dims(term, expected, width), shape):
        if size != want:
            name = "'...'" if isinstance(lab, int) else spec.name(lab)
            raise LabelSizeError(f"size of label {name} in {where} is {want}, but it was "
                                 f"planned with {size}", equation=spec.text, position=col)
