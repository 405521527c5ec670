"""Parsing Runway Gen (kie-api.md §4.5, §5, Appendix B): both documented record variants, every `state`,
the snake_case callbacks of generate and extend, and the requests the family builds."""

from __future__ import annotations

import json
from typing import Any

import pytest

import kie
from kie import catalog
from kie.protocol.envelope import Envelope, parse_envelope
from kie.protocol.families import family_named
from kie.protocol.families.runway import RunwayFamily
from kie.protocol.task import TaskState

family = RunwayFamily()
TASK = "ee603959-debb-48d1-98c4-a6d1c717eba6"
VIDEO = "https://file.com/k/xxxxxxx.mp4"
COVER = "https://file.com/m/xxxxxxxx.png"
VIDEO_ID = "485da89c-7fca-4340-8c04-101025b2ae71"
VIDEO_INFO = {"videoId": VIDEO_ID, "taskId": TASK, "videoUrl": VIDEO, "imageUrl": COVER}
# docs.kie.ai get-ai-video-details, current example (taskId variant), verbatim.
DOCS_RECORD = {
    "code": 200,
    "msg": "success",
    "data": {
        "taskId": TASK,
        "parentTaskId": "",
        "generateParam": {
            "prompt": "A fluffy orange cat dancing energetically in a colorful room with disco lights",
            "imageUrl": "https://example.com/image.jpg",
            "expandPrompt": True,
        },
        "state": "success",
        "generateTime": "2023-08-15 14:30:45",
        "videoInfo": VIDEO_INFO,
        "failCode": 400,
        "failMsg": "Generation failed, please try again later",
        "expireFlag": 0,
    },
}
# The older example with numeric id/parentId, verbatim.
NUMERIC_RECORD = {
    "id": 12345,
    "parentId": 0,
    "generateParam": {
        "parentId": 0,
        "prompt": "cat dance",
        "imageUrl": "https://example.com/image.jpg",
        "expandPrompt": True,
    },
    "state": "success",
    "generateTime": "2023-08-15 14:30:45",
    "videoInfo": VIDEO_INFO,
    "failCode": "",
    "failMsg": "",
    "expireFlag": 0,
}


def test_docs_record_example() -> None:
    env = parse_envelope(200, json.dumps(DOCS_RECORD).encode())
    status = family.parse_status(env, "asked")
    assert status.state is TaskState.SUCCEEDED and status.result_urls == (VIDEO,)
    assert status.task_id == TASK and status.raw_state == "success"
    assert status.fail_code is None and status.fail_msg is None  # the example's failCode is noise on success
    assert status.create_time == 1692109845000  # "YYYY-MM-DD HH:mm:ss" read as UTC
    assert status.extra == {"cover_url": COVER, "video_id": VIDEO_ID, "expireFlag": 0}
    assert status.input is not None and status.input["expandPrompt"] is True


def test_numeric_id_variant() -> None:
    status = family.parse_status(Envelope(200, "success", NUMERIC_RECORD), "asked")
    assert status.state is TaskState.SUCCEEDED and status.result_urls == (VIDEO,)
    assert status.task_id == TASK  # from videoInfo: the numeric id is a row number
    assert status.extra["id"] == 12345 and "parentTaskId" not in status.extra


def rec(state: Any, **fields: Any) -> dict[str, Any]:
    return {
        "taskId": "t1",
        "parentTaskId": "",
        "state": state,
        "generateTime": "2023-08-15 14:30:45",
        **fields,
    }


STATES: list[tuple[Any, TaskState]] = [
    ("wait", TaskState.PENDING),
    ("queueing", TaskState.PENDING),
    ("generating", TaskState.RUNNING),
    ("success", TaskState.SUCCEEDED),
    ("fail", TaskState.FAILED),
    ("waiting", TaskState.PENDING),
    ("queuing", TaskState.PENDING),
    ("failed", TaskState.FAILED),
    ("SUCCESS", TaskState.SUCCEEDED),
    ("Generating", TaskState.RUNNING),
    ("paused", TaskState.RUNNING),
    ("", TaskState.PENDING),
    (None, TaskState.PENDING),
]


@pytest.mark.parametrize(("state", "expected"), STATES)
def test_every_state(state: Any, expected: TaskState) -> None:
    info = VIDEO_INFO if expected is TaskState.SUCCEEDED else None
    status = family.parse_status(Envelope(200, "success", rec(state, videoInfo=info)), "t1")
    assert status.state is expected
    assert status.result_urls == ((VIDEO,) if expected is TaskState.SUCCEEDED else ())


def test_urls_are_not_results_before_success() -> None:
    """One docs example shows `state: wait` with a filled videoInfo; it is not a result yet."""
    status = family.parse_record(rec("wait", videoInfo=VIDEO_INFO, failCode=400, failMsg="x"), "t1")
    assert status.state is TaskState.PENDING and status.result_urls == () and status.fail_code is None


def test_extension_record_names_its_parent() -> None:
    status = family.parse_record(rec("generating", parentTaskId="parent-1"), "t1")
    assert status.extra["parentTaskId"] == "parent-1"
    numeric = family.parse_record({**rec("generating"), "parentTaskId": None, "parentId": 678}, "t1")
    assert numeric.extra["parentTaskId"] == "678"


def test_snake_case_video_info_and_expiry() -> None:
    info = {"video_id": "v", "task_id": "t1", "video_url": "u.mp4", "image_url": "c.png"}
    status = family.parse_record(rec("success", videoInfo=info, expireFlag=1), "t1")
    assert status.result_urls == ("u.mp4",)
    assert status.extra == {"cover_url": "c.png", "video_id": "v", "expireFlag": 1}


