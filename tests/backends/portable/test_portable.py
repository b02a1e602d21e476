from __future__ import annotations

from pteflow.backends import portable
from pteflow.driver.backends import backend_table


def test_available_wherever_executorch_is():
    assert portable.unavailable_reason() is None
    assert ("portable", "available") in backend_table()
