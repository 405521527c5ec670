"""Luma Modify through the public client against the sandbox: the video on disk, failures, callbacks
(including successFlag 4, "callback failed" while the video succeeded) and the record-info wire shape
(kie-api.md §4.7)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import kie
from kie.client import AsyncKie, Kie
from kie.client._base import sync_transport
from kie.protocol.families.luma import LumaFamily
from kie.sandbox.server import SandboxServer
from tests.receiver import CallbackReceiver

SOURCE = "https://example.com/input-video.mp4"
VALUES = {"prompt": "turn the street into a neon night", "videoUrl": SOURCE}


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def record(http: httpx.Client, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get("/api/v1/modify/record-info", params={"taskId": task_id}).json()
    return body


def record_until(http: httpx.Client, task_id: str, flag: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = record(http, task_id)
        if body["data"]["successFlag"] == flag or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def test_generate_saves_the_video(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate("luma/modify", VALUES, output_dir=tmp_path, watermark="kie")
    (result,) = gen.results
    assert result.path == tmp_path / f"{gen.task_id}-1.mp4" and result.read()[4:8] == b"ftyp"
    assert gen.status.state is kie.TaskState.SUCCEEDED and gen.status.extra == {"origin_urls": [SOURCE]}
    assert gen.estimate.credits == 50 and sandbox.state.spent == 50
    assert sandbox.state.tasks[gen.task_id].request == {**VALUES, "watermark": "kie"}  # flat body


def test_generation_failure_raises_task_failed(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject(
        "generation", "fail_generation", fail_code="500", fail_msg="The video could not be modified"
    )
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate("luma/modify", VALUES)
    assert caught.value.fail_code == "500" and caught.value.fail_msg == "The video could not be modified"
    with api(sandbox) as http:
        data = record(http, caught.value.task_id or "")["data"]
    assert data["successFlag"] == 3 and data["errorCode"] == 500 and data["response"] is None
    assert sandbox.state.spent == 0


def test_callback_says_what_the_status_says(client: Kie, tmp_path: Path) -> None:
    with CallbackReceiver() as receiver:
        gen = client.generate("luma/modify", VALUES, output_dir=tmp_path, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    body = hit.body
    assert (body["code"], body["msg"]) == (200, "Modify record generated successfully.")
    assert set(body["data"]) == {"taskId", "promptJson", "resultUrls"}
    heard = LumaFamily().parse_callback(body)
    seen = client.get(gen.task_id, "luma/modify")
    assert (heard.task_id, heard.state, heard.result_urls) == (seen.task_id, seen.state, seen.result_urls)
    assert heard.input == seen.input == VALUES and heard.result_urls == (gen.results[0].url,)


def test_failure_callback(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("generation", "fail_generation")
    with CallbackReceiver() as receiver:
        sub = client.submit("luma/modify", VALUES, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    assert (hit.body["code"], hit.body["msg"]) == (500, "Modify record generation failed.")
    assert "resultUrls" not in hit.body["data"] and hit.body["data"]["taskId"] == sub.task_id
    heard = LumaFamily().parse_callback(hit.body)
    seen = client.get(sub.task_id, "luma/modify")
    assert heard.state is seen.state is kie.TaskState.FAILED and heard.fail_code == seen.fail_code == "500"


@pytest.mark.parametrize("sandbox", [{"callback_retries": (1.0, 1.0)}], indirect=True)
def test_callback_failed_flag_is_a_success_with_its_video(
    client: Kie, sandbox: SandboxServer, tmp_path: Path
) -> None:
    with CallbackReceiver(fail_first=100) as receiver:
        sub = client.submit("luma/modify", VALUES, callback_url=receiver.url)
        receiver.wait_for(3)  # the first attempt and both retries fail
        with api(sandbox) as http:
            data = record_until(http, sub.task_id, 4)["data"]
    assert data["successFlag"] == 4 and data["response"]["resultUrls"] and data["errorMessage"]
    status = client.get(sub.task_id, "luma/modify")
    assert status.state is kie.TaskState.SUCCEEDED and status.raw_state == "4"
    assert status.result_urls == tuple(data["response"]["resultUrls"])
    (saved,) = client.download(status, tmp_path)
    assert saved.path.stat().st_size > 0


def test_unreachable_callback_still_yields_the_video(
    client: Kie, sandbox: SandboxServer, tmp_path: Path
) -> None:
    gen = client.generate(
        "luma/modify", VALUES, output_dir=tmp_path, callback_url="https://hooks.example.com/x"
    )
    assert gen.paths[0].exists()
    with api(sandbox) as http:
        assert record_until(http, gen.task_id, 4)["data"]["successFlag"] == 4


def test_record_info_wire_shape(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        created = http.post("/api/v1/modify/generate", json=VALUES).json()
        assert created["code"] == 200 and set(created["data"]) == {"taskId"}
        task_id = created["data"]["taskId"]
        early = record(http, task_id)["data"]
        assert early["successFlag"] == 0 and early["response"] is None and early["completeTime"] is None
        data = record_until(http, task_id, 1)["data"]
        assert set(data) == {
            "taskId",
            "paramJson",
            "completeTime",
            "response",
            "successFlag",
            "createTime",
            "errorCode",
            "errorMessage",
        }
        assert set(data["response"]) == {"taskId", "originUrls", "resultUrls"}
        assert data["response"]["originUrls"] == [SOURCE] and len(data["response"]["resultUrls"]) == 1
        assert isinstance(data["createTime"], int) and data["completeTime"] >= data["createTime"]
        assert json.loads(data["paramJson"]) == VALUES and data["errorCode"] is None
        assert record(http, "nope") == {"code": 422, "msg": "record is null", "data": None}
        missing = http.post("/api/v1/modify/generate", json={"prompt": "p"}).json()
        assert missing["code"] == 422 and "videoUrl" in missing["msg"]


async def test_async_client(aclient: AsyncKie, tmp_path: Path) -> None:
    gen = await aclient.generate("luma/modify", VALUES, output_dir=tmp_path)
    assert gen.paths[0].read_bytes()[4:8] == b"ftyp"
    assert (await aclient.get(gen.task_id, "luma/modify")).result_urls == (gen.results[0].url,)
