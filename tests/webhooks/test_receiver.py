"""The receiver over real loopback HTTP with real sandbox callbacks: hints re-checked against the API,
lost creates recovered through their token, forgeries and strangers refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from kie import catalog
from kie.client import Kie
from kie.errors import SubmissionUnknownError
from kie.protocol import flows
from kie.sandbox.server import SandboxServer
from kie.store import DONE, PENDING, RUNNING, SUBMITTING, UNKNOWN, Ledger, NewJob
from kie.webhooks import Receiver, callback_url, sign
from tests.conftest import FAST_RETRY, client_settings, poll_policy
from tests.receiver import Served, until

KEY = "whk-receiver-test"
pytestmark = pytest.mark.parametrize("sandbox", [{"webhook_key": KEY}], indirect=True)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


@pytest.fixture
def served(sandbox: SandboxServer, ledger: Ledger, tmp_path: Path) -> Iterator[Served]:
    receiver = Receiver(
        ledger=ledger, settings=client_settings(sandbox), output_dir=tmp_path / "out", key=KEY
    )
    with Served(receiver) as running:
        yield running


def new_job(ledger: Ledger, model: str = "nano-banana-pro", values: dict | None = None) -> str:
    (job_id,) = ledger.add_jobs(None, [NewJob(model, values or {"prompt": "a heron"}, estimated_credits=18)])
    return job_id


def submit_with_token(
    sandbox: SandboxServer, ledger: Ledger, served: Served, job_id: str
) -> tuple[dict, str | None]:
    claimed = ledger.claim_for_submit(job_id, 60)
    assert claimed is not None
    spec = catalog.get(claimed["model"])
    with Kie(
        settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
    ) as client:
        try:
            created = client.run(
                flows.submit(
                    spec, dict(claimed["input"]), callback_url(served.url, claimed["callback_token"])
                )
            )
        except SubmissionUnknownError:
            ledger.transition(job_id, SUBMITTING, UNKNOWN)
            return dict(claimed), None
    ledger.mark_running(claimed, created.task_id)
    return dict(claimed), created.task_id


def test_a_callback_finishes_the_job_without_polling(
    sandbox: SandboxServer, ledger: Ledger, served: Served
) -> None:
    job_id = new_job(ledger)
    submit_with_token(sandbox, ledger, served, job_id)
    until(lambda: ledger.job(job_id)["state"] == DONE)  # type: ignore[index]
    (saved,) = ledger.files_of(job_id)
    assert Path(saved["path"]).exists()
    assert sandbox.state.requests_for("recordInfo") == 1  # only the receiver's authoritative re-read


def test_a_lost_create_is_recovered_through_its_callback(
    sandbox: SandboxServer, ledger: Ledger, served: Served
) -> None:
    sandbox.state.inject("createTask", "drop_after_create")
    job_id = new_job(ledger)
    _, task_id = submit_with_token(sandbox, ledger, served, job_id)
    assert task_id is None and ledger.job(job_id)["state"] == UNKNOWN  # type: ignore[index]
    until(lambda: ledger.job(job_id)["state"] == DONE)  # type: ignore[index]
    job = ledger.job(job_id)
    assert job is not None and job["task_id"] in sandbox.state.tasks
    assert len(sandbox.state.tasks) == 1  # recovered, not paid for again
    assert any(
        (e["detail"] or {}).get("via") == "callback"
        and (e["detail"] or {}).get("confirmed")
        and e["to_state"] == RUNNING
        for e in ledger.events_of(job_id)
    )


def test_duplicate_deliveries_are_harmless(sandbox: SandboxServer, ledger: Ledger, served: Served) -> None:
    sandbox.state.inject("callback", "callback_duplicate")
    job_id = new_job(ledger)
    submit_with_token(sandbox, ledger, served, job_id)
    until(lambda: len([c for c in sandbox.state.callbacks if c.status is not None]) == 2)
    # The copy carries the same (taskId, timestamp): accepted as a duplicate or refused as a replay.
    assert {c.status for c in sandbox.state.callbacks} <= {200, 401}
    until(lambda: ledger.job(job_id)["state"] == DONE)  # type: ignore[index]
    assert len(ledger.files_of(job_id)) == 1
    assert [e["to_state"] for e in ledger.events_of(job_id)].count(DONE) == 1


def post(
    served: Served, token: str, body: dict, task_id: str, *, key: str = KEY, offset: int = 0
) -> httpx.Response:
    stamp = int(time.time()) + offset
    headers = {"X-Webhook-Timestamp": str(stamp), "X-Webhook-Signature": sign(key, task_id, stamp)}
    return httpx.post(
        f"{served.url}/kie/callback/{token}", content=json.dumps(body), headers=headers, timeout=5
    )


def test_strangers_and_forgeries_change_nothing(
    sandbox: SandboxServer, ledger: Ledger, served: Served
) -> None:
    job_id = new_job(ledger)
    token = ledger.job(job_id)["callback_token"]  # type: ignore[index]
    body = {"code": 200, "data": {"taskId": "t-fake", "state": "success", "resultJson": "{}"}}
    assert post(served, "not-a-token", body, "t-fake").status_code == 403
    assert post(served, token, body, "t-fake", key="wrong").status_code == 401
    assert post(served, token, body, "t-fake", offset=-3600).status_code == 401  # stale
    assert post(served, token, body, "t-fake", offset=3600).status_code == 401  # future
    assert ledger.job(job_id)["state"] == PENDING and served.receiver.accepted == 0  # type: ignore[index]
    assert (
        httpx.post(f"{served.url}/kie/callback/{token}", content=b"x" * (2 << 20), timeout=5).status_code
        == 413
    )


def test_the_api_answer_wins_over_the_body(sandbox: SandboxServer, ledger: Ledger, served: Served) -> None:
    job_id = new_job(ledger)
    _, task_id = submit_with_token(sandbox, ledger, served, job_id)
    assert task_id is not None
    token = ledger.job(job_id)["callback_token"]  # type: ignore[index]
    forged_body = {
        "code": 200,
        "data": {
            "taskId": task_id,
            "state": "success",
            "resultJson": json.dumps({"resultUrls": ["https://evil.example/x.png"]}),
        },
    }
    response = post(served, token, forged_body, task_id, offset=-1)  # validly signed, lying body
    assert response.status_code in (200, 401)  # 401 only if the real callback used the same second
    until(lambda: ledger.job(job_id)["state"] == DONE)  # type: ignore[index]
    job = ledger.job(job_id)
    assert job is not None and job["result_urls"] == sandbox.state.tasks[task_id].result_urls
    assert "evil.example" not in json.dumps(job["result_urls"])


def test_suno_stages_show_as_progress(sandbox: SandboxServer, ledger: Ledger, served: Served) -> None:
    events: list[str] = []
    served.receiver.on_event = lambda kind, data: events.append(kind)
    job_id = new_job(ledger, "suno/V5", {"prompt": "a folk song about herons"})
    submit_with_token(sandbox, ledger, served, job_id)
    until(lambda: ledger.job(job_id)["state"] == DONE)  # type: ignore[index]
    assert events.count("progress") >= 1 and events.count("done") == 1  # workers run concurrently
    assert len(ledger.files_of(job_id)) == 2


def test_send_test_against_the_receiver(
    sandbox: SandboxServer, ledger: Ledger, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from kie.cli import app

    job_id = new_job(ledger)
    token = ledger.job(job_id)["callback_token"]  # type: ignore[index]
    monkeypatch.setenv("KIE_WEBHOOK_KEY", KEY)
    runner = CliRunner()
    url = f"{served.url}/kie/callback/{token}"
    genuine = runner.invoke(app, ["webhook", "send-test", url, "--json"])
    forged = runner.invoke(app, ["webhook", "send-test", url, "--forged", "--json"])
    assert genuine.exit_code == 0 and json.loads(genuine.stdout)["accepted"] is True
    assert forged.exit_code == 0 and json.loads(forged.stdout)["accepted"] is False
    stranger = runner.invoke(app, ["webhook", "send-test", f"{served.url}/kie/callback/nope"])
    assert stranger.exit_code == 1 and "WRONG" in stranger.stdout


def test_the_webhook_key_never_reaches_the_logs(
    sandbox: SandboxServer, ledger: Ledger, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    job_id = new_job(ledger)
    token = ledger.job(job_id)["callback_token"]  # type: ignore[index]
    body = {"code": 200, "data": {"taskId": "t-x", "state": "success"}}
    post(served, token, body, "t-x", key="forged-key")
    post(served, "unknown", body, "t-x")
    submit_with_token(sandbox, ledger, served, job_id)
    until(lambda: ledger.job(job_id)["state"] == DONE)  # type: ignore[index]
    assert caplog.records and KEY not in caplog.text and "forged-key" not in caplog.text


def test_a_receiver_mounted_in_another_app_works_without_its_lifespan(
    sandbox: SandboxServer, ledger: Ledger, tmp_path: Path
) -> None:
    receiver = Receiver(ledger=ledger, settings=client_settings(sandbox), output_dir=tmp_path / "m", key=KEY)
    parent = Starlette(routes=[Mount("/", app=receiver.app())])  # Starlette skips a mounted lifespan
    with Served(receiver, app=parent) as served:
        job_id = new_job(ledger)
        submit_with_token(sandbox, ledger, served, job_id)
        until(lambda: ledger.job(job_id)["state"] == DONE)  # type: ignore[index]
    assert receiver.accepted == 1 and len(ledger.files_of(job_id)) == 1
