"""Flux Kontext (pro and max, generate and edit) through the public API against the sandbox."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

import kie
from kie.client import AsyncKie, Kie
from kie.client._base import sync_transport
from kie.protocol.families.flux_kontext import FluxKontextFamily
from kie.protocol.task import TaskStatus
from kie.sandbox.server import SandboxServer
from tests.conftest import TIME_SCALE
from tests.receiver import CallbackReceiver

PROMPT = {"prompt": "a lighthouse at dawn"}
RECORD_KEYS = {
    "taskId",
    "paramJson",
    "completeTime",
    "response",
    "successFlag",
    "errorCode",
    "errorMessage",
    "createTime",
}
ISO_TIME = "%Y-%m-%dT%H:%M:%SZ"
family = FluxKontextFamily()
SLOW = [{"time_scale": 1.0}]  # a 25-second model stays running for the whole test


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def record(sandbox: SandboxServer, task_id: str) -> dict[str, object]:
    with api(sandbox) as http:
        body: dict[str, object] = http.get(
            "/api/v1/flux/kontext/record-info", params={"taskId": task_id}
        ).json()
    return body


def same_outcome(a: TaskStatus, b: TaskStatus) -> None:
    assert (a.task_id, a.state, a.result_urls, a.fail_code, a.fail_msg, a.extra) == (
        b.task_id,
        b.state,
        b.result_urls,
        b.fail_code,
        b.fail_msg,
        b.extra,
    )


def test_pro_generates_a_file(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate(
        "flux-kontext-pro", {**PROMPT, "aspectRatio": "16:9", "outputFormat": "png"}, output_dir=tmp_path
    )
    (path,) = gen.paths
    with Image.open(path) as image:
        assert image.format == "PNG" and round(image.width / image.height, 2) == round(16 / 9, 2)
    assert gen.status.model == "flux-kontext-pro" and gen.status.result_urls[0].endswith(".png")
    assert sandbox.state.spent == 5 and sandbox.state.requests_for("flux/kontext/generate") == 1
    (task,) = sandbox.state.tasks.values()
    assert task.model == "flux-kontext-pro" and task.request["model"] == "flux-kontext-pro"


def test_max_edits_an_uploaded_image(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    picture = tmp_path / "me.png"
    Image.new("RGB", (40, 30), "blue").save(picture)
    gen = client.generate(
        "flux-kontext-max", {"prompt": "add a hat", "inputImage": str(picture)}, output_dir=tmp_path / "out"
    )
    with Image.open(gen.paths[0]) as image:
        assert image.format == "JPEG"  # outputFormat defaults to jpeg
    (task,) = sandbox.state.tasks.values()
    assert task.model == "flux-kontext-max" and task.request["model"] == "flux-kontext-max"
    assert task.request["inputImage"].startswith(sandbox.url)  # the local file went up first
    assert gen.status.model == "flux-kontext-max" and sandbox.state.spent == 10
    assert sandbox.state.requests_for("file-stream-upload") == 1


def test_editing_tolerance_is_checked_by_kie(client: Kie, sandbox: SandboxServer) -> None:
    with pytest.raises(kie.ValidationError) as caught:
        client.generate(
            "flux-kontext-pro", {**PROMPT, "inputImage": "https://x/me.png", "safetyTolerance": 5}
        )
    assert caught.value.code == 422 and "safetyTolerance" in str(caught.value)
    assert sandbox.state.tasks == {}


def test_body_model_picks_the_catalogue_model(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        default = http.post("/api/v1/flux/kontext/generate", json=PROMPT).json()
        wrong = http.post(
            "/api/v1/flux/kontext/generate", json={**PROMPT, "model": "flux-kontext-ultra"}
        ).json()
        no_prompt = http.post("/api/v1/flux/kontext/generate", json={"model": "flux-kontext-max"}).json()
    assert (
        default["code"] == 200 and sandbox.state.tasks[default["data"]["taskId"]].model == "flux-kontext-pro"
    )
    assert wrong["code"] == 422 and "flux-kontext-ultra" in wrong["msg"]
    assert no_prompt["code"] == 422 and "prompt" in no_prompt["msg"]


def test_failed_generation_raises_and_costs_nothing(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject(
        "generation", "fail_generation", fail_code="501", fail_msg="Image generation task failed"
    )
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate("flux-kontext-pro", PROMPT)
    assert (caught.value.fail_code, caught.value.fail_msg) == ("501", "Image generation task failed")
    assert sandbox.state.spent == 0
    data = record(sandbox, str(caught.value.task_id))["data"]
    assert isinstance(data, dict)
    assert (data["successFlag"], data["errorCode"], data["response"]) == (3, 501, None)


def test_callback_matches_the_record(client: Kie, tmp_path: Path) -> None:
    with CallbackReceiver() as receiver:
        gen = client.generate("flux-kontext-max", PROMPT, output_dir=tmp_path, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    assert hit.body["code"] == 200 and hit.body["msg"] == "BFL image generated successfully."
    info = hit.body["data"]["info"]
    assert hit.body["data"]["taskId"] == gen.task_id and info["resultImageUrl"] == gen.status.result_urls[0]
    assert info["originImageUrl"] == gen.status.extra["originImageUrl"] != info["resultImageUrl"]
    same_outcome(family.parse_callback(hit.body), client.get(gen.task_id, "flux-kontext-max"))


@pytest.mark.parametrize(("injected", "sent"), [("400", 400), ("500", 500), ("451", 501)])
def test_failure_callback_matches_the_record(
    client: Kie, sandbox: SandboxServer, injected: str, sent: int
) -> None:
    sandbox.state.inject(
        "generation", "fail_generation", fail_code=injected, fail_msg="Your prompt was flagged"
    )
    with CallbackReceiver() as receiver:
        sub = client.submit("flux-kontext-pro", PROMPT, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    assert hit.body == {"code": sent, "msg": "Your prompt was flagged", "data": {"taskId": sub.task_id}}
    status = client.get(sub.task_id, "flux-kontext-pro")
    assert status.state is kie.TaskState.FAILED and status.fail_code == str(sent)
    same_outcome(family.parse_callback(hit.body), status)


def test_record_info_wire_shape_when_done(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate("flux-kontext-pro", {**PROMPT, "aspectRatio": "1:1"}, output_dir=tmp_path)
    body = record(sandbox, gen.task_id)
    assert (body["code"], body["msg"]) == (200, "success")
    data = body["data"]
    assert isinstance(data, dict) and set(data) == RECORD_KEYS
    assert (data["successFlag"], data["errorCode"], data["errorMessage"]) == (1, None, "")
    response = data["response"]
    assert response == {
        "originImageUrl": gen.status.extra["originImageUrl"],
        "resultImageUrl": gen.status.result_urls[0],
    }
    for key in ("createTime", "completeTime"):
        time.strptime(str(data[key]), ISO_TIME)  # ISO strings, as in the Flux docs examples
    assert json.loads(str(data["paramJson"]))["model"] == "flux-kontext-pro"
    assert record(sandbox, "e" * 32) == {"code": 422, "msg": "record is null", "data": None}


def test_origin_link_expires_after_ten_minutes(client: Kie, tmp_path: Path) -> None:
    gen = client.generate("flux-kontext-pro", PROMPT, output_dir=tmp_path)
    origin = gen.status.extra["originImageUrl"]
    assert httpx.get(origin).content == gen.results[0].read()
    time.sleep(600 * TIME_SCALE + 0.2)
    assert httpx.get(origin).status_code == 404
    assert httpx.get(gen.status.result_urls[0]).status_code == 200  # the 14-day copy lives on


@pytest.mark.parametrize("sandbox", SLOW, indirect=True)
def test_record_info_wire_shape_while_running(client: Kie, sandbox: SandboxServer) -> None:
    sub = client.submit("flux-kontext-max", PROMPT)
    data = record(sandbox, sub.task_id)["data"]
    assert isinstance(data, dict)
    assert (data["successFlag"], data["response"], data["completeTime"], data["errorCode"]) == (
        0,
        None,
        None,
        None,
    )
    time.strptime(str(data["createTime"]), ISO_TIME)
    status = client.get(sub.task_id, "flux-kontext-max")
    assert status.state is kie.TaskState.RUNNING and status.model == "flux-kontext-max"


def test_expired_result_link_is_refreshed(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.state.inject("results", "expire_urls")
    gen = client.generate("flux-kontext-pro", PROMPT, output_dir=tmp_path)
    assert gen.paths[0].stat().st_size > 0 and sandbox.state.requests_for("download-url") == 1


async def test_async_generate(aclient: AsyncKie, tmp_path: Path) -> None:
    gen = await aclient.generate("flux-kontext-max", PROMPT, output_dir=tmp_path)
    assert gen.results[0].path.exists() and gen.status.model == "flux-kontext-max"
