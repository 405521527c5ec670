"""Midjourney through the public client against the sandbox: files on disk, failures, callbacks, upscale
and vary, and the raw record-info wire shape (kie-api.md §4.3)."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

import kie
from kie.client import AsyncKie, Kie
from kie.client._base import sync_transport
from kie.protocol import flows
from kie.protocol.families.midjourney import MidjourneyFamily
from kie.sandbox.server import SandboxServer
from tests.receiver import CallbackReceiver

PROMPT = {"prompt": "a red fox in the snow", "speed": "fast", "aspectRatio": "16:9"}
IMAGE_IN = "https://example.com/reference.png"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def record_until(http: httpx.Client, task_id: str, flag: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = http.get("/api/v1/mj/record-info", params={"taskId": task_id}).json()
        if body["data"]["successFlag"] == flag or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def test_generate_saves_the_four_grid_images(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate("midjourney/txt2img", PROMPT, output_dir=tmp_path)
    assert [r.path.name for r in gen.results] == [f"{gen.task_id}-{n}.png" for n in (1, 2, 3, 4)]
    for result in gen.results:
        with Image.open(io.BytesIO(result.read())) as image:
            assert image.format == "PNG" and image.width > image.height  # 16:9 honoured
    assert gen.status.state is kie.TaskState.SUCCEEDED and gen.status.model == "midjourney/txt2img"
    assert gen.estimate.credits == 8 and sandbox.state.spent == 8
    sent = sandbox.state.tasks[gen.task_id].request
    assert sent["taskType"] == "mj_txt2img" and sent["prompt"] == PROMPT["prompt"] and "input" not in sent


@pytest.mark.parametrize(
    ("model_id", "values", "task_type", "files", "suffix"),
    [
        (
            "midjourney/img2img",
            {"prompt": "p", "speed": "relaxed", "fileUrls": [IMAGE_IN]},
            "mj_img2img",
            4,
            ".png",
        ),
        (
            "midjourney/style-reference",
            {"prompt": "p", "speed": "turbo", "fileUrl": IMAGE_IN},
            "mj_style_reference",
            4,
            ".png",
        ),
        (
            "midjourney/omni-reference",
            {"prompt": "p", "fileUrls": [IMAGE_IN], "ow": 500},
            "mj_omni_reference",
            4,
            ".png",
        ),
        (
            "midjourney/video",
            {"prompt": "p", "fileUrls": [IMAGE_IN], "videoBatchSize": 2},
            "mj_video",
            2,
            ".mp4",
        ),
        (
            "midjourney/video-hd",
            {"prompt": "p", "fileUrls": [IMAGE_IN], "motion": "low"},
            "mj_video_hd",
            1,
            ".mp4",
        ),
    ],
)
def test_every_task_type(
    client: Kie,
    sandbox: SandboxServer,
    tmp_path: Path,
    model_id: str,
    values: dict[str, Any],
    task_type: str,
    files: int,
    suffix: str,
) -> None:
    gen = client.generate(model_id, values, output_dir=tmp_path)
    assert len(gen.paths) == files and all(p.suffix == suffix and p.stat().st_size > 0 for p in gen.paths)
    assert sandbox.state.tasks[gen.task_id].request["taskType"] == task_type
    assert gen.status.model == model_id and gen.status.extra == {"taskType": task_type}


def test_generation_failure_raises_task_failed(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject(
        "generation", "fail_generation", fail_code="500", fail_msg="Midjourney refused the prompt"
    )
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate("midjourney/txt2img", PROMPT)
    assert caught.value.fail_code == "500" and caught.value.fail_msg == "Midjourney refused the prompt"
    (task_id,) = sandbox.state.tasks
    with api(sandbox) as http:
        data = http.get("/api/v1/mj/record-info", params={"taskId": task_id}).json()["data"]
    assert data["successFlag"] == 3 and data["errorCode"] == 500 and data["resultInfoJson"] is None
    assert data["errorMessage"] == "Midjourney refused the prompt" and sandbox.state.spent == 0


def test_callback_says_what_the_status_says(client: Kie, tmp_path: Path) -> None:
    with CallbackReceiver() as receiver:
        gen = client.generate("midjourney/txt2img", PROMPT, output_dir=tmp_path, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    body = hit.body
    assert set(body) == {"code", "msg", "data"} and (body["code"], body["msg"]) == (200, "success")
    assert set(body["data"]) == {"taskId", "promptJson", "resultUrls"}
    assert json.loads(body["data"]["promptJson"])["callBackUrl"] == receiver.url
    heard = MidjourneyFamily().parse_callback(body)
    seen = client.get(gen.task_id, "midjourney/txt2img")
    assert (heard.task_id, heard.state, heard.result_urls) == (seen.task_id, seen.state, seen.result_urls)
    assert heard.model == seen.model == "midjourney/txt2img" and heard.input == seen.input
    assert len(heard.result_urls) == 4 and heard.result_urls == tuple(r.url for r in gen.results)


def test_failure_callback_says_what_the_status_says(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_code="500", fail_msg="Image generation failed")
    with CallbackReceiver() as receiver:
        sub = client.submit("midjourney/txt2img", PROMPT, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    assert hit.body["code"] == 500 and hit.body["data"]["resultUrls"] == []
    heard = MidjourneyFamily().parse_callback(hit.body)
    seen = client.get(sub.task_id, "midjourney/txt2img")
    assert heard.state is seen.state is kie.TaskState.FAILED
    assert (
        (heard.fail_code, heard.fail_msg)
        == (seen.fail_code, seen.fail_msg)
        == ("500", "Image generation failed")
    )


def test_upscale_and_vary_follow_a_finished_grid(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    first = client.generate("midjourney/txt2img", PROMPT, output_dir=tmp_path)
    up = client.generate(
        "midjourney/upscale", {"taskId": first.task_id, "imageIndex": 0}, output_dir=tmp_path
    )
    assert len(up.paths) == 1 and up.paths[0].suffix == ".png" and up.status.model == "midjourney/upscale"
    vary = client.generate("midjourney/vary", {"taskId": first.task_id, "imageIndex": 4}, output_dir=tmp_path)
    assert len(vary.paths) == 4 and vary.status.extra == {"taskType": "mj_vary"}
    again = client.generate(
        "midjourney/upscale", {"taskId": vary.task_id, "imageIndex": 3}, output_dir=tmp_path
    )
    assert len(again.paths) == 1
    assert sandbox.state.tasks[up.task_id].request == {
        "taskId": first.task_id,
        "imageIndex": 0,
    }  # flat, no taskType
    assert sandbox.state.tasks[up.task_id].extra["parent"] == first.task_id
    assert up.estimate.credits == vary.estimate.credits == 12


def test_follow_ups_need_a_finished_image_grid(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    with pytest.raises(kie.ValidationError, match="record is null") as caught:
        client.submit("midjourney/upscale", {"taskId": "0" * 32, "imageIndex": 0})
    assert caught.value.code == 422
    sandbox.state.inject("generation", "fail_generation")
    with pytest.raises(kie.TaskFailedError) as failed:
        client.generate("midjourney/txt2img", PROMPT)
    with pytest.raises(kie.ValidationError, match="record status is not success"):
        client.submit("midjourney/vary", {"taskId": failed.value.task_id, "imageIndex": 1})
    video = client.generate("midjourney/video", {"prompt": "p", "fileUrls": [IMAGE_IN]}, output_dir=tmp_path)
    with pytest.raises(kie.ValidationError, match="record result error"):
        client.submit("midjourney/upscale", {"taskId": video.task_id, "imageIndex": 0})
    assert len(sandbox.state.tasks) == 2  # the refused follow-ups created nothing


def test_image_index_range_follows_the_catalogue(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    first = client.generate("midjourney/txt2img", PROMPT, output_dir=tmp_path)
    with pytest.raises(kie.ValidationError):
        client.submit("midjourney/upscale", {"taskId": first.task_id, "imageIndex": 4})  # 0-3 locally
    spec = kie.catalog.get("midjourney/upscale")
    with pytest.raises(kie.ValidationError) as caught:  # and by the sandbox when local checks are bypassed
        client.run(flows.submit(spec, {"taskId": first.task_id, "imageIndex": 4}, None))
    assert caught.value.code == 422 and len(sandbox.state.tasks) == 1


def test_record_info_wire_shape(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        created = http.post("/api/v1/mj/generate", json={"taskType": "mj_txt2img", **PROMPT}).json()
        assert created["code"] == 200 and set(created["data"]) == {"taskId"}
        task_id = created["data"]["taskId"]
        early = http.get("/api/v1/mj/record-info", params={"taskId": task_id}).json()
        assert early["code"] == 200 and early["data"]["successFlag"] == 0
        assert early["data"]["resultInfoJson"] is None and early["data"]["completeTime"] is None
        assert early["data"]["errorCode"] is None and early["data"]["errorMessage"] is None
        data = record_until(http, task_id, 1)["data"]
        assert set(data) == {
            "taskId",
            "taskType",
            "paramJson",
            "completeTime",
            "resultInfoJson",
            "successFlag",
            "createTime",
            "errorCode",
            "errorMessage",
        }
        assert (
            data["taskType"] == "mj_txt2img" and json.loads(data["paramJson"])["prompt"] == PROMPT["prompt"]
        )
        urls = data["resultInfoJson"]["resultUrls"]
        assert len(urls) == 4 and all(set(u) == {"resultUrl"} for u in urls)
        assert ISO.match(data["createTime"]) and ISO.match(data["completeTime"])
        assert http.get(urls[0]["resultUrl"]).status_code == 200
        unknown = http.get("/api/v1/mj/record-info", params={"taskId": "nope"}).json()
        assert unknown == {"code": 422, "msg": "record is null", "data": None}
        assert http.get("/api/v1/mj/record-info").json()["code"] == 400
        implied = http.post("/api/v1/mj/generate", json=PROMPT).json()["data"]["taskId"]  # taskType defaults
        assert sandbox.state.tasks[implied].extra["taskType"] == "mj_txt2img"
        bad = http.post("/api/v1/mj/generate", json={**PROMPT, "taskType": "mj_blend"}).json()
        assert bad["code"] == 422 and "mj_blend" in bad["msg"]


async def test_async_client(aclient: AsyncKie, tmp_path: Path) -> None:
    gen = await aclient.generate("midjourney/txt2img", PROMPT, output_dir=tmp_path)
    up = await aclient.generate(
        "midjourney/upscale", {"taskId": gen.task_id, "imageIndex": 2}, output_dir=tmp_path
    )
    assert len(gen.paths) == 4 and len(up.paths) == 1
    status = await aclient.get(up.task_id, "midjourney/upscale")
    assert status.state is kie.TaskState.SUCCEEDED and status.result_urls == tuple(r.url for r in up.results)
