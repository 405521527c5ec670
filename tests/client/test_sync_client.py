"""`kie.Kie` against the sandbox over real HTTP: the whole loop, every error class and retry rule."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

import kie
from kie.client import Kie
from kie.protocol import flows
from kie.sandbox.server import SandboxServer
from tests.conftest import FAST_RETRY, client_settings, poll_policy

PROMPT = {"prompt": "a lighthouse at dawn"}


def creates(sandbox: SandboxServer) -> int:
    return sandbox.state.requests_for("createTask")


def test_generate_saves_verified_files(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate("nano-banana-pro", PROMPT, output_dir=tmp_path, aspect_ratio="16:9")
    (result,) = gen.results
    assert result.path == tmp_path / f"{gen.task_id}-1.png"
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == result.sha256
    assert result.read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert gen.status.state is kie.TaskState.SUCCEEDED and gen.estimate.credits == 18
    assert creates(sandbox) == 1 and len(sandbox.state.tasks) == 1
    copy = result.save(tmp_path / "copies")
    assert copy.read_bytes() == result.read()


def test_local_validation_spends_nothing(client: Kie, sandbox: SandboxServer) -> None:
    with pytest.raises(kie.ValidationError) as caught:
        client.generate("nano-banana-pro", {"prompt": "x", "resolution": "3K", "aspect_ration": "16:9"})
    message = str(caught.value)
    assert "`resolution` must be one of 1K, 2K, 4K" in message and "aspect_ratio" in message
    assert sandbox.state.request_log == []


def test_unknown_model_suggests(client: Kie) -> None:
    with pytest.raises(kie.UnknownModelError, match="nano-banana-pro"):
        client.submit("nano-banana-prp", PROMPT)


def test_kie_side_validation_error_is_typed(client: Kie, sandbox: SandboxServer) -> None:
    spec = kie.catalog.get("nano-banana-pro")
    with pytest.raises(kie.ValidationError) as caught:
        client.run(flows.submit(spec, {"prompt": "x", "aspect_ratio": "7:3"}, None))  # bypasses local checks
    assert caught.value.code == 422 and "aspect_ratio" in str(caught.value)


def test_authentication_error_never_shows_the_key(sandbox: SandboxServer) -> None:
    secret = "sk-wrong-secret-value-123"
    settings = client_settings(sandbox, api_key=secret)
    with Kie(settings=settings, retry=FAST_RETRY) as bad, pytest.raises(kie.AuthenticationError) as caught:
        bad.credits()
    assert (
        caught.value.code == 401
        and secret not in str(caught.value)
        and secret not in repr(caught.value.__dict__)
    )


@pytest.mark.parametrize("sandbox", [{"credits": 5.0}], indirect=True)
def test_insufficient_credits(client: Kie, sandbox: SandboxServer) -> None:
    with pytest.raises(kie.InsufficientCreditsError):
        client.submit("nano-banana-pro", PROMPT)
    assert creates(sandbox) == 1 and sandbox.state.tasks == {}  # a 402 is final, not retried


@pytest.mark.parametrize("kind", ["429", "455"])
def test_create_is_retried_on_definitive_rejections(client: Kie, sandbox: SandboxServer, kind: str) -> None:
    sandbox.state.inject("createTask", kind, times=2)  # type: ignore[arg-type]
    sub = client.submit("nano-banana-pro", PROMPT)
    assert creates(sandbox) == 3 and list(sandbox.state.tasks) == [sub.task_id]


def test_persistent_maintenance_surfaces_typed_error(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("createTask", "455", times=10)
    with pytest.raises(kie.MaintenanceError):
        client.submit("nano-banana-pro", PROMPT)
    assert creates(sandbox) == FAST_RETRY.create_attempts and sandbox.state.tasks == {}


def test_feature_disabled(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("createTask", "505")
    with pytest.raises(kie.FeatureDisabledError):
        client.submit("nano-banana-pro", PROMPT)


def test_dropped_create_is_unknown_and_never_resent(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("createTask", "drop_after_create")
    with pytest.raises(kie.SubmissionUnknownError) as caught:
        client.submit("nano-banana-pro", PROMPT)
    assert "not resent" in str(caught.value)
    assert creates(sandbox) == 1 and len(sandbox.state.tasks) == 1  # exactly one task exists


@pytest.mark.parametrize("kind", ["500", "malformed"])
def test_server_error_on_create_is_unknown_not_retried(
    client: Kie, sandbox: SandboxServer, kind: str
) -> None:
    sandbox.state.inject("createTask", kind)  # type: ignore[arg-type]
    with pytest.raises(kie.SubmissionUnknownError):
        client.submit("nano-banana-pro", PROMPT)
    assert creates(sandbox) == 1


def test_status_reads_are_retried(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.state.inject("recordInfo", "500")
    sandbox.state.inject("recordInfo", "malformed")
    sandbox.state.inject("recordInfo", "429")
    gen = client.generate("nano-banana-pro", PROMPT, output_dir=tmp_path)
    assert gen.results and sandbox.state.requests_for("recordInfo") >= 4


def test_connection_refused_is_a_transport_error_not_unknown(sandbox: SandboxServer) -> None:
    from kie.sandbox.server import free_socket

    closed = free_socket()
    port = closed.getsockname()[1]
    closed.close()
    settings = client_settings(sandbox, base_url=f"http://127.0.0.1:{port}")
    offline = Kie(settings=settings, retry=FAST_RETRY, create_interval=None)
    with offline, pytest.raises(kie.TransportError):
        offline.submit("nano-banana-pro", PROMPT)
    assert sandbox.state.tasks == {}


def test_failed_generation_raises_and_costs_nothing(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_code="400", fail_msg="Your prompt was flagged")
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate("nano-banana-pro", PROMPT)
    error = caught.value
    assert error.fail_code == "400" and error.fail_msg == "Your prompt was flagged" and error.task_id
    assert sandbox.state.spent == 0


@pytest.mark.parametrize("sandbox", [{"time_scale": 1.0}], indirect=True)
def test_deadline_expiry_names_the_running_task(sandbox: SandboxServer) -> None:
    with (
        Kie(
            settings=client_settings(sandbox), poll=poll_policy(1.0), retry=FAST_RETRY, create_interval=None
        ) as slow,
        pytest.raises(kie.TimeoutError) as caught,
    ):
        slow.generate("nano-banana-pro", PROMPT, deadline=0.3)
    assert caught.value.task_id in sandbox.state.tasks
    assert isinstance(caught.value, TimeoutError)  # also the builtin


def test_expired_link_is_refreshed(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.state.inject("results", "expire_urls")
    gen = client.generate("nano-banana-pro", PROMPT, output_dir=tmp_path)
    assert gen.results[0].path.stat().st_size > 0
    assert sandbox.state.requests_for("download-url") == 1


@pytest.mark.parametrize("sandbox", [{"visible_after": 20.0}], indirect=True)
def test_not_yet_visible_task_is_waited_for(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate("nano-banana-pro", PROMPT, output_dir=tmp_path)
    assert gen.results


def test_local_file_inputs_are_uploaded(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    picture = tmp_path / "ref.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\nreference")
    sub = client.submit(
        "nano-banana-pro", {"prompt": "edit", "image_input": [str(picture), b"\xff\xd8\xffraw"]}
    )
    urls = sandbox.state.tasks[sub.task_id].input["image_input"]
    assert len(urls) == 2 and all(u.startswith(f"{sandbox.url}/files/u/kieai/") for u in urls)
    assert urls[0].endswith(".png") and urls[0] != urls[1]
    stored = sandbox.state.file(urls[0].split("/files/", 1)[1])
    assert stored is not None and stored.data == picture.read_bytes()


def test_missing_local_file_is_caught_before_spend(client: Kie, sandbox: SandboxServer) -> None:
    with pytest.raises(kie.ValidationError, match="neither an http"):
        client.submit("nano-banana-pro", {"prompt": "x", "image_input": ["/nope/missing.png"]})
    assert sandbox.state.request_log == []


def test_upload_and_credits(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    path = tmp_path / "clip.mp3"
    path.write_bytes(b"ID3data")
    uploaded = client.upload(path)
    assert uploaded.download_url.endswith(".mp3") and uploaded.size == 7
    assert client.credits() == sandbox.config.credits


def test_download_url_for_external_file_is_rejected(client: Kie) -> None:
    with pytest.raises(kie.ValidationError, match="url is wrong"):
        client.download_url("https://example.com/a.png")


def test_key_never_reaches_file_hosts_or_logs(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KIE_LOG", "debug")
    caplog.set_level(logging.DEBUG)
    with Kie(
        settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
    ) as k:
        k.generate("nano-banana-pro", PROMPT, output_dir=tmp_path)
    file_requests = [r for r in sandbox.state.request_log if r["endpoint"] == "file"]
    assert file_requests and not any(r["authorization"] for r in file_requests)
    assert caplog.records  # debug logging really was on
    assert sandbox.api_key not in caplog.text
    assert sandbox.api_key not in repr(k.config.settings)
