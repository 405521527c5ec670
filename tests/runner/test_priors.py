"""Polling priors loaded from the ledger, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import time
from typing import Any

from kie import catalog
from kie.protocol.flows import Watch
from kie.protocol.polling import PollClock, PollPolicy, duration_keys
from kie.protocol.task import TaskState, TaskStatus
from kie.runner.finish import record
from kie.runner.priors import load_priors
from kie.store import DONE, SUCCEEDED, Ledger, NewJob

KLING = "kling-2.6/text-to-video"
IMAGE = "nano-banana-pro"


def finished(
    ledger: Ledger,
    model: str,
    values: dict[str, Any],
    cost_time: float | None,
    *,
    state: TaskState = TaskState.SUCCEEDED,
    downloaded: bool = True,
) -> str:
    """A job taken through the ledger the way a batch takes it: claimed, running, then Kie's verdict."""
    (job_id,) = ledger.add_jobs(None, [NewJob(model, values)])
    claimed = ledger.claim_for_submit(job_id, 60)
    assert claimed is not None
    task_id = f"task-{job_id}"
    assert ledger.mark_running(claimed, task_id)
    assert record(ledger, job_id, TaskStatus(task_id, state, cost_time=cost_time), via="poll")
    if state is TaskState.SUCCEEDED and downloaded:
        assert ledger.transition(job_id, SUCCEEDED, DONE, downloaded_at=time.time())
    return job_id


def test_finished_jobs_become_durations_per_model_and_options(store_url: str) -> None:
    ledger = Ledger(store_url)
    for seconds in (100, 110, 120):
        finished(ledger, KLING, {"prompt": "p", "duration": "5"}, seconds)
    for seconds in (200, 220):
        finished(ledger, KLING, {"prompt": "p", "duration": 10}, seconds, downloaded=False)
    finished(ledger, IMAGE, {"prompt": "p"}, 40)
    # Not durations: a failure, a success without Kie's measure, a job still running.
    finished(ledger, IMAGE, {"prompt": "p"}, 999, state=TaskState.FAILED)
    finished(ledger, IMAGE, {"prompt": "p"}, None)
    (running,) = ledger.add_jobs(None, [NewJob(IMAGE, {"prompt": "p"})])
    claimed = ledger.claim_for_submit(running, 60)
    assert claimed is not None and ledger.mark_running(claimed, "task-running")

    clock = load_priors(ledger)

    five, ten = duration_keys(KLING, {"duration": 5}), duration_keys(KLING, {"duration": "10"})
    assert clock.durations(five[:1]) == (100, 110, 120)
    assert clock.durations(ten[:1]) == (200, 220)  # `succeeded` (not yet saved) counts too
    assert clock.durations((KLING,)) == (100, 110, 120, 200, 220)
    assert clock.durations((IMAGE,)) == (40,)


def test_the_newest_jobs_are_the_ones_kept(store_url: str) -> None:
    ledger = Ledger(store_url)
    for seconds in range(1, 61):
        finished(ledger, IMAGE, {"prompt": "p"}, seconds)

    assert load_priors(ledger).durations((IMAGE,)) == tuple(float(s) for s in range(11, 61))
    assert load_priors(ledger, limit=10).durations((IMAGE,)) == tuple(float(s) for s in range(51, 61))


def test_priors_fill_the_given_clock_and_put_the_first_task_on_a_learned_plan(store_url: str) -> None:
    ledger = Ledger(store_url)
    for seconds in (90, 100, 100, 110, 120, 95):
        finished(ledger, KLING, {"prompt": "p", "duration": "5"}, seconds)
    clock = PollClock()
    clock.observe((IMAGE,), 30)

    assert load_priors(ledger, clock) is clock
    assert clock.durations((IMAGE,)) == (30,)

    spec = catalog.get(KLING)
    policy = PollPolicy(jitter=0)
    cold = Watch.begin(spec, "t1", policy=policy, now=0.0, deadline=600)
    warm = Watch.begin(
        spec, "t2", policy=policy, now=0.0, deadline=600, learned=clock, values={"duration": 5}
    )
    assert cold.plan == ()
    assert len(warm.plan) == len(policy.quantiles)
    assert 85 < warm.plan[0] < 100 < warm.plan[-1] < 140
    # The catalogue's 120 s guess polls at 30, 60, 90 s on the way; the ledger's ~100 s needs none of those.
    assert cold.delay(0.0) == 30
    assert warm.delay(0.0) == warm.plan[0]


def test_an_empty_ledger_gives_an_empty_clock(store_url: str) -> None:
    clock = load_priors(Ledger(store_url))
    assert clock.durations((IMAGE,)) == ()
