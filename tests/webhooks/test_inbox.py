"""Accepted callbacks are in the ledger before they are answered: a receiver killed with a queue of
them loses none, and the next receiver on the store finishes them without a new callback."""

from __future__ import annotations

from pathlib import Path

import pytest

from kie import catalog
from kie.client import Kie
from kie.protocol import flows
from kie.sandbox.server import SandboxServer
from kie.store import DONE, Ledger, NewJob
from kie.webhooks import Receiver
from tests.conftest import FAST_RETRY, client_settings, poll_policy
from tests.receiver import Served, until

KEY = "whk-inbox"
pytestmark = pytest.mark.parametrize("sandbox", [{"webhook_key": KEY}], indirect=True)


def running_job(sandbox: SandboxServer, ledger: Ledger) -> tuple[str, str]:
    (job_id,) = ledger.add_jobs(
        None, [NewJob("nano-banana-pro", {"prompt": "a heron"}, estimated_credits=18)]
    )
    claimed = ledger.claim_for_submit(job_id, 60)
    assert claimed is not None
    with Kie(
        settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
    ) as c:
        task_id = c.run(flows.submit(catalog.get("nano-banana-pro"), {"prompt": "a heron"}, None)).task_id
        c.wait(task_id, "nano-banana-pro")
    assert ledger.mark_running(claimed, task_id)
    return job_id, task_id


def test_a_restarted_receiver_finishes_what_a_killed_one_accepted(
    sandbox: SandboxServer, store_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(store_url)
    jobs = [running_job(sandbox, ledger) for _ in range(3)]
    # What a receiver killed right after answering leaves behind: accepted, recorded, unprocessed.
    for job_id, task_id in jobs:
        body = {"code": 200, "data": {"taskId": task_id, "state": "success"}}
        assert (
            ledger.accept_callback(job_id, task_id, body, replay_key=f"{task_id}.1", window=600) is not None
        )
    assert len(ledger.open_callbacks()) == 3
    receiver = Receiver(
        ledger=Ledger(store_url), settings=client_settings(sandbox), output_dir=tmp_path, key=KEY
    )
    with Served(receiver):
        until(lambda: all((ledger.job(j) or {}).get("state") == DONE for j, _ in jobs))
    assert ledger.open_callbacks() == []
    assert all(len(ledger.files_of(j)) == 1 for j, _ in jobs)
    assert not sandbox.state.callbacks  # no new callback was needed


def test_a_replay_key_is_accepted_once(sandbox: SandboxServer, store_url: str) -> None:
    ledger = Ledger(store_url)
    job_id, task_id = running_job(sandbox, ledger)
    body = {"data": {"taskId": task_id}}
    first = ledger.accept_callback(job_id, task_id, body, replay_key="k", window=600)
    again = Ledger(store_url).accept_callback(job_id, task_id, body, replay_key="k", window=600)
    assert first is not None and again is None
    ledger.callback_done(first)
    assert ledger.open_callbacks() == []
