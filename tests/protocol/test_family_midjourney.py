"""Parsing Midjourney (kie-api.md §4.3, §5): every documented record and callback, and their variants."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kie import catalog
from kie.protocol.envelope import Envelope, parse_envelope
from kie.protocol.families import family_named
from kie.protocol.families.midjourney import TASK_TYPES, MidjourneyFamily
from kie.protocol.task import TaskState

family = MidjourneyFamily()
GRID = [f"https://tempfile.aiquickdraw.com/v/42ea4a4250571eb18361bd2e309c8e8a_0_{n}.jpeg" for n in range(4)]
PARAM = (
    '{"aspectRatio":"16:9","callBackUrl":"https://api.example.com/callback","fileUrl":"","prompt":"Help me '
    'generate a sci-fi themed fighter jet","speed":"Relax","stylization":1,"taskType":"mj_txt2img",'
    '"version":"7","waterMark":"","weirdness":1}'
)
# The get-mj-task-details example, verbatim apart from the shortened prompt.
DOCS_RECORD = (
    '{"code":200,"msg":"success","data":{"taskId":"4edb3c5XXXXX75e3f0aa5cc","taskType":"mj_txt2img",'
    f'"paramJson":{json.dumps(PARAM)},"completeTime":"2024-03-20T10:30:00Z","resultInfoJson":{{"resultUrls":'
    + json.dumps([{"resultUrl": u} for u in GRID])
    + '},"successFlag":1,"createTime":"2024-03-20T10:30:00Z","errorCode":null,"errorMessage":null}}'
)
# The quickstart's shorter "Task Status Response".
QUICKSTART_RECORD = {
    "taskId": "mj_task_abcdef123456",
    "successFlag": 1,
    "resultInfoJson": {
        "resultUrls": [{"resultUrl": f"https://example.com/image{n}.jpg"} for n in (1, 2, 3, 4)]
    },
}
QUICKSTART_URLS = tuple(f"https://example.com/image{n}.jpg" for n in (1, 2, 3, 4))


def rec(**fields: Any) -> dict[str, Any]:
    return {"taskId": "t1", "taskType": "mj_txt2img", "paramJson": "{}", **fields}


RECORDS: list[tuple[str, dict[str, Any], TaskState, tuple[str, ...]]] = [
    ("quickstart success", QUICKSTART_RECORD, TaskState.SUCCEEDED, QUICKSTART_URLS),
    ("generating", rec(successFlag=0, resultInfoJson=None), TaskState.RUNNING, ()),
    (
        "flag as string",
        rec(successFlag="1", resultInfoJson={"resultUrls": [{"resultUrl": "u"}]}),
        TaskState.SUCCEEDED,
        ("u",),
    ),
    ("flag 0 as string", rec(successFlag="0"), TaskState.RUNNING, ()),
    ("no flag yet", rec(), TaskState.PENDING, ()),
    ("status name only", rec(status="GENERATING"), TaskState.RUNNING, ()),
    ("status name success", rec(status="SUCCESS", resultUrls=["u"]), TaskState.SUCCEEDED, ("u",)),
    (
        "resultInfoJson JSON-encoded",
        rec(
            successFlag=1, resultInfoJson=json.dumps({"resultUrls": [{"resultUrl": "a"}, {"resultUrl": "b"}]})
        ),
        TaskState.SUCCEEDED,
        ("a", "b"),
    ),
    (
        "plain strings in resultUrls",
        rec(successFlag=1, resultInfoJson={"resultUrls": ["a", ""]}),
        TaskState.SUCCEEDED,
        ("a",),
    ),
    ("unknown future flag keeps polling", rec(successFlag=9), TaskState.RUNNING, ()),
]


@pytest.mark.parametrize(("name", "data", "state", "urls"), RECORDS, ids=[r[0] for r in RECORDS])
def test_record_encodings(name: str, data: dict[str, Any], state: TaskState, urls: tuple[str, ...]) -> None:
    status = family.parse_status(Envelope(200, "success", data), "fallback")
    assert status.state is state and status.result_urls == urls


def test_docs_record_example() -> None:
    status = family.parse_status(parse_envelope(200, DOCS_RECORD.encode()), "x")
    assert status.state is TaskState.SUCCEEDED and status.result_urls == tuple(GRID)
    assert status.task_id == "4edb3c5XXXXX75e3f0aa5cc" and status.model == "midjourney/txt2img"
    assert status.create_time == status.complete_time == 1710930600000  # ISO string read as UTC ms
    assert status.input is not None and status.input["speed"] == "Relax"
    assert "callBackUrl" not in status.input and "taskType" not in status.input
    assert status.extra == {"taskType": "mj_txt2img"} and status.fail_code is None


FAILURES = [
    (rec(successFlag=2, errorCode=400, errorMessage="Image fetch failed"), "400", "Image fetch failed"),
    (rec(successFlag=3, errorCode=500, errorMessage="Internal Error"), "500", "Internal Error"),
    (
        rec(successFlag="3", errorCode="501", errorMessage=None),
        "501",
        "Task created successfully but generation failed",
    ),
    (rec(successFlag=2), None, "Task creation failed"),
    (rec(status="GENERATE_FAILED", failCode="422", failMsg="flagged"), "422", "flagged"),
]


@pytest.mark.parametrize(("data", "code", "msg"), FAILURES)
def test_failure_encodings(data: dict[str, Any], code: str | None, msg: str) -> None:
    status = family.parse_record(data, "t1")
    assert status.state is TaskState.FAILED and status.fail_code == code and status.fail_msg == msg
    assert status.result_urls == ()


def test_record_info_envelopes() -> None:
    failed = family.parse_status(Envelope(501, "Generation Failed", None), "t9")
    assert failed.state is TaskState.FAILED and failed.fail_code == "501"
    assert family.not_visible(Envelope(422, "record is null", None))
    assert family.not_visible(Envelope(404, "Not Found", None))
    assert family.answers() == frozenset({404, 422, 501})
    with pytest.raises(Exception, match="455"):
        family.parse_status(Envelope(455, "maintenance", None), "t9")


@pytest.mark.parametrize(
    "value", ["2024-03-20T10:30:00Z", "2024-03-20 10:30:00", 1710930600000, "1710930600000", 1710930600]
)
def test_time_variants(value: Any) -> None:
    assert family.parse_record(rec(successFlag=0, createTime=value), "t").create_time == 1710930600000


PROMPT_JSON = '{"prompt":"a beautiful landscape","model":"midjourney"}'
CALLBACKS: list[tuple[str, dict[str, Any], TaskState, tuple[str, ...]]] = [
    (
        "docs success",
        {
            "code": 200,
            "msg": "success",
            "data": {
                "taskId": "mj_task_12345",
                "promptJson": PROMPT_JSON,
                "resultUrls": [f"https://example.com/mj_result{n}.png" for n in (1, 2, 3, 4)],
            },
        },
        TaskState.SUCCEEDED,
        tuple(f"https://example.com/mj_result{n}.png" for n in (1, 2, 3, 4)),
    ),
    (
        "docs failure",
        {
            "code": 500,
            "msg": "Image generation failed",
            "data": {"taskId": "mj_task_12345", "promptJson": PROMPT_JSON, "resultUrls": []},
        },
        TaskState.FAILED,
        (),
    ),
    (
        "snake task_id",
        {"code": 200, "msg": "success", "data": {"task_id": "mj_task_12345", "resultUrls": ["u"]}},
        TaskState.SUCCEEDED,
        ("u",),
    ),
    (
        "taskId at top level",
        {"code": "200", "msg": "success", "taskId": "mj_task_12345", "data": {"resultUrls": ["u"]}},
        TaskState.SUCCEEDED,
        ("u",),
    ),
]


@pytest.mark.parametrize(("name", "body", "state", "urls"), CALLBACKS, ids=[c[0] for c in CALLBACKS])
def test_callbacks(name: str, body: dict[str, Any], state: TaskState, urls: tuple[str, ...]) -> None:
    status = family.parse_callback(body)
    assert status.task_id == "mj_task_12345" and status.state is state and status.result_urls == urls
    if state is TaskState.FAILED:
        assert status.fail_code == "500" and status.fail_msg == "Image generation failed"


def test_callback_input_and_model_come_from_prompt_json() -> None:
    body = {
        "code": 200,
        "msg": "success",
        "data": {
            "taskId": "t",
            "promptJson": json.dumps({"taskType": "mj_video", "prompt": "p"}),
            "resultUrls": [],
        },
    }
    status = family.parse_callback(body)
    assert status.model == "midjourney/video" and status.input == {"prompt": "p"}
    with pytest.raises(ValueError):
        family.parse_callback({"code": 200, "msg": "success", "data": None})


@pytest.mark.parametrize("model_id", sorted(v for v in TASK_TYPES.values()))
def test_create_body_is_flat_with_the_task_type_the_model_fixes(model_id: str) -> None:
    spec = catalog.get(model_id)
    request = family_named("midjourney").create_request(spec, {"prompt": "p"}, "https://cb.example/h")
    assert request.method == "POST" and request.kind == "create" and request.path == spec.endpoint.create
    assert request.json == {"prompt": "p", **spec.endpoint.fixed, "callBackUrl": "https://cb.example/h"}
    assert family.status_request(spec, "t1").path == "/api/v1/mj/record-info"


def test_task_types_match_the_catalogue() -> None:
    fixed = {
        spec.endpoint.fixed["taskType"]: spec.id
        for spec in catalog.all_models()
        if spec.endpoint.api == "midjourney" and "taskType" in spec.endpoint.fixed
    }
    assert fixed == {k: v for k, v in TASK_TYPES.items() if k not in ("mj_upscale", "mj_vary")}
    paths = {catalog.get(TASK_TYPES[t]).endpoint.create for t in ("mj_upscale", "mj_vary")}
    assert paths == {"/api/v1/mj/generateUpscale", "/api/v1/mj/generateVary"}


def test_follow_up_bodies_and_create_answers() -> None:
    spec = catalog.get("midjourney/vary")
    body = family.create_request(spec, {"taskId": "abc", "imageIndex": 1, "waterMark": ""}, None).json
    assert body == {"taskId": "abc", "imageIndex": 1, "waterMark": ""}  # no taskType, no callBackUrl
    assert (
        family.parse_created(spec, {"taskId": "mj_upscale_abcdef123456"}).task_id == "mj_upscale_abcdef123456"
    )
    with pytest.raises(ValueError):
        family.parse_created(spec, {"recordId": None})
    assert family.status_request(None, "t").path == "/api/v1/mj/record-info"
