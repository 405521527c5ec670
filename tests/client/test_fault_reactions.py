"""Every named sandbox fault, provoked over real HTTP, and the client's documented reaction to it:
retry, `unknown` (never resent), a failed task, a recovered download, or a callback taken as a hint and
re-read from the API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import kie
from kie.client import Kie
from kie.client._base import sync_transport
from kie.config import Timeouts
from kie.errors import (
    AuthenticationError,
    FeatureDisabledError,
    InsufficientCreditsError,
    SubmissionUnknownError,
    TaskFailedError,
)
from kie.protocol.families.suno import SunoFamily
from kie.protocol.task import TaskState
from kie.sandbox.server import SandboxServer
from kie.webhooks import ReplayCache, verify
from tests.conftest import FAST_RETRY, client_settings, poll_policy
from tests.receiver import CallbackReceiver, Received

MODEL = "google/nano-banana"
PNG = b"\x89PNG\r\n\x1a\n"
WEBHOOK_KEY = "whk-fault-tests"


def plan(sandbox: SandboxServer, name: str, times: int = 1) -> None:
    with httpx.Client(base_url=sandbox.url, transport=sync_transport()) as http:
        answer = http.post("/_sandbox/faults", json={"name": name, "times": times})
    assert answer.json()["ok"], answer.text


def injected(sandbox: SandboxServer) -> dict[str, int]:
    with httpx.Client(base_url=sandbox.url, transport=sync_transport()) as http:
        counts: dict[str, int] = http.get("/_sandbox/state").json()["injected"]
    return counts


def creates(sandbox: SandboxServer) -> int:
    return sandbox.state.requests_for("createTask")


# -- create ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["create.429", "create.433", "create.455"])
def test_rejected_creates_are_retried_and_paid_once(
    sandbox: SandboxServer, client: Kie, tmp_path: Path, name: str
) -> None:
    plan(sandbox, name)
    gen = client.generate(MODEL, prompt="a fox", output_dir=tmp_path)
    assert gen.paths and gen.paths[0].read_bytes().startswith(PNG)
    assert creates(sandbox) == 2 and len(sandbox.state.tasks) == 1
    assert injected(sandbox) == {name: 1}


@pytest.mark.parametrize(
    ("name", "tasks"),
    [
        ("create.500", 0),
        ("create.500_after", 1),
        ("create.drop", 0),
        ("create.drop_after_create", 1),
        ("create.malformed", 0),
    ],
)
def test_ambiguous_creates_become_unknown_and_are_never_resent(
    sandbox: SandboxServer, client: Kie, name: str, tasks: int
) -> None:
    plan(sandbox, name)
    with pytest.raises(SubmissionUnknownError, match="not resent"):
        client.submit(MODEL, prompt="a fox")
    assert creates(sandbox) == 1  # one request: a task may exist, so nothing is sent twice
    assert len(sandbox.state.tasks) == tasks and injected(sandbox) == {name: 1}


def test_disabled_feature_is_refused_without_a_task(sandbox: SandboxServer, client: Kie) -> None:
    plan(sandbox, "create.505")
    with pytest.raises(FeatureDisabledError):
        client.submit(MODEL, prompt="a fox")
    assert creates(sandbox) == 1 and sandbox.state.tasks == {}


def test_revoked_key_is_a_401_on_the_next_request(sandbox: SandboxServer, client: Kie) -> None:
    assert client.credits() > 0
    with httpx.Client(base_url=sandbox.url, transport=sync_transport()) as http:
        assert http.post("/_sandbox/keys/revoke", json={"key": sandbox.api_key}).json()["ok"]
    with pytest.raises(AuthenticationError, match="KIE_API_KEY"):
        client.credits()
    with pytest.raises(AuthenticationError):
        client.submit(MODEL, prompt="a fox")
    assert sandbox.state.tasks == {}


# -- status ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["status.transient_null", "status.550"])
def test_transient_status_answers_are_polled_through(
    sandbox: SandboxServer, client: Kie, tmp_path: Path, name: str
) -> None:
    plan(sandbox, name)
    gen = client.generate(MODEL, prompt="a fox", output_dir=tmp_path)
    assert gen.status.state is TaskState.SUCCEEDED and gen.paths
    assert injected(sandbox) == {name: 1} and sandbox.state.requests_for(f"jobs/recordInfo:{name}") == 1
    assert sandbox.state.requests_for("recordInfo") >= 1  # and polled on to the end


def test_a_transient_no_record_past_the_grace_window_does_not_abandon_a_paid_task(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Past the grace window (here: none at all), one "recordInfo is null" about a task Kie knows is
    polled through; only several in a row would end the wait."""
    from dataclasses import replace

    plan(sandbox, "status.transient_null")
    policy = replace(poll_policy(sandbox.config.time_scale), not_visible_grace=0.0)
    with Kie(settings=client_settings(sandbox), poll=policy, retry=FAST_RETRY) as patient:
        gen = patient.generate(MODEL, prompt="a fox", output_dir=tmp_path)
    assert gen.status.state is TaskState.SUCCEEDED and gen.paths
    assert injected(sandbox) == {"status.transient_null": 1}


