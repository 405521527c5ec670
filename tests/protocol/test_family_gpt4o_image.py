"""4o Image parsing: every example body of kie-api.md §4.1, §5 and Appendix B, conflicting variants
included (`resultUrls` vs `result_urls`, ms vs "YYYY-MM-DD HH:mm:ss", successFlag vs status)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import kie
from kie import catalog
from kie.protocol.envelope import Envelope, parse_envelope
from kie.protocol.families import family_named
from kie.protocol.families.gpt4o_image import (
    DOWNLOAD_URL_PATH,
    Gpt4oImageFamily,
    download_url_request,
    fresh_link,
)
from kie.protocol.flows import Send
from kie.protocol.task import TaskState, epoch_ms

family = Gpt4oImageFamily()
SPEC = catalog.get("gpt-4o-image")
URL = "https://example.com/result/image1.png"
PARAM = '{"prompt":"A beautiful sunset over the mountains","size":"1:1","isEnhance":false}'


def envelope(data: dict[str, Any], code: int = 200, msg: str = "success") -> Envelope:
    return parse_envelope(200, json.dumps({"code": code, "msg": msg, "data": data}).encode())


# The OpenAPI example (EN): note errorCode 400 on a successful record, which must not read as failure.
DOCS_SUCCESS_EN = {
    "taskId": "task12345",
    "paramJson": PARAM,
    "completeTime": 1672574400000,
    "response": {"resultUrls": [URL]},
    "successFlag": 1,
    "status": "SUCCESS",
    "errorCode": 400,
    "errorMessage": "",
    "createTime": 1672561200000,
    "progress": "1.00",
}
DOCS_SUCCESS_CN = {**DOCS_SUCCESS_EN, "errorCode": None}
# The CN quickstart example that looks captured (ms times, a progress fraction mid-way).
CN_QUICKSTART_GENERATING = {
    "taskId": "d231a99a",
    "paramJson": PARAM,
    "completeTime": None,
    "response": None,
    "successFlag": 0,
    "status": "GENERATING",
    "errorCode": None,
    "errorMessage": None,
    "createTime": 1755572609000,
    "progress": "0.48",
}
# The EN quickstart: snake_case `result_urls` and "YYYY-MM-DD HH:mm:ss" times.
QUICKSTART_SUCCESS = {
    "taskId": "task12345",
    "successFlag": 1,
    "status": "SUCCESS",
    "response": {"result_urls": [URL]},
    "createTime": "2025-08-19 10:30:00",
    "completeTime": "2025-08-19 10:31:05",
    "progress": "1.00",
}
FAILED = {
    "taskId": "task9",
    "paramJson": PARAM,
    "successFlag": 2,
    "status": "GENERATE_FAILED",
    "errorCode": 400,
    "errorMessage": "Your content was flagged by OpenAI as violating content policies",
    "createTime": 1672561200000,
    "completeTime": 1672561260000,
    "response": None,
    "progress": "0.30",
}


@pytest.mark.parametrize(
    ("data", "state", "urls"),
    [
        (DOCS_SUCCESS_EN, TaskState.SUCCEEDED, (URL,)),
        (DOCS_SUCCESS_CN, TaskState.SUCCEEDED, (URL,)),
        (CN_QUICKSTART_GENERATING, TaskState.RUNNING, ()),
        (QUICKSTART_SUCCESS, TaskState.SUCCEEDED, (URL,)),
        (FAILED, TaskState.FAILED, ()),
        ({**DOCS_SUCCESS_CN, "response": json.dumps({"resultUrls": [URL]})}, TaskState.SUCCEEDED, (URL,)),
    ],
    ids=["docs-en", "docs-cn", "cn-quickstart", "quickstart-snake", "failed", "response-as-string"],
)
def test_documented_records_parse(data: dict[str, Any], state: TaskState, urls: tuple[str, ...]) -> None:
    status = family.parse_status(envelope(data), "fallback-id")
    assert status.state is state and status.result_urls == urls
    assert status.task_id == data["taskId"] and status.model == "gpt-4o-image"


def test_success_ignores_error_code_and_reads_everything() -> None:
    status = family.parse_status(envelope(DOCS_SUCCESS_EN), "x")
    assert status.fail_code is None and status.fail_msg is None
    assert status.create_time == 1672561200000 and status.complete_time == 1672574400000
    assert status.cost_time == 13200.0 and status.progress == 100.0
    assert status.input == {
        "prompt": "A beautiful sunset over the mountains",
        "size": "1:1",
        "isEnhance": False,
    }


def test_progress_fraction_is_reported_in_percent() -> None:
    status = family.parse_status(envelope(CN_QUICKSTART_GENERATING), "x")
    assert status.progress == 48.0 and status.create_time == 1755572609000 and status.complete_time is None


def test_quickstart_text_times_are_read_as_utc() -> None:
    status = family.parse_status(envelope(QUICKSTART_SUCCESS), "x")
    assert status.create_time == 1755599400000 and status.cost_time == 65.0


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
        ({"status": "GENERATING"}, TaskState.RUNNING),
        ({"status": "SUCCESS"}, TaskState.SUCCEEDED),
        ({"status": "CREATE_TASK_FAILED"}, TaskState.FAILED),
        ({"status": "GENERATE_FAILED"}, TaskState.FAILED),
        ({"state": "wait"}, TaskState.PENDING),
        ({"state": "waiting"}, TaskState.PENDING),
        ({"state": "queueing"}, TaskState.PENDING),
        ({"state": "queuing"}, TaskState.PENDING),
        ({"state": "generating"}, TaskState.RUNNING),
        ({"state": "success"}, TaskState.SUCCEEDED),
        ({"state": "fail"}, TaskState.FAILED),
        ({"successFlag": 0, "status": "GENERATING"}, TaskState.RUNNING),
        ({"successFlag": 9}, TaskState.RUNNING),
        ({"successFlag": 9, "status": "SUCCESS"}, TaskState.SUCCEEDED),
        ({}, TaskState.PENDING),
    ],
)
def test_every_status_encoding(fields: dict[str, Any], state: TaskState) -> None:
    assert family.parse_record({"taskId": "t", **fields}, "t").state is state


def test_failure_encoding() -> None:
    status = family.parse_status(envelope(FAILED), "x")
    assert status.state is TaskState.FAILED and status.fail_code == "400"
    assert status.fail_msg == "Your content was flagged by OpenAI as violating content policies"
    no_message = family.parse_record({"taskId": "t", "status": "CREATE_TASK_FAILED"}, "t")
    assert no_message.fail_msg == "CREATE_TASK_FAILED" and no_message.fail_code is None
    market_spelling = family.parse_record({"successFlag": "2", "failCode": "500", "failMsg": "Timeout"}, "t")
    assert (market_spelling.fail_code, market_spelling.fail_msg) == ("500", "Timeout")
    assert market_spelling.task_id == "t"


SUCCESS_CALLBACK = {
    "code": 200,
    "msg": "success",
    "data": {"taskId": "task12345", "info": {"result_urls": [URL]}},
}


@pytest.mark.parametrize(
    ("body", "state", "code", "msg", "urls"),
    [
        (SUCCESS_CALLBACK, TaskState.SUCCEEDED, None, None, (URL,)),
        (
            {**SUCCESS_CALLBACK, "msg": "Gpt4o-image generated successfully."},
            TaskState.SUCCEEDED,
            None,
            None,
            (URL,),
        ),
        (
            {"code": 200, "msg": "success", "data": {"task_id": "task12345", "info": {"resultUrls": [URL]}}},
            TaskState.SUCCEEDED,
            None,
            None,
            (URL,),
        ),
        (
            {"code": 200, "msg": "success", "taskId": "task12345", "data": {"info": {"result_urls": [URL]}}},
            TaskState.SUCCEEDED,
            None,
            None,
            (URL,),
        ),
        (
            {
                "code": 400,
                "msg": "Your content was flagged by OpenAI as violating content policies",
                "data": {"taskId": "task12345", "info": None},
            },
            TaskState.FAILED,
            "400",
            "Your content was flagged by OpenAI as violating content policies",
            (),
        ),
        (
            {"code": 451, "msg": "Download Failed", "data": {"taskId": "task12345", "info": None}},
            TaskState.FAILED,
            "451",
            "Download Failed",
            (),
        ),
        (
            {"code": 500, "msg": "Internal Error, Please try again later", "data": {"taskId": "task12345"}},
            TaskState.FAILED,
            "500",
            "Internal Error, Please try again later",
            (),
        ),
    ],
    ids=["success", "success-cn-msg", "snake-task-id", "top-level-task-id", "400", "451", "500"],
)
def test_every_callback_shape(
    body: dict[str, Any], state: TaskState, code: str | None, msg: str | None, urls: tuple[str, ...]
) -> None:
    status = family.parse_callback(body)
    assert status.task_id == "task12345" and status.state is state
    assert (status.fail_code, status.fail_msg, status.result_urls) == (code, msg, urls)


def test_requests_are_flat_and_registered() -> None:
    assert isinstance(family_named("gpt4o-image"), Gpt4oImageFamily)
    values = {"prompt": "p", "size": "1:1", "nVariants": 2, "filesUrl": ["https://x/a.png"]}
    request = family.create_request(SPEC, values, "https://hook.example/cb")
    assert (request.method, request.path, request.kind) == ("POST", "/api/v1/gpt4o-image/generate", "create")
    assert request.json == {**values, "callBackUrl": "https://hook.example/cb"}
    assert "callBackUrl" not in (family.create_request(SPEC, values, None).json or {})
    status = family.status_request(SPEC, "t1")
    assert (status.method, status.path, dict(status.params)) == (
        "GET",
        "/api/v1/gpt4o-image/record-info",
        {"taskId": "t1"},
    )
    assert family.parse_created(SPEC, {"taskId": "t1"}).task_id == "t1"
    with pytest.raises(ValueError):
        family.parse_created(SPEC, {"recordId": None})


def test_unknown_record_is_not_visible_and_other_codes_raise() -> None:
    missing = Envelope(422, "record is null", None)
    assert family.not_visible(missing) and 422 in family.answers()
    with pytest.raises(kie.AuthenticationError):
        family.parse_status(Envelope(401, "Unauthorized", None), "t")
    with pytest.raises(kie.ServerError):
        family.parse_status(Envelope(500, "Internal Error", None), "t")


def test_download_url_helper() -> None:
    request = download_url_request("task12345", URL)
    assert (request.method, request.path) == ("POST", DOWNLOAD_URL_PATH)
    assert request.json == {"taskId": "task12345", "url": URL}
    flow = fresh_link("task12345", URL)
    sent = next(flow)
    assert isinstance(sent, Send) and sent.request == request
    presigned = "https://r2.example/file.png?X-Amz-Expires=1200&X-Amz-Signature=abc"
    with pytest.raises(StopIteration) as done:
        flow.send(Envelope(200, "success", presigned))
    assert done.value.value == presigned
    refused = fresh_link("task12345", URL)
    next(refused)
    with pytest.raises(kie.ValidationError, match="record status is not success"):
        refused.send(Envelope(422, "record status is not success", None))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1672561200000, 1672561200000),
        ("1755572609000", 1755572609000),
        (1672561200, 1672561200000),
        ("2025-08-19 10:30:00", 1755599400000),
        ("2024-03-20T10:25:00Z", 1710930300000),
        ("2024-03-20T18:25:00+08:00", 1710930300000),
        ("2024-03-20T10:25:00", 1710930300000),
        ("", None),
        (None, None),
        ("soon", None),
        (True, None),
    ],
)
def test_every_time_spelling(value: Any, expected: int | None) -> None:
    assert epoch_ms(value) == expected
