"""How printed programs write each piece: a leaf, a gradient, a delta, a call, a
power, a fraction.

- `Text`: index notation, as `compile` reads it back
- `Latex`: the same in LaTeX
"""

from __future__ import annotations

import re

_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
          "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi",
          "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Sigma", "Phi", "Psi", "Omega"}


# `q`, `x^h6`: a `(` after it would be a call (`∂l/∂y` is not a name of the text)
_ENDS_IN_NAME = re.compile(r"(?<![\w∂])[^\W\d]\w*$")


class Text:
    def product(self, factors):
        """Factors side by side; `*` after a bare name that a parenthesis
        follows (`q (x)` would read as a call of q)."""
        out = []
        for f in factors:
            if out and f.startswith("(") and _ENDS_IN_NAME.search(out[-1]):
                out.append("*")
            out.append(f)
        return " ".join(out)

    def leaf(self, name, letters):
        return f"{name}[{','.join(letters)}]" if letters else name

    def grad(self, name, letters):
        return self.leaf(f"∂l/∂{name}", letters)

    def one(self, letter):
        return f"1[{letter}]"

    def delta(self, a, b):
        return f"δ[{a},{b}]"

    def call(self, name, args):
        return f"{name}({', '.join(args)})"

    def power(self, base, p):
        return f"{base}^{p}"

    def paren(self, s):
        return f"({s})"

    def fraction(self, num, den, apart=()):
        """num / den: `den` (numbers and sizes) grouped, the tensors `apart`
        each divided on its own — a parenthesised group of them would be a
        product of its own, summing the labels only it holds."""
        text = self.product(num) or "1"
        if den:
            text += f" / {den[0] if len(den) == 1 else self.paren(self.product(den))}"
        return text + "".join(f" / {d}" for d in apart)


_DERIVED = re.compile(r"∂(²?)(\w+)/∂(\w+?)(²|∂\w+)?(?: ∂(\w+))?")


class Latex(Text):
    def product(self, factors):
        return " ".join(factors)

    def _name(self, name):
        if name in _GREEK:
            return "\\" + name
        if name == "eps":
            return r"\epsilon"
        return name if len(name) == 1 else rf"\mathrm{{{name}}}"

    def leaf(self, name, letters):
        if name.startswith("∂l/∂"):
            return self.grad(name[4:], letters)
        sub = f"_{{{''.join(letters)}}}" if letters else ""
        d = _DERIVED.fullmatch(name)
        if d:  # a derivative program's result: ∂y/∂x, ∂²f/∂x², ∂²f/∂a∂b, ∂²f/∂x² ∂x
            two, f, a, b, v = d.groups()
            under = rf"\partial {self._name(a)}" + (
                "^2" if b == "²" else rf" \partial {self._name(b[1:])}" if b else "")
            frac = rf"\frac{{\partial{'^2' if two else ''} {self._name(f)}}}{{{under}}}"
            tail = rf" \partial {self._name(v)}" if v else ""
            return rf"\left({frac}{tail}\right){sub}"
        return self._name(name) + sub

    def grad(self, name, letters):
        sub = f"_{{{''.join(letters)}}}" if letters else ""
        return rf"\frac{{\partial l}}{{\partial {self._name(name)}{sub}}}"

    def one(self, letter):
        return rf"\mathbf{{1}}_{{{letter}}}"

    def delta(self, a, b):
        return rf"\delta_{{{a}{b}}}"

    def call(self, name, args):
        if name == "sqrt":
            return rf"\sqrt{{{args[0]}}}"
        head = {"exp": r"\exp", "log": r"\log", "sin": r"\sin", "cos": r"\cos",
                "tanh": r"\tanh", "det": r"\det", "max": r"\max", "min": r"\min"}.get(
                    name, r"\operatorname{" + name.replace("_", r"\_") + "}")
        return rf"{head}\left({', '.join(args)}\right)"

    def power(self, base, p):
        return f"{{{base}}}^{{{p}}}"

    def paren(self, s):
        return rf"\left({s}\right)"

    def fraction(self, num, den, apart=()):
        return rf"\frac{{{' '.join(num) or '1'}}}{{{' '.join(list(den) + list(apart))}}}"