@pytest.mark.parametrize(
    ("name", "error"), [("status.401", AuthenticationError), ("status.402", InsufficientCreditsError)]
)
def test_mid_run_401_and_402_stop_the_wait_and_leave_the_task_fetchable(
    sandbox: SandboxServer, client: Kie, name: str, error: type[Exception]
) -> None:
    plan(sandbox, name)
    sub = client.submit(MODEL, prompt="a fox")
    with pytest.raises(error):
        client.wait(sub.task_id, MODEL)
    assert client.wait(sub.task_id, MODEL).state is TaskState.SUCCEEDED  # the paid task was not lost
    assert injected(sandbox) == {name: 1}


@pytest.mark.parametrize(
    ("name", "code"),
    [("status.501", "501"), ("status.408", "408"), ("status.451", "451"), ("task.fail", "500")],
)
def test_terminal_status_faults_are_failed_tasks(
    sandbox: SandboxServer, client: Kie, tmp_path: Path, name: str, code: str
) -> None:
    plan(sandbox, name)
    balance = client.credits()
    with pytest.raises(TaskFailedError) as caught:
        client.generate(MODEL, prompt="a fox", output_dir=tmp_path)
    assert caught.value.fail_code == code and "not charged" in str(caught.value)
    assert client.credits() == balance and injected(sandbox) == {name: 1}


@pytest.mark.parametrize(
    "sandbox", [{"faults": "price.drift=0.1", "recordinfo_fields": "2026-09"}], indirect=True
)
def test_price_drift_shows_in_the_charge_and_the_balance(
    sandbox: SandboxServer, client: Kie, tmp_path: Path
) -> None:
    balance = client.credits()
    gen = client.generate(MODEL, prompt="a fox", output_dir=tmp_path)
    estimate = gen.estimate.credits_each
    assert estimate is not None and gen.status.credits_consumed == pytest.approx(estimate * 1.1)
    assert balance - client.credits() == pytest.approx(estimate * 1.1)


def test_charge_failed_charges_a_failed_task(sandbox: SandboxServer, client: Kie, tmp_path: Path) -> None:
    plan(sandbox, "task.fail")
    plan(sandbox, "charge_failed")
    balance = client.credits()
    with pytest.raises(TaskFailedError):
        client.generate(MODEL, prompt="a fox", output_dir=tmp_path)
    spent = balance - client.credits()
    assert spent > 0 and spent == sandbox.state.spent
    assert injected(sandbox) == {"task.fail": 1, "charge_failed": 1}


# -- downloads ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "refreshed"),
    [
        ("download.500", 0),
        ("download.403", 1),
        ("download.truncate", 0),
        ("download.wrong_bytes", 0),
        ("download.expired", 1),
    ],
)
def test_download_faults_are_recovered(
    sandbox: SandboxServer, client: Kie, tmp_path: Path, name: str, refreshed: int
) -> None:
    plan(sandbox, name)
    gen = client.generate(MODEL, prompt="a fox", output_dir=tmp_path)
    (path,) = gen.paths
    data = path.read_bytes()
    assert data.startswith(PNG) and hashlib.sha256(data).hexdigest() == gen.results[0].sha256
    assert path.suffix == ".png" and not list(tmp_path.glob(".*.part"))
    assert sandbox.state.requests_for("download-url") == refreshed  # a refused link is refreshed
    assert injected(sandbox) == {name: 1}


def test_a_stalled_download_times_out_and_is_fetched_again(sandbox: SandboxServer, tmp_path: Path) -> None:
    plan(sandbox, "download.stall")  # 600 s x 0.002 = 1.2 s of silence, past the 0.3 s read timeout
    settings = client_settings(sandbox, timeouts=Timeouts(connect=2, read=0.3, write=5, pool=5))
    with Kie(settings=settings, poll=poll_policy(), retry=FAST_RETRY, create_interval=None) as client:
        gen = client.generate(MODEL, prompt="a fox", output_dir=tmp_path)
    assert gen.paths[0].read_bytes().startswith(PNG) and injected(sandbox) == {"download.stall": 1}


# -- callbacks: a verified callback is a hint; the record is re-read and that answer counts ----------
def hint(hit: Received, replay: ReplayCache) -> str:
    """What kie does with a callback: verify the signature (with a replay cache), take the task id."""
    raw = json.dumps(hit.body).encode()
    return verify(hit.headers, raw, WEBHOOK_KEY, replay=replay).task_id


