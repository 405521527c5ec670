"""Parsing Runway Aleph (kie-api.md §4.6, §5): every documented record and callback, and their variants."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kie import catalog
from kie.protocol.envelope import Envelope, parse_envelope
from kie.protocol.families import family_named
from kie.protocol.families.aleph import AlephFamily
from kie.protocol.task import TaskState

family = AlephFamily()
TASK = "ee603959-debb-48d1-98c4-a6d1c717eba6"
VIDEO = "https://file.com/k/xxxxxxx.mp4"
COVER = "https://file.com/m/xxxxxxxx.png"
PARAM = '{"prompt":"A majestic eagle soaring through mountain clouds at sunset","imageUrl":"https://example.com/eagle-image.jpg"}'


def rec(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "taskId": TASK,
        "paramJson": PARAM,
        "response": None,
        "completeTime": None,
        "createTime": "2023-08-15T14:25:00Z",
        "successFlag": 0,
        "errorCode": 0,
        "errorMessage": "",
    }
    return {**base, **fields}


# The get-aleph-video-details success example, verbatim.
DOCS_SUCCESS = json.dumps(
    {
        "code": 200,
        "msg": "success",
        "data": rec(
            response={"taskId": TASK, "resultVideoUrl": VIDEO, "resultImageUrl": COVER},
            completeTime="2023-08-15T14:30:45Z",
            successFlag=1,
        ),
    }
)
RECORDS: list[tuple[str, dict[str, Any], TaskState, tuple[str, ...]]] = [
    ("docs processing: flag 0, no errorMessage", rec(), TaskState.RUNNING, ()),
    ("flag 0 with null error fields", rec(errorCode=None, errorMessage=None), TaskState.RUNNING, ()),
    (
        "flag as string",
        rec(successFlag="1", response={"resultVideoUrl": VIDEO}),
        TaskState.SUCCEEDED,
        (VIDEO,),
    ),
    (
        "snake keys in response",
        rec(successFlag=1, response={"result_video_url": VIDEO}),
        TaskState.SUCCEEDED,
        (VIDEO,),
    ),
    (
        "response JSON-encoded",
        rec(successFlag=1, response=json.dumps({"resultVideoUrl": VIDEO})),
        TaskState.SUCCEEDED,
        (VIDEO,),
    ),
    (
        "docs failed: flag 0 with errorMessage",
        rec(errorCode=400, errorMessage="flagged"),
        TaskState.FAILED,
        (),
    ),
    ("flag 0 with only an errorCode", rec(errorCode="500"), TaskState.FAILED, ()),
    ("sibling failure flag 3", rec(successFlag=3), TaskState.FAILED, ()),
    ("no flag yet", {"taskId": TASK}, TaskState.PENDING, ()),
]


@pytest.mark.parametrize(("name", "data", "state", "urls"), RECORDS, ids=[r[0] for r in RECORDS])
def test_record_encodings(name: str, data: dict[str, Any], state: TaskState, urls: tuple[str, ...]) -> None:
    status = family.parse_status(Envelope(200, "success", data), "x")
    assert status.state is state and status.result_urls == urls and status.task_id == TASK


def test_docs_success_example() -> None:
    status = family.parse_status(parse_envelope(200, DOCS_SUCCESS.encode()), "x")
    assert status.state is TaskState.SUCCEEDED and status.result_urls == (VIDEO,)
    assert status.extra == {"cover_url": COVER}  # the thumbnail is kept, not downloaded as a result
    assert status.fail_code is None and status.fail_msg is None  # errorCode 0 means "no error"
    assert status.create_time == 1692109500000 and status.complete_time == 1692109845000
    assert status.input is not None and status.input["imageUrl"] == "https://example.com/eagle-image.jpg"
    assert status.model == "runway/aleph"


def test_failure_encoding() -> None:
    status = family.parse_record(
        rec(errorCode=400, errorMessage="Your prompt was caught by our AI moderator."), "x"
    )
    assert status.state is TaskState.FAILED and status.fail_code == "400"
    assert status.fail_msg == "Your prompt was caught by our AI moderator."
    bare = family.parse_record(rec(successFlag=2), "x")
    assert bare.state is TaskState.FAILED and bare.fail_code is None and bare.fail_msg == "Generation failed"


def test_record_info_envelopes() -> None:
    assert family.not_visible(Envelope(404, "Task not found", None))
    assert family.not_visible(Envelope(422, "Invalid task ID format", None))
    assert family.answers() == frozenset({404, 422})
    with pytest.raises(Exception, match="501"):
        family.parse_status(Envelope(501, "", None), "x")


CALLBACKS: list[tuple[str, dict[str, Any], TaskState, tuple[str, ...]]] = [
    (
        "docs success, taskId at top level",
        {
            "code": 200,
            "msg": "success",
            "data": {"result_video_url": VIDEO, "result_image_url": COVER},
            "taskId": TASK,
        },
        TaskState.SUCCEEDED,
        (VIDEO,),
    ),
    (
        "docs error, data null",
        {
            "code": 400,
            "msg": "Your prompt was caught by our AI moderator. Please adjust it and try again!",
            "data": None,
            "taskId": TASK,
        },
        TaskState.FAILED,
        (),
    ),
    (
        "taskId inside data",
        {"code": 200, "msg": "success", "data": {"taskId": TASK, "result_video_url": VIDEO}},
        TaskState.SUCCEEDED,
        (VIDEO,),
    ),
    (
        "snake task_id, camelCase urls",
        {
            "code": "200",
            "msg": "success",
            "task_id": TASK,
            "data": {"resultVideoUrl": VIDEO, "resultImageUrl": COVER},
        },
        TaskState.SUCCEEDED,
        (VIDEO,),
    ),
]


@pytest.mark.parametrize(("name", "body", "state", "urls"), CALLBACKS, ids=[c[0] for c in CALLBACKS])
def test_callbacks(name: str, body: dict[str, Any], state: TaskState, urls: tuple[str, ...]) -> None:
    status = family.parse_callback(body)
    assert status.task_id == TASK and status.state is state and status.result_urls == urls
    if state is TaskState.FAILED:
        assert status.fail_code == "400" and status.fail_msg is not None
        assert status.fail_msg.startswith("Your prompt was caught")
    elif "result_image_url" in body["data"] or "resultImageUrl" in body["data"]:
        assert status.extra == {"cover_url": COVER}


def test_create_request_is_the_flat_body() -> None:
    spec = catalog.get("runway/aleph")
    values = {"prompt": "p", "videoUrl": "https://example.com/in.mp4", "aspectRatio": "21:9", "seed": 7}
    request = family_named("aleph").create_request(spec, values, "https://cb.example/h")
    assert (request.method, request.path, request.kind) == ("POST", "/api/v1/aleph/generate", "create")
    assert request.json == {**values, "callBackUrl": "https://cb.example/h"}
    assert family.status_request(spec, TASK).path == "/api/v1/aleph/record-info"
    assert family.parse_created(spec, {"taskId": TASK}).task_id == TASK
