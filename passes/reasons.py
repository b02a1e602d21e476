"""Why one pass runs before another: typed reasons, rendered to text only for display.

The planner (``planning.py``) records a ``Reason`` on every edge of its dependency graph;
``Plan.why``, ``driver plan`` and the refusals print them with ``str()``, and code that
asks what kind of edge it is reads ``kind`` (never the text).
"""

from __future__ import annotations

import enum

import attrs


class Kind(enum.Enum):
    """The kinds of ordering edge (see ``planning``'s module docstring)."""

    PROVIDES = "provides"  # a provider of fact ``subject`` runs before its consumer
    READS = "reads"  # a reader of fact ``subject`` runs before ``by`` invalidates it
    AFTER = "after"  # pass ``by`` declares after pass class ``subject``
    BEFORE = "before"  # pass ``by`` declares before pass class ``subject``
    LEVEL = "level"  # level order: ``subject`` (``aten`` before ``aten->edge``)
    ORDERED = "ordered"  # listed earlier among ordered passes (partitioners: first pick)
    LAST = "last"  # pass ``subject`` runs last


#: kinds that come from facts: ``Plan.why(implied=False)`` always shows them
FACT_KINDS = frozenset({Kind.PROVIDES, Kind.READS})


@attrs.frozen
class Reason:
    """One reason for an ordering edge; ``str()`` is the text ``driver plan`` prints."""

    kind: Kind
    subject: str = ""  # a fact, a pass class's name, a level order, or the last pass
    by: str = ""  # the pass that declared it, or the invalidator (READS)

    @property
    def about_facts(self) -> bool:
        return self.kind in FACT_KINDS

    def __str__(self) -> str:
        k = self.kind
        if k is Kind.PROVIDES:
            return f"provides {self.subject}"
        if k is Kind.READS:
            return f"reads {self.subject} before {self.by} invalidates it"
        if k in (Kind.AFTER, Kind.BEFORE):
            return f"{self.by} declares {k.value} {self.subject}"
        if k is Kind.LEVEL:
            return f"level order: {self.subject}"
        if k is Kind.ORDERED:
            return "listed earlier among ordered passes (first pick)"
        return f"{self.subject} runs last"
