"""When customers arrive: steady Poisson traffic, or an app campaign's surge.

Plain Python, no I/O and no clock: a rate curve (arrivals per minute at
second ``t``) and a seeded generator of arrival times drawn from it, so the
same seed gives the same schedule and tests need no hub.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

RateFn = Callable[[float], float]  # seconds since start -> arrivals per minute


@dataclass(frozen=True, slots=True)
class Steady:
    """The same rate all along."""

    rate: float  # per minute

    def __call__(self, t: float) -> float:
        return self.rate

    @property
    def max_rate(self) -> float:
        return self.rate


@dataclass(frozen=True, slots=True)
class Surge:
    """A campaign launch: base rate, a linear ramp to the peak, a hold, then an
    exponential decay back towards the base (people keep trickling in)."""

    base: float  # per minute
    peak: float  # per minute
    start: float  # second the ramp begins
    ramp: float  # seconds from base to peak
    hold: float  # seconds at the peak
    decay: float  # time constant of the fall, seconds

    @classmethod
    def over(cls, duration: float, base: float, peak: float) -> Surge:
        """The shape scaled to a run: ramp from 10% to 25% of it, hold to 50%, decay after."""
        return cls(base=base, peak=peak, start=0.10 * duration, ramp=0.15 * duration,
                   hold=0.25 * duration, decay=0.10 * duration)  # fmt: skip

    @property
    def peak_window(self) -> tuple[float, float]:
        top = self.start + self.ramp
        return top, top + self.hold

    @property
    def max_rate(self) -> float:
        return max(self.base, self.peak)

    def __call__(self, t: float) -> float:
        if t < self.start:
            return self.base
        if t < self.start + self.ramp:
            return self.base + (self.peak - self.base) * (t - self.start) / max(self.ramp, 1e-9)
        top_end = self.start + self.ramp + self.hold
        if t < top_end:
            return self.peak
        return self.base + (self.peak - self.base) * math.exp(
            -(t - top_end) / max(self.decay, 1e-9)
        )


def arrival_times(rate: RateFn, max_rate: float, rng: random.Random,
                  until: float | None = None) -> Iterator[float]:  # fmt: skip
    """Seconds (from 0) at which customers arrive: a Poisson process whose rate
    follows `rate`, by thinning (Lewis & Shedler): candidates at `max_rate`,
    each kept with probability rate(t) / max_rate. Endless if `until` is None."""
    if max_rate <= 0:
        return
    per_s = max_rate / 60.0
    t = 0.0
    while True:
        t += rng.expovariate(per_s)
        if until is not None and t >= until:
            return
        if rng.random() * max_rate <= rate(t):
            yield t