INAPPROPRIATE = "Inappropriate content detected. Please replace the image or video."
FAILURES = [
    (rec("fail", failCode=400, failMsg=INAPPROPRIATE), "400", INAPPROPRIATE),
    (rec("fail", failCode="500", failMsg="Internal Error"), "500", "Internal Error"),
    (rec("fail", failCode="", failMsg=""), None, "Generation failed"),
]


@pytest.mark.parametrize(("data", "code", "msg"), FAILURES)
def test_failure_encoding(data: dict[str, Any], code: str | None, msg: str) -> None:
    status = family.parse_status(Envelope(200, "success", data), "t1")
    assert status.state is TaskState.FAILED and status.fail_code == code and status.fail_msg == msg


TIMES = [
    ("2023-08-15 14:30:45", 1692109845000),
    ("2023-08-15T14:30:45Z", 1692109845000),
    (1692109845000, 1692109845000),
]


@pytest.mark.parametrize(("value", "ms"), TIMES)
def test_generate_time_formats(value: Any, ms: int) -> None:
    assert family.parse_record(rec("wait", generateTime=value), "t1").create_time == ms


# -- callbacks ------------------------------------------------------------------------------------------
CALLBACKS: list[tuple[str, dict[str, Any], TaskState, tuple[str, ...]]] = [
    (
        "generate success",
        {
            "code": 200,
            "msg": "All generated successfully.",
            "data": {"task_id": TASK, "video_id": VIDEO_ID, "video_url": VIDEO, "image_url": COVER},
        },
        TaskState.SUCCEEDED,
        (VIDEO,),
    ),
    (
        "extend success (keys in the extend page's order)",
        {
            "code": 200,
            "msg": "All generated successfully.",
            "data": {"image_url": COVER, "task_id": TASK, "video_id": VIDEO_ID, "video_url": VIDEO},
        },
        TaskState.SUCCEEDED,
        (VIDEO,),
    ),
    (
        "camelCase data and a string code",
        {"code": "200", "msg": "ok", "data": {"taskId": TASK, "videoUrl": VIDEO, "imageUrl": COVER}},
        TaskState.SUCCEEDED,
        (VIDEO,),
    ),
    (
        "failure 400 with empty video fields",
        {
            "code": 400,
            "msg": "Inappropriate content detected. Please replace the image or video.",
            "data": {"task_id": TASK, "video_id": "", "video_url": "", "image_url": ""},
        },
        TaskState.FAILED,
        (),
    ),
    (
        "failure 500",
        {"code": 500, "msg": "Internal server error", "data": {"task_id": TASK}},
        TaskState.FAILED,
        (),
    ),
]


@pytest.mark.parametrize(("name", "body", "state", "urls"), CALLBACKS, ids=[c[0] for c in CALLBACKS])
def test_callback_shapes(name: str, body: dict[str, Any], state: TaskState, urls: tuple[str, ...]) -> None:
    status = family.parse_callback(body)
    assert status.task_id == TASK and status.state is state and status.result_urls == urls
    if state is TaskState.SUCCEEDED:
        assert status.extra["cover_url"] == COVER and status.fail_code is None
    else:
        assert status.fail_code == str(body["code"]) and status.fail_msg == body["msg"] and status.extra == {}


def test_failure_callback_with_null_data() -> None:
    status = family.parse_callback({"code": 500, "msg": "Timeout", "data": None})
    assert status.state is TaskState.FAILED and status.task_id == "" and status.fail_msg == "Timeout"


# -- envelopes and requests --------------------------------------------------------------------------------
def test_unknown_ids_and_errors() -> None:
    assert family.not_visible(Envelope(422, "record is null", None))
    assert family.not_visible(Envelope(404, "Task not found", None))
    assert family.answers() == frozenset({404, 422})
    with pytest.raises(kie.AuthenticationError):
        family.parse_status(Envelope(401, "Unauthorized – Authentication failed.", None), "t1")


def test_generate_and_extend_bodies() -> None:
    generate = catalog.get("runway/generate")
    values = {"prompt": "p", "duration": 5, "quality": "720p", "aspectRatio": "16:9"}
    request = family.create_request(generate, values, "https://cb.example/hook")
    assert (request.method, request.path, request.kind) == ("POST", "/api/v1/runway/generate", "create")
    assert request.json == {**values, "callBackUrl": "https://cb.example/hook"}
    extend = family.create_request(
        catalog.get("runway/extend"), {"taskId": "s", "prompt": "p", "quality": "720p"}, None
    )
    assert extend.path == "/api/v1/runway/extend" and extend.json == {
        "taskId": "s",
        "prompt": "p",
        "quality": "720p",
    }
    assert family.parse_created(generate, {"taskId": TASK}).task_id == TASK
    with pytest.raises(ValueError, match="taskId"):
        family.parse_created(generate, {"id": 12345})
    assert family_named("runway") is not None and generate.endpoint.requires_callback


def test_status_request_reads_record_detail() -> None:
    request = family.status_request(catalog.get("runway/extend"), "abc")
    assert (request.method, request.path, dict(request.params)) == (
        "GET",
        "/api/v1/runway/record-detail",
        {"taskId": "abc"},
    )
    assert family.status_request(None, "abc").path == "/api/v1/runway/record-detail"
