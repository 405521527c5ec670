"""Runway Gen through the public client against the sandbox: the file on disk, the documented refusals,
failures, callbacks, extend, and the raw record-detail wire shape (kie-api.md §4.5)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import kie
from kie.client import Kie
from kie.client._base import sync_transport
from kie.config import DEFAULT_CALLBACK_PLACEHOLDER
from kie.protocol.families.runway import RunwayFamily
from kie.sandbox.server import SandboxServer
from tests.receiver import CallbackReceiver

VIDEO = {
    "prompt": "a cat dancing under disco lights",
    "duration": 5,
    "quality": "720p",
    "aspectRatio": "16:9",
}
CLOCK = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
INAPPROPRIATE = "Inappropriate content detected. Please replace the image or video."


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def is_mp4(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


def test_generate_saves_the_video(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate("runway/generate", VIDEO, output_dir=tmp_path)
    (result,) = gen.results
    assert result.path == tmp_path / f"{gen.task_id}-1.mp4" and is_mp4(result.read())
    assert gen.status.state is kie.TaskState.SUCCEEDED and gen.status.raw_state == "success"
    assert gen.status.extra["cover_url"].endswith(".jpg") and gen.estimate.credits == 12
    sent = sandbox.state.tasks[gen.task_id].request
    assert sent == {**VIDEO, "callBackUrl": DEFAULT_CALLBACK_PLACEHOLDER}  # required, so always sent
    assert sandbox.state.spent == 12


REFUSALS = [
    (
        {**VIDEO, "duration": 10, "quality": "1080p"},
        "If a 10-second video is selected, 1080p resolution cannot",
    ),
    ({k: v for k, v in VIDEO.items() if k != "aspectRatio"}, "aspect ratio must be explicitly specified"),
]


@pytest.mark.parametrize(("values", "message"), REFUSALS)
def test_documented_refusals_are_typed_422s(
    client: Kie, sandbox: SandboxServer, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(kie.ValidationError, match=message) as caught:
        client.submit("runway/generate", values)
    assert caught.value.code == 422 and sandbox.state.tasks == {}


def test_image_to_video_needs_no_ratio(client: Kie, tmp_path: Path) -> None:
    values = {
        **{k: v for k, v in VIDEO.items() if k != "aspectRatio"},
        "imageUrl": "https://example.com/cat.png",
    }
    gen = client.generate("runway/generate", values, output_dir=tmp_path)
    assert is_mp4(gen.results[0].read()) and gen.status.input is not None
    assert gen.status.input["imageUrl"] == "https://example.com/cat.png"


def test_failure_raises_task_failed(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_code="400", fail_msg=INAPPROPRIATE)
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate("runway/generate", VIDEO)
    assert caught.value.fail_code == "400" and caught.value.fail_msg == INAPPROPRIATE
    with api(sandbox) as http:
        data = http.get("/api/v1/runway/record-detail", params={"taskId": caught.value.task_id}).json()[
            "data"
        ]
    assert (data["state"], data["failCode"], data["failMsg"], data["videoInfo"]) == (
        "fail",
        400,
        INAPPROPRIATE,
        None,
    )
    assert sandbox.state.spent == 0


@pytest.mark.parametrize("fail", [False, True])
def test_callback_says_what_get_says(client: Kie, sandbox: SandboxServer, fail: bool) -> None:
    if fail:
        sandbox.state.inject("generation", "fail_generation", fail_code="500", fail_msg="Internal Error")
    with CallbackReceiver() as receiver:
        sub = client.submit("runway/generate", VIDEO, callback_url=receiver.url)
        (received,) = receiver.wait_for(1)
    pushed = RunwayFamily().parse_callback(received.body)
    polled = client.get(sub.task_id, "runway/generate")
    assert (pushed.task_id, pushed.state, pushed.result_urls) == (
        polled.task_id,
        polled.state,
        polled.result_urls,
    )
    assert (pushed.fail_code, pushed.fail_msg) == (polled.fail_code, polled.fail_msg)
    if fail:
        empty = {"task_id": sub.task_id, "video_id": "", "video_url": "", "image_url": ""}
        assert received.body == {"code": 500, "msg": "Internal Error", "data": empty}
    else:
        assert received.body["msg"] == "All generated successfully."
        assert set(received.body["data"]) == {"task_id", "video_id", "video_url", "image_url"}
        assert {k: pushed.extra[k] for k in ("cover_url", "video_id")} == {
            k: polled.extra[k] for k in ("cover_url", "video_id")
        }


def test_extend(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    first = client.generate("runway/generate", VIDEO, output_dir=tmp_path)
    longer = client.generate(
        "runway/extend",
        {"taskId": first.task_id, "prompt": "the cat bows", "quality": "720p"},
        output_dir=tmp_path,
    )
    assert longer.task_id != first.task_id and is_mp4(longer.results[0].read())
    assert longer.status.extra["parentTaskId"] == first.task_id and sandbox.state.spent == 12 + 12


def test_extend_needs_a_finished_source(client: Kie, sandbox: SandboxServer) -> None:
    with pytest.raises(kie.ValidationError, match="record is null"):
        client.submit("runway/extend", {"taskId": "no-such-task", "prompt": "x", "quality": "720p"})
    sandbox.state.inject("generation", "fail_generation")
    with pytest.raises(kie.TaskFailedError):
        client.generate("runway/generate", VIDEO)
    (failed,) = sandbox.state.tasks
    with pytest.raises(kie.ValidationError, match="record status is not success"):
        client.submit("runway/extend", {"taskId": failed, "prompt": "x", "quality": "720p"})


def test_record_detail_wire_shape(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        missing_hook = http.post("/api/v1/runway/generate", json=VIDEO).json()
        created = http.post(
            "/api/v1/runway/generate", json={**VIDEO, "callBackUrl": "https://cb.invalid/x"}
        ).json()
        task_id = created["data"]["taskId"]

        def read() -> dict[str, Any]:
            body: dict[str, Any] = http.get("/api/v1/runway/record-detail", params={"taskId": task_id}).json()
            return body

        early = read()["data"]
        deadline = time.monotonic() + 10
        states = {early["state"]}
        while (body := read())["data"]["state"] != "success" and time.monotonic() < deadline:
            states.add(body["data"]["state"])
            time.sleep(0.01)
        done = body["data"]
        unknown = http.get("/api/v1/runway/record-detail", params={"taskId": "nope"}).json()
        cover = http.get(done["videoInfo"]["imageUrl"]).content
    assert missing_hook == {"code": 422, "msg": "Please enter callBackUrl.", "data": None}
    assert created == {"code": 200, "msg": "success", "data": {"taskId": task_id}}
    assert states <= {"wait", "queueing", "generating"} and early["videoInfo"] is None
    assert set(done) == {
        "taskId",
        "parentTaskId",
        "generateParam",
        "state",
        "generateTime",
        "videoInfo",
        "failCode",
        "failMsg",
        "expireFlag",
    }
    assert (done["parentTaskId"], done["failCode"], done["failMsg"], done["expireFlag"]) == ("", "", "", 0)
    assert done["generateParam"] == {"prompt": VIDEO["prompt"], "imageUrl": "", "expandPrompt": True}
    assert CLOCK.match(done["generateTime"])
    info = done["videoInfo"]
    assert set(info) == {"videoId", "taskId", "videoUrl", "imageUrl"} and info["taskId"] == task_id
    assert info["videoUrl"].endswith(".mp4") and cover[:2] == b"\xff\xd8"
    assert unknown == {"code": 422, "msg": "record is null", "data": None}
