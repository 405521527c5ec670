"""Learned durations and the schedule built from them: key selection, the quantile plan, its budget."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from kie import catalog
from kie.client import AsyncKie
from kie.protocol.flows import Watch
from kie.protocol.polling import (
    MIN_SAMPLES,
    PollClock,
    PollPolicy,
    duration_keys,
    next_delay,
    quantile_plan,
)
from kie.sandbox.server import SandboxServer

KLING = "kling-2.6/text-to-video"  # the catalogue says 120 s
POLICY = PollPolicy(jitter=0)


def watch(clock: PollClock | None, values: dict[str, object] | None = None, **kw: float) -> Watch:
    return Watch.begin(
        catalog.get(KLING), "t", policy=POLICY, now=0.0, deadline=3600, learned=clock, values=values, **kw
    )


def noticed(w: Watch, done_at: float) -> tuple[int, float]:
    """Follow the watch's schedule on a pretend clock: (status requests, seconds from done to noticed)."""
    now, polls = w.start, 0
    while True:
        now += w.delay(now)
        polls += 1
        if now >= done_at:
            return polls, now - done_at


def learned(center: float, spread: float, rng: random.Random, count: int = 1000) -> PollClock:
    """A clock that knows the distribution well, so a test sees the plan rather than sampling luck."""
    clock = PollClock(keep=count)
    for _ in range(count):
        clock.observe((KLING,), center * rng.lognormvariate(0, spread))
    return clock


# -- keys -----------------------------------------------------------------------------------------
def test_keys_name_the_duration_options_in_one_spelling_and_ignore_the_rest() -> None:
    key = duration_keys(KLING, {"duration": 5, "resolution": "1080P", "prompt": "a cat", "sound": True})
    assert key == (f"{KLING}?duration=5&resolution=1080p", KLING)
    assert duration_keys(KLING, {"resolution": "1080p", "duration": "5", "prompt": "a dog"}) == key
    assert duration_keys(KLING, {"duration": 5.0, "resolution": " 1080p "}) == key
    assert duration_keys(KLING, {"duration": "10"}) != duration_keys(KLING, {"duration": "5"})
    assert duration_keys(KLING, {"prompt": "a cat", "image_urls": ["u"]}) == (KLING,)
    assert duration_keys(KLING, {"duration": ["5"], "mode": None}) == (KLING,)
    assert duration_keys(KLING, None) == (KLING,)


def test_durations_come_from_the_options_then_the_model() -> None:
    clock = PollClock()
    five, ten = duration_keys(KLING, {"duration": 5}), duration_keys(KLING, {"duration": 10})
    for seconds in (100, 101, 102, 103, 104):
        clock.observe(five, seconds)
    clock.observe(ten, 200)

    assert clock.durations(five) == (100, 101, 102, 103, 104)
    # One 10-second sample is too few for a spread: the model's five samples (and this one) stand in.
    assert clock.durations(ten) == (100, 101, 102, 103, 104, 200)
    assert clock.durations(duration_keys("other/model", {"duration": 5})) == ()


def test_a_key_with_a_few_samples_is_used_when_nothing_better_exists() -> None:
    clock = PollClock()
    clock.observe(duration_keys(KLING, {"duration": 5}), 50)
    assert clock.durations(duration_keys(KLING, {"duration": 5})) == (50,)
    assert clock.durations(duration_keys(KLING, {"duration": 10})) == (50,)  # via the model


def test_the_clock_keeps_the_newest_samples_and_ignores_nonsense() -> None:
    clock = PollClock(keep=3)
    for seconds in (1, 2, 3, 4, 0, -5, float("nan"), float("inf")):
        clock.observe((KLING,), seconds)
    assert clock.durations((KLING,)) == (2, 3, 4)


# -- the schedule ---------------------------------------------------------------------------------
def test_without_samples_the_catalogue_rule_runs_as_before() -> None:
    w = watch(PollClock(), {"duration": 5})
    assert w.plan == ()
    assert w.delay(0.0) == next_delay(POLICY, 0.0, 120) == 30  # capped steps toward 0.8 x 120 s


