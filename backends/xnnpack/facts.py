"""Facts the XNNPACK passes establish."""

from __future__ import annotations

from pteflow.ir import facts

DELEGATED_XNNPACK = facts.delegated("XnnpackBackend", "xnnpack")
