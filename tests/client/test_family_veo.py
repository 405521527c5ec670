"""Veo 3.1 through the public client against the sandbox: files on disk for every model, failures,
callbacks, the 1080p / 4K / extend follow-ups, and the raw wire shapes (kie-api.md §4.4)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import kie
from kie.client import AsyncKie, Kie
from kie.client._base import sync_transport
from kie.client.results import Generation
from kie.protocol.families.veo import VeoFamily
from kie.sandbox.server import SandboxServer
from tests.receiver import CallbackReceiver

PROMPT = {"prompt": "a paper boat on a rainy street", "aspect_ratio": "16:9"}
CLOCK = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
FLAGGED = "Your prompt was flagged by Website as violating content policies."


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def until(read: Any, done: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = read()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def is_mp4(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


@pytest.mark.parametrize("model", ["veo3", "veo3_fast", "veo3_lite"])
def test_generate_saves_the_video(client: Kie, sandbox: SandboxServer, tmp_path: Path, model: str) -> None:
    gen = client.generate(model, PROMPT, output_dir=tmp_path)
    (result,) = gen.results
    assert result.path == tmp_path / f"{gen.task_id}-1.mp4" and is_mp4(result.read())
    assert gen.status.state is kie.TaskState.SUCCEEDED and gen.status.model == model
    assert gen.status.extra == {"resolution": "720p", "fallbackFlag": False}  # no originUrls at 16:9
    sent = sandbox.state.tasks[gen.task_id].request
    assert sent["model"] == model and sent["prompt"] == PROMPT["prompt"] and "input" not in sent


def test_portrait_video_keeps_the_uncropped_original(client: Kie, tmp_path: Path) -> None:
    gen = client.generate("veo3_fast", {"prompt": "a tower", "aspect_ratio": "9:16"}, output_dir=tmp_path)
    assert len(gen.paths) == 1 and gen.status.extra["originUrls"]
    with httpx.Client(transport=sync_transport()) as files:
        assert is_mp4(files.get(gen.status.extra["originUrls"][0]).content)


@pytest.mark.parametrize(("code", "flag"), [("400", 2), ("500", 3)])
def test_failure_raises_task_failed(client: Kie, sandbox: SandboxServer, code: str, flag: int) -> None:
    msg = FLAGGED if code == "400" else "Internal Error, Please try again later"
    sandbox.state.inject("generation", "fail_generation", fail_code=code, fail_msg=msg)
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate("veo3_fast", PROMPT)
    assert caught.value.fail_code == code and caught.value.fail_msg == msg
    with api(sandbox) as http:
        data = http.get("/api/v1/veo/record-info", params={"taskId": caught.value.task_id}).json()["data"]
    assert data["successFlag"] == flag and data["errorCode"] == int(code) and data["response"] is None
    assert sandbox.state.spent == 0


@pytest.mark.parametrize("fail", [False, True])
def test_callback_says_what_get_says(client: Kie, sandbox: SandboxServer, tmp_path: Path, fail: bool) -> None:
    if fail:
        sandbox.state.inject("generation", "fail_generation", fail_code="400", fail_msg=FLAGGED)
    with CallbackReceiver() as receiver:
        sub = client.submit("veo3_fast", PROMPT, callback_url=receiver.url)
        (received,) = receiver.wait_for(1)
    pushed = VeoFamily().parse_callback(received.body)
    polled = client.get(sub.task_id, "veo3_fast")
    assert (pushed.task_id, pushed.state, pushed.result_urls) == (
        polled.task_id,
        polled.state,
        polled.result_urls,
    )
    assert (pushed.fail_code, pushed.fail_msg) == (polled.fail_code, polled.fail_msg)
    if fail:
        assert received.body == {
            "code": 400,
            "msg": FLAGGED,
            "data": {"taskId": sub.task_id, "fallbackFlag": False},
        }
    else:
        assert received.body["msg"] == "Veo3.1 video generated successfully."
        assert set(received.body["data"]["info"]) == {"resultUrls", "originUrls", "resolution"}
        assert pushed.extra == {"resolution": "720p", "fallbackFlag": False} and len(pushed.result_urls) == 1


def test_1080p_upgrade(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    first = client.generate("veo3_fast", PROMPT, output_dir=tmp_path)
    before = sandbox.state.spent
    hd = client.generate("veo3/1080p", {"taskId": first.task_id}, output_dir=tmp_path)
    assert hd.task_id == f"veo-1080p-0-{first.task_id}" and is_mp4(hd.results[0].read())
    assert hd.status.extra["sourceTaskId"] == first.task_id and hd.results[0].url != first.results[0].url
    assert sandbox.state.spent - before == 5 and sandbox.state.requests_for("veo/get-1080p-video") >= 2
    assert client.get(hd.task_id, "veo3/1080p").result_urls == hd.status.result_urls  # repeating is free
    assert sandbox.state.spent - before == 5
    with pytest.raises(kie.ValidationError, match="cannot be extended"):
        client.submit("veo3/extend", {"taskId": first.task_id, "prompt": "and then"})


def test_1080p_of_missing_or_failed_sources(client: Kie, sandbox: SandboxServer) -> None:
    with pytest.raises(kie.ValidationError, match="record is null"):
        client.generate("veo3/1080p", {"taskId": "no-such-task"})
    sandbox.state.inject("generation", "fail_generation")
    with pytest.raises(kie.TaskFailedError):
        client.generate("veo3_fast", PROMPT)
    (failed,) = sandbox.state.tasks
    with pytest.raises(kie.TaskFailedError, match="record status is not success"):
        client.generate("veo3/1080p", {"taskId": failed})


async def test_concurrent_1080p_upgrades_keep_their_sources(aclient: AsyncKie, tmp_path: Path) -> None:
    sources = await aclient.generate_many([("veo3_fast", PROMPT), ("veo3_lite", PROMPT)], output_dir=tmp_path)
    ids = [s.task_id for s in sources if isinstance(s, Generation)]
    upgrades = await asyncio.gather(
        *(aclient.generate("veo3/1080p", {"taskId": task_id}, output_dir=tmp_path) for task_id in ids)
    )
    assert [u.status.extra["sourceTaskId"] for u in upgrades] == ids
    assert all(is_mp4(u.results[0].read()) for u in upgrades)


def test_4k_upgrade_and_its_repeat_answers(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    first = client.generate("veo3_fast", PROMPT, output_dir=tmp_path)
    with CallbackReceiver() as receiver:
        uhd = client.generate(
            "veo3/4k", {"taskId": first.task_id}, output_dir=tmp_path, callback_url=receiver.url
        )
        (received,) = receiver.wait_for(1)
    assert uhd.task_id != first.task_id and is_mp4(uhd.results[0].read())
    (thumbnail,) = uhd.status.extra["imageUrls"]
    assert uhd.status.extra["resolution"] == "4K" and sandbox.state.spent == 60 + 120
    assert received.body["msg"] == "4K Video generated successfully."
    pushed = VeoFamily().parse_callback(received.body)
    assert pushed.result_urls == uhd.status.result_urls and pushed.extra == {"imageUrls": [thumbnail]}
    with api(sandbox) as http:
        again = http.post("/api/v1/veo/get-4k-video", json={"taskId": first.task_id, "index": 0}).json()
        assert again == {
            "code": 422,
            "msg": "The video has been generated successfully",
            "data": {
                "taskId": uhd.task_id,
                "resultUrls": list(uhd.status.result_urls),
                "imageUrls": [thumbnail],
            },
        }
        assert http.get(thumbnail).content[:2] == b"\xff\xd8"  # a real JPEG
    assert sandbox.state.spent == 180 and len(sandbox.state.tasks) == 2


def test_4k_repeat_while_processing(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    first = client.generate("veo3_fast", PROMPT, output_dir=tmp_path)
    with api(sandbox) as http:
        created = http.post("/api/v1/veo/get-4k-video", json={"taskId": first.task_id}).json()
        assert created["code"] == 200 and created["data"]["resultUrls"] is None
        repeat = http.post("/api/v1/veo/get-4k-video", json={"taskId": first.task_id}).json()
    assert repeat == {
        "code": 422,
        "msg": "4k is processing. It should be ready in 5-10 minutes. Please check back shortly.",
        "data": {"taskId": created["data"]["taskId"], "resultUrls": None, "imageUrls": None},
    }


def test_extend_saves_the_extension_and_the_stitched_video(
    client: Kie, sandbox: SandboxServer, tmp_path: Path
) -> None:
    first = client.generate("veo3", PROMPT, output_dir=tmp_path)
    longer = client.generate(
        "veo3/extend", {"taskId": first.task_id, "prompt": "the boat sails on"}, output_dir=tmp_path
    )
    assert [r.path.name for r in longer.results] == [f"{longer.task_id}-1.mp4", f"{longer.task_id}-2.mp4"]
    assert all(is_mp4(r.read()) for r in longer.results)
    assert longer.status.result_urls[1] == longer.status.extra["fullResultUrls"][0]
    sent = sandbox.state.tasks[longer.task_id].request
    assert sent == {"taskId": first.task_id, "prompt": "the boat sails on", "model": "fast"}
    assert sandbox.state.spent == 250 + 60


@pytest.mark.parametrize("model", ["veo3/extend", "veo3/4k"])
def test_follow_ups_need_a_finished_source(client: Kie, model: str) -> None:
    values: dict[str, Any] = {"taskId": "no-such-task"}
    if model == "veo3/extend":
        values["prompt"] = "x"
    with pytest.raises(kie.ValidationError, match="record is null") as caught:
        client.submit(model, values)
    assert caught.value.code == 422


def test_record_info_wire_shape(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        created = http.post("/api/v1/veo/generate", json={"prompt": "a kite", "aspect_ratio": "9:16"}).json()
        assert created["code"] == 200 and set(created["data"]) == {"taskId"}
        task_id = created["data"]["taskId"]

        def read() -> dict[str, Any]:
            body: dict[str, Any] = http.get("/api/v1/veo/record-info", params={"taskId": task_id}).json()
            return body

        early = read()["data"]
        assert early["successFlag"] == 0 and early["response"] is None and early["completeTime"] is None
        done = until(read, lambda b: b["data"]["successFlag"] == 1)["data"]
        unknown = http.get("/api/v1/veo/record-info", params={"taskId": "nope"}).json()
        not_ready = http.get("/api/v1/veo/get-1080p-video", params={"taskId": task_id, "index": 0}).json()
        ready = until(
            lambda: http.get("/api/v1/veo/get-1080p-video", params={"taskId": task_id, "index": 0}).json(),
            lambda b: b["code"] == 200,
        )
        no_video = http.get("/api/v1/veo/get-1080p-video", params={"taskId": task_id, "index": 3}).json()
    assert sandbox.state.tasks[task_id].model == "veo3_fast"  # the documented default model
    assert set(done) == {
        "taskId",
        "paramJson",
        "completeTime",
        "response",
        "successFlag",
        "errorCode",
        "errorMessage",
        "createTime",
        "fallbackFlag",
    }
    assert done["paramJson"] == '{"aspect_ratio":"9:16","prompt":"a kite"}'
    assert CLOCK.match(done["createTime"]) and CLOCK.match(done["completeTime"])
    assert (done["errorCode"], done["errorMessage"], done["fallbackFlag"]) == (None, "", False)
    response = done["response"]
    assert (
        set(response) == {"taskId", "resultUrls", "originUrls", "resolution"}
        and response["taskId"] == task_id
    )
    assert (
        len(response["resultUrls"]) == 1
        and len(response["originUrls"]) == 1
        and response["resolution"] == "720p"
    )
    assert unknown == {"code": 422, "msg": "record is null", "data": None}
    assert not_ready == {"code": 422, "msg": "record result data is blank", "data": None}
    assert set(ready["data"]) == {"resultUrl"} and ready["data"]["resultUrl"].endswith(".mp4")
    assert no_video["code"] == 422 and no_video["msg"] == "record result data not exist"


def test_unknown_model_is_refused_on_the_wire(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        body = http.post("/api/v1/veo/generate", json={"prompt": "x", "model": "veo4"}).json()
    assert body["code"] == 422 and "veo4" in body["msg"] and sandbox.state.tasks == {}
