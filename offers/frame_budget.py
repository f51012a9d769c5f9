"""How many frames one driver socket may send: a token bucket per socket.

Per socket, in the memory of the process that holds it, which is where the socket lives: no
shared state is needed, and checking costs no database or Redis work.
"""

import time
from collections.abc import Callable


class FrameBudget:
    """`rate_per_s` frames a second on average, with bursts of up to `burst` frames."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s, self.burst, self.clock = rate_per_s, burst, clock
        self.tokens = float(burst)
        self.refilled_at = clock()
        self.refused_in_a_row = 0

    def take(self) -> float:
        """Spend one frame: 0 when allowed, else the seconds until the next one will be."""
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.refilled_at) * self.rate_per_s)
        self.refilled_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.refused_in_a_row = 0
            return 0.0
        self.refused_in_a_row += 1
        return (1 - self.tokens) / self.rate_per_s
