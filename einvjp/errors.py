"""Typed errors.  Every message names the operand, the label and the sizes, and
points with a caret at the offending character of the equation.

>>> err = LabelSizeError("size of label 'j' in operand 1 (4) does not match "
...                      "operand 0 (3)", equation="ij,jk->ik", position=3)
>>> print(err)
size of label 'j' in operand 1 (4) does not match operand 0 (3)
    ij,jk->ik
       ^
>>> isinstance(err, ValueError)
True
"""

from __future__ import annotations


class EinvjpError(ValueError):
    """Base class of every error einvjp raises on bad input."""

    def __init__(self, message: str, *, equation: str | None = None,
                 position: int | None = None):
        self.message = message
        self.equation = equation
        self.position = position
        super().__init__(self._render())

    def _render(self) -> str:
        if self.equation is None:
            return self.message
        text = f"{self.message}\n    {self.equation}"
        if self.position is not None:
            text += "\n    " + " " * self.position + "^"
        return text


class EquationSyntaxError(EinvjpError):
    """The equation string cannot be parsed."""


class OperandCountError(EinvjpError):
    """The number of operands does not match the equation."""


class RankError(EinvjpError):
    """An operand's number of dimensions does not match its term."""


class LabelSizeError(EinvjpError):
    """A label is bound to two different sizes."""


class BroadcastError(EinvjpError):
    """Ellipsis dimensions that cannot be broadcast together."""


class MissingSizeError(EinvjpError):
    """An output label that no operand carries has no size."""


class CotangentError(EinvjpError):
    """The cotangent does not have the output's shape."""


class WrtError(EinvjpError):
    """`wrt` does not name an operand."""


class BackendError(EinvjpError):
    """Operands of different array libraries, or an unsupported array type."""


class ProgramError(EinvjpError):
    """A malformed index-notation program or traced function."""


class AxisError(EinvjpError, IndexError):
    """An axis out of range for the array it names, or given twice (as
    NumPy's AxisError)."""


class TracingError(ProgramError):
    """An operation a traced function cannot record: a NumPy or torch
    function applied to a traced value, indexing, converting one to a
    Python number."""


class SignatureError(EinvjpError, TypeError):
    """An einvjp function called with arguments its signature does not take."""
