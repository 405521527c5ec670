"""Parsing Luma Modify (kie-api.md §4.7, §5): every documented record and callback, and their variants."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kie import catalog
from kie.protocol.envelope import Envelope, parse_envelope
from kie.protocol.families import family_named
from kie.protocol.families.luma import LumaFamily
from kie.protocol.task import TaskState

family = LumaFamily()
RESULT = "https://tempfile.aiquickdraw.com/l/f782018c-6be4-4990-96ba-7231cd5a39e7.mp4"
ORIGIN = "https://tempfile.aiquickdraw.com/kieai/file/veo3-video/1755074605154fqb0m8ge.mp4"
PARAM = (
    '{"callBackUrl":"https://example.com/callback","prompt":"A futuristic cityscape",'
    '"videoUrl":"https://example.com/video.mp4","waterMark":""}'
)
# The get-luma-modify-details example, verbatim.
DOCS_RECORD = json.dumps(
    {
        "code": 200,
        "msg": "success",
        "data": {
            "taskId": "774d9a7dd608a0e49293903095e45a4c",
            "paramJson": PARAM,
            "completeTime": 1755078480000,
            "response": {
                "taskId": "774d9a7dd608a0e49293903095e45a4c",
                "originUrls": [ORIGIN],
                "resultUrls": [RESULT],
            },
            "successFlag": 1,
            "createTime": 1755078171000,
            "errorCode": None,
            "errorMessage": None,
        },
    }
)


def rec(**fields: Any) -> dict[str, Any]:
    return {"taskId": "774d9a7dd608a0e49293903095e45a4c", "paramJson": PARAM, **fields}


DONE = {"taskId": "774d9a7dd608a0e49293903095e45a4c", "originUrls": [ORIGIN], "resultUrls": [RESULT]}
RECORDS: list[tuple[str, dict[str, Any], TaskState, tuple[str, ...]]] = [
    ("0 generating", rec(successFlag=0, response=None), TaskState.RUNNING, ()),
    ("1 success", rec(successFlag=1, response=DONE), TaskState.SUCCEEDED, (RESULT,)),
    ("2 create failed", rec(successFlag=2, errorCode=400, errorMessage="bad video"), TaskState.FAILED, ()),
    ("3 generate failed", rec(successFlag=3, errorCode=500, errorMessage="oops"), TaskState.FAILED, ()),
    (
        "4 callback failed",
        rec(successFlag=4, response=DONE, errorMessage="callback timeout"),
        TaskState.SUCCEEDED,
        (RESULT,),
    ),
    ("4 as string", rec(successFlag="4", response=DONE), TaskState.SUCCEEDED, (RESULT,)),
    ("1 as string", rec(successFlag="1", response=DONE), TaskState.SUCCEEDED, (RESULT,)),
    ("name GENERATING", rec(status="GENERATING"), TaskState.RUNNING, ()),
    ("name SUCCESS", rec(status="SUCCESS", response=DONE), TaskState.SUCCEEDED, (RESULT,)),
    ("name CREATE_TASK_FAILED", rec(status="CREATE_TASK_FAILED"), TaskState.FAILED, ()),
    ("name GENERATE_FAILED", rec(status="GENERATE_FAILED"), TaskState.FAILED, ()),
    ("name CALLBACK_FAILED", rec(status="CALLBACK_FAILED", response=DONE), TaskState.SUCCEEDED, (RESULT,)),
    (
        "flag spelled as a name",
        rec(successFlag="CALLBACK_FAILED", response=DONE),
        TaskState.SUCCEEDED,
        (RESULT,),
    ),
    ("no flag yet", rec(), TaskState.PENDING, ()),
    ("response JSON-encoded", rec(successFlag=1, response=json.dumps(DONE)), TaskState.SUCCEEDED, (RESULT,)),
    (
        "snake result_urls",
        rec(successFlag=1, response={"result_urls": [RESULT]}),
        TaskState.SUCCEEDED,
        (RESULT,),
    ),
]


@pytest.mark.parametrize(("name", "data", "state", "urls"), RECORDS, ids=[r[0] for r in RECORDS])
def test_record_encodings(name: str, data: dict[str, Any], state: TaskState, urls: tuple[str, ...]) -> None:
    status = family.parse_status(Envelope(200, "success", data), "x")
    assert status.state is state and status.result_urls == urls
    assert status.task_id == "774d9a7dd608a0e49293903095e45a4c" and status.model == "luma/modify"


def test_docs_record_example() -> None:
    status = family.parse_status(parse_envelope(200, DOCS_RECORD.encode()), "x")
    assert status.state is TaskState.SUCCEEDED and status.result_urls == (RESULT,)
    assert status.extra == {"origin_urls": [ORIGIN]}  # the source video is kept, not downloaded
    assert status.create_time == 1755078171000 and status.complete_time == 1755078480000
    assert status.input == {
        "prompt": "A futuristic cityscape",
        "videoUrl": "https://example.com/video.mp4",
        "waterMark": "",
    }


def test_callback_failed_flag_keeps_its_videos_and_the_reason() -> None:
    status = family.parse_record(rec(successFlag=4, response=DONE, errorMessage="callback timeout"), "x")
    assert status.state is TaskState.SUCCEEDED and status.fail_msg is None
    assert status.extra["callback_error"] == "callback timeout"


@pytest.mark.parametrize(
    ("data", "code", "msg"),
    [
        (rec(successFlag=2, errorCode=400, errorMessage="bad video"), "400", "bad video"),
        (rec(successFlag=3, errorCode="500", errorMessage="oops"), "500", "oops"),
        (rec(successFlag=3), None, "Task creation succeeded but generation failed"),
        (rec(successFlag=2), None, "Failed to create the task"),
    ],
)
def test_failure_encodings(data: dict[str, Any], code: str | None, msg: str) -> None:
    status = family.parse_record(data, "x")
    assert status.state is TaskState.FAILED and status.fail_code == code and status.fail_msg == msg


def test_record_info_envelopes() -> None:
    failed = family.parse_status(Envelope(501, "", None), "t9")
    assert failed.state is TaskState.FAILED and failed.fail_msg == "Video generation task failed"
    assert family.not_visible(Envelope(422, "record is null", None))
    assert not family.not_visible(Envelope(200, "success", {}))
    with pytest.raises(Exception, match="500"):
        family.parse_status(Envelope(500, "Internal Error", None), "t9")


PROMPT_JSON = (
    '{"callBackUrl":"https://b7af305f36d6.ngrok-free.app/api/v1/modify/test",'
    '"prompt":"A futuristic cityscape","videoUrl":"https://tempfile.aiquickdraw.com/kieai/file/veo3-video/1755074605154fqb0m8ge.mp4","waterMark":""}'
)
CALLBACKS: list[tuple[str, dict[str, Any], TaskState, tuple[str, ...]]] = [
    (
        "docs success",
        {
            "code": 200,
            "msg": "Modify record generated successfully.",
            "data": {
                "taskId": "774d9a7dd608a0e49293903095e45a4c",
                "promptJson": PROMPT_JSON,
                "resultUrls": [RESULT],
            },
        },
        TaskState.SUCCEEDED,
        (RESULT,),
    ),
    (
        "docs failure (no resultUrls)",
        {
            "code": 500,
            "msg": "Modify record generation failed.",
            "data": {"taskId": "774d9a7dd608a0e49293903095e45a4c", "promptJson": PROMPT_JSON},
        },
        TaskState.FAILED,
        (),
    ),
    (
        "snake task_id",
        {
            "code": 200,
            "msg": "ok",
            "data": {"task_id": "774d9a7dd608a0e49293903095e45a4c", "resultUrls": [RESULT]},
        },
        TaskState.SUCCEEDED,
        (RESULT,),
    ),
    (
        "taskId at top level",
        {
            "code": 200,
            "msg": "ok",
            "taskId": "774d9a7dd608a0e49293903095e45a4c",
            "data": {"resultUrls": [RESULT]},
        },
        TaskState.SUCCEEDED,
        (RESULT,),
    ),
]


@pytest.mark.parametrize(("name", "body", "state", "urls"), CALLBACKS, ids=[c[0] for c in CALLBACKS])
def test_callbacks(name: str, body: dict[str, Any], state: TaskState, urls: tuple[str, ...]) -> None:
    status = family.parse_callback(body)
    assert status.task_id == "774d9a7dd608a0e49293903095e45a4c" and status.state is state
    assert status.result_urls == urls
    if state is TaskState.FAILED:
        assert status.fail_code == "500" and status.fail_msg == "Modify record generation failed."
    elif "promptJson" in body["data"]:
        assert status.input is not None and status.input["prompt"] == "A futuristic cityscape"


def test_create_request_is_the_flat_body() -> None:
    spec = catalog.get("luma/modify")
    values = {"prompt": "p", "videoUrl": "https://example.com/in.mp4", "watermark": "w"}
    request = family_named("luma").create_request(spec, values, "https://cb.example/h")
    assert (request.method, request.path, request.kind) == ("POST", "/api/v1/modify/generate", "create")
    assert request.json == {**values, "callBackUrl": "https://cb.example/h"}
    assert family.create_request(spec, values, None).json == values
    assert family.status_request(spec, "t").params == {"taskId": "t"}
    assert family.status_request(None, "t").path == "/api/v1/modify/record-info"
    assert family.parse_created(spec, {"taskId": "774d9a7dd608a0e49293903095e45a4c"}).task_id.startswith(
        "774d"
    )
