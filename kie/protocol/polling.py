"""When to ask about a task again.

Fixed 2-second polling (the seeds' advice) costs one request per 2 s of generation: about 50 for a
100-second video. Generation times are predictable per model, so the schedule waits until the task is
likely to be nearly done, then polls at an interval that grows with the time already spent (about 15 %
of it), capped. That keeps the added latency proportional and the request count small. Kie's docs
guidance (2-3 s early, 15-30 s after two minutes) falls out of the same rule.

The catalogue's typical duration is only a guess. Durations of finished tasks (`PollClock`, filled as
tasks finish and from the ledger by `kie.runner.priors`) replace it: once a few are known for a model and
its duration-driving options, the polls go at quantiles of what was seen (`quantile_plan`), and the
growth rule is left for tasks slower than nearly all before them.

`scale` multiplies every time, so the same schedule runs a sandbox at 1/1000 of real time.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_RNG = random.Random()
_NORMAL = statistics.NormalDist()

# Input fields whose values change how long a task runs (a 10-second 1080p video against a 5-second 720p
# one, Midjourney's relaxed against turbo, Veo's fast against quality model). Keying by every input would
# leave one sample per key; keying by the model alone would mix durations far apart.
DURATION_FIELDS = (
    "duration",
    "n_frames",
    "resolution",
    "size",
    "quality",
    "mode",
    "speed",
    "rendering_speed",
    "model",
)

# Fewer samples than this give no usable spread: the schedule then uses their median as the expected
# duration, as it would the catalogue's.
MIN_SAMPLES = 5


@dataclass(frozen=True)
class PollPolicy:
    first_fraction: float = 0.8
    growth: float = 0.15
    min_interval: float = 1.0
    max_interval: float = 30.0
    jitter: float = 0.1
    not_visible_grace: float = 90.0
    scale: float = 1.0
    # Where the polls go once durations are learned, as quantiles of them (why these: `quantile_plan`).
    # Empty keeps the catalogue rule even when samples exist.
    quantiles: tuple[float, ...] = (0.10, 0.40, 0.75, 0.95)

    def scaled(self, seconds: float) -> float:
        return seconds * self.scale


def duration_keys(model: str, values: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The keys a task's duration is learned and looked up under, most specific first: the model with
    its duration-driving options (`DURATION_FIELDS`), then the model alone.

    Values are normalised (`5`, `5.0` and `"5"` are one key; case is ignored) because the same option
    reaches kie as a CSV string, a JSON number or Kie's echo of the input."""
    parts = [
        f"{name}={_plain(values[name])}"
        for name in DURATION_FIELDS
        if values is not None and isinstance(values.get(name), (str, int, float))
    ]
    return (f"{model}?{'&'.join(parts)}", model) if parts else (model,)


def _plain(value: str | int | float) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return str(int(number)) if number.is_integer() else repr(number)


@dataclass
class PollClock:
    """Recent task durations in real seconds, per key (`duration_keys`), learned as tasks finish.

    A bounded sample rather than a running mean: the schedule needs the spread as well as the centre,
    and keeping only the newest `keep` per key follows a model that gets faster or slower."""

    keep: int = 50
    _samples: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, keys: Sequence[str], seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds > 0):
            return
        with self._lock:
            for key in keys:
                self._samples.setdefault(key, deque(maxlen=self.keep)).append(seconds)

    def durations(self, keys: Sequence[str]) -> tuple[float, ...]:
        """The samples of the most specific key that has `MIN_SAMPLES`, else of the most specific key
        that has any: a new option value borrows its model's spread until it has its own."""
        with self._lock:
            found = [tuple(self._samples[key]) for key in keys if key in self._samples]
        for sample in found:
            if len(sample) >= MIN_SAMPLES:
                return sample
        return found[0] if found else ()


def quantile_plan(policy: PollPolicy, durations: Sequence[float]) -> tuple[float, ...]:
    """When to poll (real seconds after submission, increasing), from the durations seen for this kind
    of task; empty when there are too few to trust, or the policy keeps the catalogue rule.

    The default quantiles (0.10, 0.40, 0.75, 0.95) are chosen for two things at once:

    - Requests. A task is asked about once more for each planned poll it outlives, so the expected count
      is 1 + (0.90 + 0.60 + 0.25) plus a little for the 5 % past the last point: about 2.8 per task,
      whatever the spread. A fit from 50 samples moves the real count by about 0.2 either way, so the
      plan aims below three rather than at it.
    - Time to notice, relative to the task's own run. The points are evenly spaced in normal score
      (-1.28, -0.25, 0.67, 1.64), so each poll comes the same factor after the one before and no
      stretch of the distribution waits longer than another. A first poll at a high quantile would
      save requests but leave early tasks waiting: at the 90th percentile, a task at the 1st waits more
      than its own run time again; from the 10th it waits about a third of it with a 25 % spread, and
      under a fifth with a 10 % spread. The spread sets that tail: at a 25 % spread, a 99th percentile
      of 15 % takes about five requests per task.

    The quantiles come from a log-normal fitted to the sample (the mean and spread of log durations),
    not from its order statistics: with 50 samples the sample's own 10th percentile swings by about a
    quarter of the spread, which in simulation cost more tail latency (p99 42 % of the run against 38 %
    at a 25 % spread) than the shape assumption does.

    A policy whose first poll comes after the expected end (`first_fraction` of 1 or more) is a safety
    net for callbacks; polls during the task would undo it, so it gets no plan."""
    if len(durations) < MIN_SAMPLES or not policy.quantiles or policy.first_fraction >= 1:
        return ()
    logs = [math.log(seconds) for seconds in durations if seconds > 0]
    if len(logs) < MIN_SAMPLES:
        return ()
    centre, spread = statistics.fmean(logs), statistics.stdev(logs)
    return tuple(sorted({math.exp(centre + spread * _NORMAL.inv_cdf(q)) for q in policy.quantiles}))


def next_delay(
    policy: PollPolicy,
    elapsed: float,
    expected: float,
    *,
    plan: Sequence[float] = (),
    rng: random.Random | None = None,
) -> float:
    """Seconds until the next poll, given seconds since submission and the expected duration.

    `plan` holds the planned poll times still ahead (from `quantile_plan`): the first sets the delay.
    Without one, the catalogue rule applies; past a plan's last point that is the growth rule.
    `expected` and `plan` are in unscaled (real Kie) seconds; `elapsed` and the result are in scaled
    seconds.
    """
    scale = policy.scale
    real_elapsed = elapsed / scale if scale > 0 else elapsed
    first = policy.first_fraction * expected
    if plan:
        delay = plan[0] - real_elapsed
    elif real_elapsed < first:
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
