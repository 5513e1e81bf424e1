# Exponential backoff with jitter, capped.
#
# The n-th delay (n = 0, 1, 2, ...) is nominal = min(cap, base * 2**n), reduced by a
# random share of up to `jitter` of itself: delay lies in [nominal * (1 - jitter),
# nominal]. So delays grow, never exceed the cap, and many lights that lost the broker
# at the same moment do not all come back at the same moment.


class Backoff:
    def __init__(self, base_ms, cap_ms, jitter=0.5, rng=None):
        if base_ms <= 0 or cap_ms < base_ms:
            raise ValueError("need 0 < base_ms <= cap_ms")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.jitter = jitter
        self.rng = rng
        self.attempt = 0

    def nominal(self, attempt):
        delay = self.base_ms
        for _ in range(attempt):
            delay *= 2
            if delay >= self.cap_ms:
                return self.cap_ms
        return min(delay, self.cap_ms)

    def next(self):
        """The delay before the next attempt, in milliseconds."""
        nominal = self.nominal(self.attempt)
        if self.attempt < 64:
            self.attempt += 1
        if self.jitter and self.rng is not None:
            share = self.rng()
            if share < 0:
                share = 0
            elif share >= 1:
                share = 0.999999
            nominal -= int(nominal * self.jitter * share)
        return max(1, nominal)

    def reset(self):
        self.attempt = 0
