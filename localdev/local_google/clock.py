"""An injectable clock, so tests can make days or months pass in an instant.

The clock governs server-side lifetimes only: code TTLs, access-token expiry, refresh-token
idleness and Testing-mode expiry. Signed ID tokens use the real time (see `signing.py`),
because the code under test verifies them against its own, real clock.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Wall-clock time plus an offset that only moves forward through `advance`."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the epoch, as the local Google sees them."""
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> float:
        """Moves the clock forward by `seconds` and returns the new offset."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
            return self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
