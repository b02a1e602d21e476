"""pteflow's IR: levels, the Program, facts, invariants, views and errors.

Importing this package does not import torch; the functions that need it do.
"""

from . import errors, facts, invariants, views
from .fact import Fact
from .levels import Level
from .program import Program

__all__ = ["Fact", "Level", "Program", "errors", "facts", "invariants", "views"]
