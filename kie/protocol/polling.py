"""When to ask about a task again.

Fixed 2-second polling (the seeds' advice) costs one request per 2 s of generation: about 50 for a
100-second video. Generation times are predictable per model, so the schedule waits until the task is
likely to be nearly done, then polls at an interval that grows with the time already spent (about 15 %
of it), capped. That keeps the added latency proportional and the request count small. Kie's docs
guidance (2-3 s early, 15-30 s after two minutes) falls out of the same rule. Observed durations feed
back through `PollClock.observe`, so a model that runs faster or slower than the catalogue says is
learned from the first few tasks.

`scale` multiplies every time, so the same schedule runs a sandbox at 1/1000 of real time.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from dataclasses import dataclass, field

_RNG = random.Random()


@dataclass(frozen=True)
class PollPolicy:
    first_fraction: float = 0.8
    growth: float = 0.15
    min_interval: float = 1.0
    max_interval: float = 30.0
    jitter: float = 0.1
    not_visible_grace: float = 90.0
    scale: float = 1.0

    def scaled(self, seconds: float) -> float:
        return seconds * self.scale


@dataclass
class PollClock:
    """Per-model expected durations, learned as tasks finish (exponentially weighted)."""

    weight: float = 0.3
    _expected: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expected(self, model: str, default: float) -> float:
        with self._lock:
            return self._expected.get(model, default)

    def observe(self, model: str, seconds: float, default: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            old = self._expected.get(model, default)
            self._expected[model] = (1 - self.weight) * old + self.weight * seconds


def next_delay(
    policy: PollPolicy,
    elapsed: float,
    expected: float,
    *,
    rng: random.Random | None = None,
) -> float:
    """Seconds until the next poll, given seconds since submission and the expected duration.

    `expected` is in unscaled (real Kie) seconds; `elapsed` and the result are in scaled seconds.
    """
    scale = policy.scale
    real_elapsed = elapsed / scale if scale > 0 else elapsed
    first = policy.first_fraction * expected
    if real_elapsed < first:
        delay = min(first - real_elapsed, policy.max_interval)
    else:
        delay = min(max(policy.min_interval, policy.growth * real_elapsed), policy.max_interval)
    delay = max(delay, policy.min_interval)
    spread = (rng or _RNG).uniform(-policy.jitter, policy.jitter) * delay
    return max(0.0, (delay + spread) * scale)


@dataclass
class Pacer:
    """Spaces events at least `interval` apart, with no burst: the only rate rule that holds across any
    window (20 per 10 s becomes one every 0.5 s). Pure: callers pass the clock and sleep themselves.

    Spacing at departure cannot see a delay inside Kie: a create that reaches Kie late (its answer is
    late) moves its place in Kie's window, and the next window's create could land less than a window
    after it. With `window=(count, seconds)` the pacer also keeps the last `count` departures and when
    each was answered, and holds a departure until `seconds` have passed since the answer of the one
    `count` places before it (an answer is the latest moment Kie can have counted that create).
    """

    interval: float
    window: tuple[int, float] | None = None
    _next: float = 0.0
    _departed: float = float("-inf")
    _recent: deque[list[float]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self, now: float) -> float:
        """Reserve the next slot; return how long to wait before using it."""
        if self.interval <= 0:
            return 0.0
        with self._lock:
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now

    def depart(self, now: float) -> float:
        """Just before sending: 0 if a full interval has passed since the previous departure (this one
        is then recorded), else the seconds still to wait. Slots keep waiters in order; this keeps the
        gap on the wire, which a late wake-up or a queue after the slot would otherwise shrink."""
        if self.interval <= 0:
            return 0.0
        with self._lock:
            gap = max(self._departed + self.interval - now, self._window_gap(now))
            if gap > 0:
                return gap
            self._departed = now
            if self.window is not None:
                self._recent.append([now, math.inf])
                while len(self._recent) > self.window[0]:
                    self._recent.popleft()
            return 0.0

    def answered(self, departed_at: float, now: float) -> None:
        """The create that departed at `departed_at` has its answer (or its error) now."""
        with self._lock:
            for entry in self._recent:
                if entry[0] == departed_at:
                    entry[1] = now
                    return

    @property
    def last_departure(self) -> float:
        return self._departed

    def _window_gap(self, now: float) -> float:
        if self.window is None or len(self._recent) < self.window[0]:
            return 0.0
        count, seconds = self.window
        oldest = self._recent[-count]
        if oldest[1] == math.inf:  # not answered yet: it may still reach Kie at any moment
            return max(seconds / count, 0.001)
        return oldest[1] + seconds - now
        with self._lock:
            gap = self._departed + self.interval - now
            if gap > 0:
                return gap
            self._departed = now
            return 0.0