def test_a_few_samples_move_the_expected_duration_but_make_no_plan() -> None:
    clock = PollClock()
    for seconds in (20, 30, 25):
        clock.observe((KLING,), seconds)
    w = watch(clock)
    assert w.plan == () and w.expected == 25
    assert w.delay(0.0) == pytest.approx(20)  # 0.8 x 25 s


def test_the_plan_rises_through_the_learned_distribution() -> None:
    rng = random.Random(3)
    durations = [100 * rng.lognormvariate(0, 0.25) for _ in range(4000)]
    plan = quantile_plan(POLICY, durations[:1000])
    assert list(plan) == sorted(set(plan)) and len(plan) == len(POLICY.quantiles)
    # Each planned poll has about its quantile of the tasks done by then.
    for q, at in zip(POLICY.quantiles, plan, strict=True):
        assert sum(d <= at for d in durations[1000:]) / 3000 == pytest.approx(q, abs=0.03)
    assert quantile_plan(POLICY, durations[: MIN_SAMPLES - 1]) == ()
    assert quantile_plan(replace(POLICY, quantiles=()), durations) == ()


def test_a_callback_safety_net_gets_no_plan() -> None:
    durations = [100.0, 90.0, 110.0, 95.0, 105.0, 100.0]
    assert quantile_plan(replace(POLICY, first_fraction=3.0), durations) == ()


@pytest.mark.parametrize(("spread", "worst_p99"), [(0.10, 0.16), (0.25, 0.33)])
def test_the_learned_plan_asks_at_most_three_times_per_task(spread: float, worst_p99: float) -> None:
    rng = random.Random(11)
    clock = learned(120, spread, rng)  # the catalogue's 120 s is right on average: only the spread is new
    tasks = [120 * rng.lognormvariate(0, spread) for _ in range(1000)]
    warm = [noticed(watch(clock), d) for d in tasks]
    cold = [noticed(watch(None), d) for d in tasks]

    def requests(runs: list[tuple[int, float]]) -> float:
        return sum(polls for polls, _ in runs) / len(runs)

    assert requests(warm) <= 3.0 < requests(cold)
    late = sorted(delay / d for (_, delay), d in zip(warm, tasks, strict=True))
    assert late[int(0.99 * len(late))] <= worst_p99


def test_each_delay_books_one_planned_poll() -> None:
    clock = PollClock()
    for seconds in (100, 90, 110, 95, 105, 100, 98):
        clock.observe((KLING,), seconds)
    w = watch(clock)
    first, second = w.plan[:2]
    assert w.delay(0.0) == pytest.approx(first)
    # Jitter brought the poll forward by 2 s: the next one goes to the second point, not back to the first.
    assert w.delay(first - 2) == pytest.approx(second - first + 2)

    resumed = watch(clock, elapsed=(first + second) / 2)
    assert resumed.delay(0.0) == pytest.approx((second - first) / 2)


def test_planned_waits_are_not_capped_but_never_below_the_minimum() -> None:
    assert next_delay(POLICY, 0, 120, plan=(95.0, 110.0)) == 95  # not 30 s steps toward it
    assert next_delay(POLICY, 94.8, 120, plan=(95.0,)) == POLICY.min_interval
    assert next_delay(replace(POLICY, scale=0.01), 0.5, 120, plan=(95.0,)) == pytest.approx(0.45)


# -- learning over HTTP ---------------------------------------------------------------------------
@pytest.mark.parametrize("sandbox", [{"duration_jitter": 0.0}], indirect=True)
async def test_a_task_waited_for_by_id_teaches_its_options_with_kies_own_duration(
    sandbox: SandboxServer, aclient: AsyncKie
) -> None:
    values = {"prompt": "a lighthouse", "duration": "5", "aspect_ratio": "16:9", "sound": False}
    sub = await aclient.submit(KLING, values)
    status = await aclient.wait(sub.task_id, KLING)

    assert status.cost_time is not None
    keys = duration_keys(KLING, {"duration": 5})
    assert aclient.config.learned.durations(keys[:1]) == (status.cost_time,)
    assert aclient.config.learned.durations((KLING,)) == (status.cost_time,)
