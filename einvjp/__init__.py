"""einvjp: an einsum-native gradient compiler.

Generalized einsums (GEs) are closed under VJP: the VJP of a GE with respect
to one operand is the GE with that operand and the cotangent swapping roles.
einvjp derives it symbolically, plans it with opt_einsum and runs it on NumPy,
PyTorch or JAX.  `import einvjp` imports no array library but NumPy.
"""

from .core import einsum, plan, vjp
from .derive import Derivation, derive
from .expression import ContractExpression, contract_expression
from .errors import (AxisError, BackendError, BroadcastError, CotangentError, EinvjpError,
                     EquationSyntaxError, LabelSizeError, MissingSizeError,
                     OperandCountError, ProgramError, RankError, SignatureError,
                     TracingError, WrtError)
from .ge import GE, Index
from .prims import EXPORTED as _EXPORTED
from .functions import compile

globals().update(_EXPORTED)  # einvjp.exp, einvjp.logsumexp, …: every exported primitive

__all__ = [
    "einsum", "vjp", "derive", "plan", "Derivation", "GE", "Index",
    "EinvjpError", "EquationSyntaxError", "OperandCountError", "RankError",
    "LabelSizeError", "BroadcastError", "MissingSizeError", "CotangentError",
    "WrtError", "BackendError", "ProgramError", "AxisError", "TracingError",
    "SignatureError", "compile", "contract_expression", "ContractExpression", *sorted(_EXPORTED),
]
__version__ = "0.1.0"