CALLBACK_SANDBOX = {"webhook_key": WEBHOOK_KEY}


@pytest.mark.parametrize("name", ["callback.timeout_after", "callback.duplicate"])
@pytest.mark.parametrize("sandbox", [CALLBACK_SANDBOX], indirect=True)
def test_repeated_callbacks_are_signed_anew_and_harmless(
    sandbox: SandboxServer, client: Kie, name: str
) -> None:
    plan(sandbox, name)
    replay = ReplayCache()
    with CallbackReceiver() as receiver:
        sub = client.submit(MODEL, prompt="a fox", callback_url=receiver.url)
        hits = receiver.wait_for(2)
    stamps = [h.headers["x-webhook-timestamp"] for h in hits]
    assert len(set(stamps)) == 2  # not a replay: each delivery has its own signature
    assert [hint(h, replay) for h in hits] == [sub.task_id, sub.task_id]
    assert client.get(sub.task_id, MODEL).state is TaskState.SUCCEEDED
    assert injected(sandbox) == {name: 1}
    if name == "callback.timeout_after":
        assert [c.status for c in sandbox.state.callbacks] == [None, 200]


@pytest.mark.parametrize("sandbox", [{**CALLBACK_SANDBOX, "early_callback_lead": 2000.0}], indirect=True)
def test_an_early_callback_is_re_read_until_the_record_agrees(sandbox: SandboxServer, client: Kie) -> None:
    plan(sandbox, "callback.early")
    with CallbackReceiver() as receiver:
        sub = client.submit(MODEL, prompt="a fox", callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    assert hit.body["data"]["state"] == "success"
    task_id = hint(hit, ReplayCache())
    assert client.get(task_id, MODEL).state is not TaskState.SUCCEEDED  # the record is not there yet
    assert client.wait(task_id, MODEL, poll_now=True).state is TaskState.SUCCEEDED
    assert sub.task_id == task_id and injected(sandbox) == {"callback.early": 1}


@pytest.mark.parametrize("sandbox", [CALLBACK_SANDBOX], indirect=True)
def test_a_callback_that_disagrees_loses_to_the_record(sandbox: SandboxServer, client: Kie) -> None:
    plan(sandbox, "callback.disagrees")
    with CallbackReceiver() as receiver:
        sub = client.submit(MODEL, prompt="a fox", callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    assert hit.body["code"] == 501 and hit.body["data"]["state"] == "fail"  # the body says failed
    status = client.get(hint(hit, ReplayCache()), MODEL)
    assert status.state is TaskState.SUCCEEDED and status.result_urls  # the record says otherwise
    assert sub.task_id == status.task_id and injected(sandbox) == {"callback.disagrees": 1}


@pytest.mark.parametrize("sandbox", [CALLBACK_SANDBOX], indirect=True)
def test_out_of_order_stages_do_not_undo_a_finished_song(sandbox: SandboxServer, client: Kie) -> None:
    plan(sandbox, "callback.out_of_order")
    with CallbackReceiver() as receiver:
        sub = client.submit("suno/V5", prompt="a lullaby", callback_url=receiver.url)
        hits = receiver.wait_for(3)
    stages = [h.body["data"]["callbackType"] for h in hits]
    assert stages == ["complete", "first", "text"]
    last = SunoFamily().parse_callback(hits[-1].body)  # the last to arrive is the least finished
    assert last.state is not TaskState.SUCCEEDED or not last.result_urls
    replay = ReplayCache()
    assert {hint(h, replay) for h in hits} == {sub.task_id}
    assert client.get(sub.task_id, "suno/V5").state is TaskState.SUCCEEDED
    assert injected(sandbox) == {"callback.out_of_order": 1}


# -- both recordInfo shapes -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sandbox", [{}, {"recordinfo_fields": "2026-09"}], indirect=True, ids=["april", "2026-09"]
)
def test_the_client_reads_both_record_shapes(sandbox: SandboxServer, client: Kie, tmp_path: Path) -> None:
    gen = client.generate("kling-3.0/video", prompt="a fox", duration="5", output_dir=tmp_path)
    raw: Any = gen.status.raw
    newer = sandbox.config.recordinfo_fields is not None
    assert ("updateTime" in raw) is newer and ("creditsConsumed" in raw) is newer
    assert gen.paths[0].suffix == ".mp4" and gen.status.cost_time is not None
    assert gen.status.input is not None and gen.status.input["duration"] == 5  # "5" echoed as a number
    assert (gen.status.credits_consumed is not None) is newer
    assert kie.TaskState.SUCCEEDED is gen.status.state
