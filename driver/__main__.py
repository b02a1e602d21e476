"""``python -m pteflow.driver``: the ``driver`` command."""

from .cli import entry

entry()
