"""Passes and the PassManager.

Importing this package does not import torch or ExecuTorch; passes import
them inside ``run``.
"""

from .base import Pass, PassContext, PassInfo, PassResult
from .manager import PassManager, PassRecord, Plan, RunResult, plan

__all__ = [
    "Pass",
    "PassContext",
    "PassInfo",
    "PassManager",
    "PassRecord",
    "PassResult",
    "Plan",
    "RunResult",
    "plan",
]
