"""The sandbox's one clock: every time it reports is read from here, so the relations hold at any speed.

The sandbox runs tasks at `time_scale` of their real duration (0.01 makes a 12 s task take 0.12 s).
Reported times follow the same scale: virtual time starts at the real wall-clock time the sandbox
started and then advances `1 / time_scale` seconds per real second. A 12 s task therefore reports
`costTime` 12 *and* 12 s between its `createTime` and `completeTime`, as on Kie, instead of two clocks
that disagree by the scale factor. At `time_scale` 1 the virtual clock is the wall clock.

Internally the sandbox keeps scheduling on the monotonic clock (`time.monotonic()`), which this maps to
virtual epoch milliseconds; the mapping is linear, so an expiry scheduled in scaled seconds and one
read on the virtual clock agree.

Callback signature timestamps are the one exception: a receiver checks `X-Webhook-Timestamp` against
its own real clock, so it is real Unix time (see `signature_time`).
"""

from __future__ import annotations

import math
import time


class VirtualClock:
    def __init__(self, time_scale: float, *, wall: float | None = None, mono: float | None = None) -> None:
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(f"time_scale must be a positive number, not {time_scale!r}")
        self.time_scale = time_scale
        self.anchor_wall = time.time() if wall is None else wall
        self.anchor_mono = time.monotonic() if mono is None else mono

    def seconds(self, mono: float | None = None) -> float:
        """Virtual Unix time, in seconds, at monotonic instant `mono` (now when None)."""
        at = time.monotonic() if mono is None else mono
        return self.anchor_wall + (at - self.anchor_mono) / self.time_scale

    def ms(self, mono: float | None = None) -> int:
        """Virtual Unix time in milliseconds: what `createTime`, `completeTime` and `updateTime` show."""
        return round(self.seconds(mono) * 1000)

    @staticmethod
    def cost_seconds(create_ms: int, complete_ms: int) -> int:
        """Kie's `costTime`: whole seconds between create and complete, truncated (63 720 ms → 63)."""
        return max(0, (complete_ms - create_ms) // 1000)

    @staticmethod
    def signature_time(previous: int | None = None) -> int:
        """`X-Webhook-Timestamp`: real Unix seconds, so a receiver's tolerance window works at any time
        scale; strictly later than `previous` (the task's last delivery), so a repeated delivery is
        signed anew and passes a receiver's replay check instead of looking like a replay."""
        now = int(time.time())
        return now if previous is None or now > previous else previous + 1
