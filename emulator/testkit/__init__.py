"""The image developers' kit: CANFAR sessions of an image in its own pytest suite (see plugin.py)."""

from emulator.testkit.session import ContractBroken, ExecResult, SkahaError, SkahaSession

__all__ = ["ContractBroken", "ExecResult", "SkahaError", "SkahaSession"]
