"""Runway Aleph through the public client against the sandbox: the video (and its thumbnail), failures,
the callback with its top-level taskId, and the record-info wire shape (kie-api.md §4.6)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import kie
from kie.client import AsyncKie, Kie
from kie.client._base import sync_transport
from kie.protocol.families.aleph import AlephFamily
from kie.sandbox.server import SandboxServer
from tests.receiver import CallbackReceiver

VALUES = {"prompt": "make it a watercolor painting", "videoUrl": "https://example.com/input-video.mp4"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def record(http: httpx.Client, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get("/api/v1/aleph/record-info", params={"taskId": task_id}).json()
    return body


def test_generate_saves_the_video_and_points_at_its_thumbnail(
    client: Kie, sandbox: SandboxServer, tmp_path: Path
) -> None:
    gen = client.generate("runway/aleph", VALUES, output_dir=tmp_path, aspectRatio="21:9", seed=42)
    (result,) = gen.results
    assert result.path == tmp_path / f"{gen.task_id}-1.mp4" and result.read()[4:8] == b"ftyp"
    assert gen.status.state is kie.TaskState.SUCCEEDED and gen.status.model == "runway/aleph"
    cover = httpx.get(gen.status.extra["cover_url"])
    assert cover.headers["content-type"] == "image/jpeg" and cover.content[:2] == b"\xff\xd8"
    assert gen.estimate.credits == 110 and sandbox.state.spent == 110
    # Only what was set goes on the wire: Kie applies its own default for `uploadCn` (issue 14).
    assert sandbox.state.tasks[gen.task_id].request == {**VALUES, "aspectRatio": "21:9", "seed": 42}


def test_generation_failure_raises_task_failed(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_code="400", fail_msg="Your prompt was caught")
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate("runway/aleph", VALUES)
    assert caught.value.fail_code == "400" and caught.value.fail_msg == "Your prompt was caught"
    with api(sandbox) as http:
        data = record(http, caught.value.task_id or "")["data"]
    # The docs' failed case: still flag 0, with an error message and code.
    assert (data["successFlag"], data["errorCode"], data["errorMessage"]) == (
        0,
        400,
        "Your prompt was caught",
    )
    assert data["response"] is None and sandbox.state.spent == 0


def test_callback_says_what_the_status_says(client: Kie, tmp_path: Path) -> None:
    with CallbackReceiver() as receiver:
        gen = client.generate("runway/aleph", VALUES, output_dir=tmp_path, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    body = hit.body
    assert set(body) == {"code", "msg", "data", "taskId"} and body["taskId"] == gen.task_id
    assert set(body["data"]) == {"result_video_url", "result_image_url"}
    heard = AlephFamily().parse_callback(body)
    seen = client.get(gen.task_id, "runway/aleph")
    assert (heard.task_id, heard.state, heard.result_urls) == (seen.task_id, seen.state, seen.result_urls)
    assert heard.extra == seen.extra and heard.result_urls == (gen.results[0].url,)


def test_failure_callback_has_null_data_and_top_level_task_id(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_code="400", fail_msg="Your prompt was caught")
    with CallbackReceiver() as receiver:
        sub = client.submit("runway/aleph", VALUES, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    assert hit.body == {"code": 400, "msg": "Your prompt was caught", "data": None, "taskId": sub.task_id}
    heard = AlephFamily().parse_callback(hit.body)
    seen = client.get(sub.task_id, "runway/aleph")
    assert heard.state is seen.state is kie.TaskState.FAILED
    assert (heard.task_id, heard.fail_code, heard.fail_msg) == (seen.task_id, seen.fail_code, seen.fail_msg)


def test_unknown_task_is_not_found(client: Kie, sandbox: SandboxServer) -> None:
    with pytest.raises(kie.NotFoundError):
        client.get("ee603959-debb-48d1-98c4-a6d1c717eba6", "runway/aleph")


def test_record_info_wire_shape(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        created = http.post("/api/v1/aleph/generate", json=VALUES).json()
        assert created["code"] == 200 and set(created["data"]) == {"taskId"}
        task_id = created["data"]["taskId"]
        early = record(http, task_id)["data"]
        assert (early["successFlag"], early["errorCode"], early["errorMessage"]) == (0, 0, "")
        assert early["response"] is None and early["completeTime"] is None
        deadline = time.monotonic() + 10
        while record(http, task_id)["data"]["successFlag"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        data = record(http, task_id)["data"]
        assert set(data) == {
            "taskId",
            "paramJson",
            "response",
            "completeTime",
            "createTime",
            "successFlag",
            "errorCode",
            "errorMessage",
        }
        assert set(data["response"]) == {"taskId", "resultVideoUrl", "resultImageUrl"}
        assert (data["successFlag"], data["errorCode"], data["errorMessage"]) == (1, 0, "")
        assert ISO.match(data["createTime"]) and ISO.match(data["completeTime"])
        assert json.loads(data["paramJson"]) == VALUES
        assert http.get(data["response"]["resultVideoUrl"]).content[4:8] == b"ftyp"
        assert record(http, "nope") == {"code": 404, "msg": "Task not found", "data": None}
        bad = http.post("/api/v1/aleph/generate", json={**VALUES, "aspectRatio": "2:1"}).json()
        assert bad["code"] == 422 and "aspectRatio" in bad["msg"]


async def test_async_client(aclient: AsyncKie, tmp_path: Path) -> None:
    gen = await aclient.generate("runway/aleph", VALUES, output_dir=tmp_path)
    assert gen.paths[0].read_bytes()[4:8] == b"ftyp"
    status = await aclient.get(gen.task_id, "runway/aleph")
    assert status.extra["cover_url"].endswith("/cover.jpg")
