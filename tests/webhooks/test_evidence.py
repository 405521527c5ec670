"""Evidence before attaching: a signed callback or a user's `--task-id` attaches a lost job only to a
task Kie confirms; replays stay refused across a restart; a slow body is cut off."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from kie import catalog
from kie.client import Kie
from kie.protocol import flows
from kie.sandbox.server import SandboxServer
from kie.store import DONE, SUBMITTING, UNKNOWN, Ledger, NewJob
from kie.webhooks import Receiver, callback_url, sign
from tests.cli.test_commands_e2e import KIE, env
from tests.conftest import FAST_RETRY, client_settings, poll_policy
from tests.receiver import Served, until

KEY = "whk-evidence"
pytestmark = pytest.mark.parametrize("sandbox", [{"webhook_key": KEY}], indirect=True)


def unknown_job(ledger: Ledger) -> dict:
    (job_id,) = ledger.add_jobs(
        None, [NewJob("nano-banana-pro", {"prompt": "a heron"}, estimated_credits=18)]
    )
    claimed = ledger.claim_for_submit(job_id, 60)
    assert claimed is not None
    assert ledger.transition(job_id, SUBMITTING, UNKNOWN)
    job = ledger.job(job_id)
    assert job is not None
    return dict(job)


def signed_post(url: str, task_id: str, body: dict) -> httpx.Response:
    stamp = int(time.time())
    headers = {"X-Webhook-Timestamp": str(stamp), "X-Webhook-Signature": sign(KEY, task_id, stamp)}
    return httpx.post(url, content=json.dumps(body), headers=headers, timeout=5)


def receiver(sandbox: SandboxServer, ledger: Ledger, tmp_path: Path, **options: float) -> Receiver:
    return Receiver(
        ledger=ledger, settings=client_settings(sandbox), output_dir=tmp_path / "out", key=KEY, **options
    )


def test_a_signed_callback_for_a_task_kie_does_not_know_attaches_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    job = unknown_job(ledger)
    events: list[str] = []
    rec = receiver(sandbox, ledger, tmp_path)
    rec.on_event = lambda kind, data: events.append(kind)
    with Served(rec) as served:
        body = {"code": 200, "data": {"taskId": "no-such-task", "state": "success"}}
        answer = signed_post(callback_url(served.url, job["callback_token"]), "no-such-task", body)
        assert answer.status_code == 200  # verified, so answered at once; the API decides next
        until(lambda: "refetch_failed" in events)
    after = ledger.job(job["id"])
    assert after is not None and after["state"] == UNKNOWN and after["task_id"] is None


def test_a_callback_whose_task_carries_another_jobs_token_is_refused(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A real task of job A, reported to job B's URL (say, a leaked token): B stays unknown."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    a, b = unknown_job(ledger), unknown_job(ledger)
    events: list[str] = []
    rec = receiver(sandbox, ledger, tmp_path)
    rec.on_event = lambda kind, data: events.append(kind)
    with Served(rec) as served:
        with Kie(
            settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
        ) as c:
            created = c.run(
                flows.submit(
                    catalog.get("nano-banana-pro"),
                    {"prompt": "x"},
                    callback_url(served.url, a["callback_token"]),
                )
            )
        body = {"code": 200, "data": {"taskId": created.task_id, "state": "success"}}
        assert (
            signed_post(callback_url(served.url, b["callback_token"]), created.task_id, body).status_code
            == 200
        )
        until(lambda: "evidence_refused" in events)
        until(lambda: (ledger.job(a["id"]) or {}).get("state") == DONE)  # A's own callback still finishes A
    after = ledger.job(b["id"])
    assert after is not None and after["state"] == UNKNOWN and after["task_id"] is None


def test_a_replayed_callback_is_refused_after_a_restart(sandbox: SandboxServer, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    job = unknown_job(ledger)
    stamp = int(time.time())
    headers = {"X-Webhook-Timestamp": str(stamp), "X-Webhook-Signature": sign(KEY, "t-1", stamp)}
    body = json.dumps({"code": 200, "data": {"taskId": "t-1", "state": "generating"}})
    with Served(receiver(sandbox, ledger, tmp_path)) as first:
        url = callback_url(first.url, job["callback_token"])
        assert httpx.post(url, content=body, headers=headers, timeout=5).status_code == 200
    restarted = Ledger(f"sqlite:///{tmp_path / 'l.db'}")  # a new process on the same store
    with Served(receiver(sandbox, restarted, tmp_path)) as second:
        url = callback_url(second.url, job["callback_token"])
        replay = httpx.post(url, content=body, headers=headers, timeout=5)
    assert replay.status_code == 401 and "replay" in replay.text


def test_a_body_that_trickles_in_is_cut_off(sandbox: SandboxServer, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    job = unknown_job(ledger)
    with Served(receiver(sandbox, ledger, tmp_path, body_timeout=0.3)) as served:
        host, port = served.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                f"POST /kie/callback/{job['callback_token']} HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
            )
            sock.settimeout(5)
            answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408")


def test_resolve_with_a_task_id_is_checked_with_kie_first(sandbox: SandboxServer, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger(store)
    lost, other = unknown_job(ledger), unknown_job(ledger)
    with Kie(
        settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
    ) as c:
        real = c.run(flows.submit(catalog.get("nano-banana-pro"), {"prompt": "x"}, None)).task_id
    assert ledger.attach_task(other["id"], real)
    run_env = env(tmp_path) | {
        "KIE_API_KEY": sandbox.api_key,
        "KIE_BASE_URL": sandbox.url,
        "KIE_UPLOAD_BASE_URL": sandbox.url,
        "KIE_STORE_URL": store,
    }

    def resolve(task: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KIE, "jobs", "resolve", lost["id"], "--task-id", task],
            capture_output=True,
            text=True,
            env=run_env,
            timeout=60,
        )

    made_up = resolve("not-a-real-task")
    assert (
        made_up.returncode == 2
        and "could not confirm" in made_up.stderr
        and "Traceback" not in made_up.stderr
    )
    taken = resolve(real)
    assert (
        taken.returncode == 2 and "already belongs to job" in taken.stderr and "Traceback" not in taken.stderr
    )
    job = ledger.job(lost["id"])
    assert job is not None and job["state"] == UNKNOWN
