"""Flux Kontext parsing: every example body of kie-api.md §4.2, §5 and Appendix B (ISO times,
`response.originImageUrl`/`resultImageUrl`, successFlag 0-3, the four callback variants)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import kie
from kie import catalog
from kie.protocol.envelope import Envelope, parse_envelope
from kie.protocol.families import family_named
from kie.protocol.families.flux_kontext import FluxKontextFamily
from kie.protocol.task import TaskState

family = FluxKontextFamily()
ORIGIN = "https://example.com/original.jpg"
RESULT = "https://example.com/result.jpg"

# The get-image-details example (docs.kie.ai, EN and CN alike): ISO times, no `model` in paramJson.
DOCS_SUCCESS = {
    "taskId": "task12345",
    "paramJson": '{"prompt":"A serene mountain landscape","aspectRatio":"16:9"}',
    "completeTime": "2024-03-20T10:30:00Z",
    "response": {"originImageUrl": ORIGIN, "resultImageUrl": RESULT},
    "successFlag": 1,
    "errorCode": None,
    "errorMessage": "",
    "createTime": "2024-03-20T10:25:00Z",
}
GENERATING = {
    "taskId": "task12345",
    "paramJson": '{"prompt":"p","model":"flux-kontext-max","callBackUrl":"https://hook/cb"}',
    "completeTime": None,
    "response": None,
    "successFlag": 0,
    "errorCode": None,
    "errorMessage": "",
    "createTime": 1710930300000,
}
GENERATE_FAILED = {
    "taskId": "task12345",
    "paramJson": '{"prompt":"p"}',
    "response": None,
    "successFlag": 3,
    "errorCode": 501,
    "errorMessage": "Image generation task failed",
    "createTime": "2024-03-20 10:25:00",
}


def envelope(data: dict[str, Any], code: int = 200) -> Envelope:
    return parse_envelope(200, json.dumps({"code": code, "msg": "success", "data": data}).encode())


@pytest.mark.parametrize(
    ("data", "state", "urls"),
    [
        (DOCS_SUCCESS, TaskState.SUCCEEDED, (RESULT,)),
        (GENERATING, TaskState.RUNNING, ()),
        (GENERATE_FAILED, TaskState.FAILED, ()),
        ({**DOCS_SUCCESS, "response": json.dumps(DOCS_SUCCESS["response"])}, TaskState.SUCCEEDED, (RESULT,)),
        (
            {**DOCS_SUCCESS, "response": {"origin_image_url": ORIGIN, "result_image_url": RESULT}},
            TaskState.SUCCEEDED,
            (RESULT,),
        ),
    ],
    ids=["docs", "generating", "generate-failed", "response-as-string", "snake-case"],
)
def test_documented_records_parse(data: dict[str, Any], state: TaskState, urls: tuple[str, ...]) -> None:
    status = family.parse_status(envelope(data), "fallback")
    assert status.state is state and status.result_urls == urls and status.task_id == "task12345"


def test_docs_record_in_full() -> None:
    status = family.parse_status(envelope(DOCS_SUCCESS), "x")
    assert status.extra == {"originImageUrl": ORIGIN}  # kept, never downloaded
    assert status.create_time == 1710930300000 and status.complete_time == 1710930600000
    assert status.cost_time == 300.0 and status.fail_code is None
    assert status.model == "flux-kontext-pro"  # the documented default when the body named none
    assert status.input == {"prompt": "A serene mountain landscape", "aspectRatio": "16:9"}


def test_model_and_input_come_from_param_json() -> None:
    status = family.parse_status(envelope(GENERATING), "x")
    assert status.model == "flux-kontext-max" and status.input == {"prompt": "p"}
    assert family.parse_record({"successFlag": 0}, "t").model is None


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"successFlag": 0}, TaskState.RUNNING),
        ({"successFlag": 1}, TaskState.SUCCEEDED),
        ({"successFlag": 2}, TaskState.FAILED),
        ({"successFlag": 3}, TaskState.FAILED),
        ({"successFlag": "0"}, TaskState.RUNNING),
        ({"successFlag": "1"}, TaskState.SUCCEEDED),
        ({"successFlag": "2"}, TaskState.FAILED),
        ({"successFlag": "3"}, TaskState.FAILED),
        ({"status": "GENERATING"}, TaskState.RUNNING),
        ({"status": "SUCCESS"}, TaskState.SUCCEEDED),
        ({"status": "CREATE_TASK_FAILED"}, TaskState.FAILED),
        ({"status": "GENERATE_FAILED"}, TaskState.FAILED),
        ({"state": "wait"}, TaskState.PENDING),
        ({"state": "queueing"}, TaskState.PENDING),
        ({"state": "generating"}, TaskState.RUNNING),
        ({"state": "success"}, TaskState.SUCCEEDED),
        ({"state": "fail"}, TaskState.FAILED),
        ({}, TaskState.PENDING),
    ],
)
def test_every_status_encoding(fields: dict[str, Any], state: TaskState) -> None:
    assert family.parse_record({"taskId": "t", **fields}, "t").state is state


def test_failure_encodings() -> None:
    status = family.parse_status(envelope(GENERATE_FAILED), "x")
    assert (status.fail_code, status.fail_msg) == ("501", "Image generation task failed")
    assert status.create_time == 1710930300000
    create_failed = family.parse_record({"successFlag": 2, "errorCode": 400, "errorMessage": "flagged"}, "t")
    assert (create_failed.state, create_failed.fail_code, create_failed.fail_msg) == (
        TaskState.FAILED,
        "400",
        "flagged",
    )
    envelope_501 = family.parse_status(Envelope(501, "", None), "t")
    assert envelope_501.state is TaskState.FAILED and envelope_501.fail_code == "501"
    assert envelope_501.fail_msg == "Image generation task failed"


SUCCESS_CALLBACK = {
    "code": 200,
    "msg": "BFL image generated successfully.",
    "data": {"taskId": "task12345", "info": {"originImageUrl": ORIGIN, "resultImageUrl": RESULT}},
}


@pytest.mark.parametrize(
    ("body", "state", "code", "msg", "urls"),
    [
        (SUCCESS_CALLBACK, TaskState.SUCCEEDED, None, None, (RESULT,)),
        ({**SUCCESS_CALLBACK, "msg": "BFL 图像生成成功。"}, TaskState.SUCCEEDED, None, None, (RESULT,)),
        (
            {"code": 200, "msg": "ok", "data": {"task_id": "task12345", "info": {"resultImageUrl": RESULT}}},
            TaskState.SUCCEEDED,
            None,
            None,
            (RESULT,),
        ),
        (
            {"code": 200, "msg": "ok", "taskId": "task12345", "data": {"info": {"result_image_url": RESULT}}},
            TaskState.SUCCEEDED,
            None,
            None,
            (RESULT,),
        ),
        (
            {
                "code": 400,
                "msg": "Your prompt was flagged by Website as violating content policies",
                "data": {"taskId": "task12345"},
            },
            TaskState.FAILED,
            "400",
            "Your prompt was flagged by Website as violating content policies",
            (),
        ),
        (
            {"code": 500, "msg": "Internal Error, Please try again later", "data": {"taskId": "task12345"}},
            TaskState.FAILED,
            "500",
            "Internal Error, Please try again later",
            (),
        ),
        (
            {
                "code": 501,
                "msg": "Image generation task failed",
                "data": {"taskId": "task12345", "info": None},
            },
            TaskState.FAILED,
            "501",
            "Image generation task failed",
            (),
        ),
    ],
    ids=["success", "success-cn", "snake-task-id", "top-level-task-id", "400", "500", "501"],
)
def test_every_callback_shape(
    body: dict[str, Any], state: TaskState, code: str | None, msg: str | None, urls: tuple[str, ...]
) -> None:
    status = family.parse_callback(body)
    assert status.task_id == "task12345" and status.state is state
    assert (status.fail_code, status.fail_msg, status.result_urls) == (code, msg, urls)


def test_success_callback_keeps_the_origin_link() -> None:
    assert family.parse_callback(SUCCESS_CALLBACK).extra == {"originImageUrl": ORIGIN}


@pytest.mark.parametrize("model", ["flux-kontext-pro", "flux-kontext-max"])
def test_model_id_is_sent_as_the_fixed_body_model(model: str) -> None:
    assert isinstance(family_named("flux-kontext"), FluxKontextFamily)
    spec = catalog.get(model)
    values = {"prompt": "add a hat", "inputImage": "https://x/me.png", "safetyTolerance": 2}
    request = family.create_request(spec, values, "https://hook/cb")
    assert (request.method, request.path, request.kind) == ("POST", "/api/v1/flux/kontext/generate", "create")
    assert request.json == {**values, "model": model, "callBackUrl": "https://hook/cb"}
    status = family.status_request(spec, "t1")
    assert (status.path, dict(status.params)) == ("/api/v1/flux/kontext/record-info", {"taskId": "t1"})


def test_envelope_codes() -> None:
    assert family.answers() == frozenset({404, 422, 501})
    assert family.not_visible(Envelope(422, "record is null", None))
    assert not family.not_visible(Envelope(501, "", None))
    with pytest.raises(kie.RateLimitError):
        family.parse_status(Envelope(429, "slow down", None), "t")
