"""Parsing Veo 3.1 (kie-api.md §4.4, §5, Appendix B): every documented record, callback and follow-up
answer, their conflicting variants, and the requests the family builds."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import kie
from kie import catalog
from kie.protocol.envelope import Envelope, parse_envelope
from kie.protocol.families import family_named
from kie.protocol.families.veo import VeoFamily, parse_upgrade_id, upgrade_id
from kie.protocol.task import TaskState

family = VeoFamily()
VIDEO = "http://example.com/video1.mp4"
ORIGIN = "http://example.com/original_video1.mp4"
PARAM = '{"prompt":"A futuristic city with flying cars at sunset.","waterMark":"KieAI"}'
# The get-veo-3-video-details example, verbatim.
DOCS_RECORD = json.dumps(
    {
        "code": 200,
        "msg": "success",
        "data": {
            "taskId": "veo_task_abcdef123456",
            "paramJson": PARAM,
            "completeTime": "2025-06-06 10:30:00",
            "response": {
                "taskId": "veo_task_abcdef123456",
                "resultUrls": [VIDEO],
                "originUrls": [ORIGIN],
                "resolution": "1080p",
            },
            "successFlag": 1,
            "errorCode": None,
            "errorMessage": "",
            "createTime": "2025-06-06 10:25:00",
            "fallbackFlag": False,
        },
    }
)


def rec(**fields: Any) -> dict[str, Any]:
    return {"taskId": "t1", "paramJson": '{"prompt":"x","model":"veo3_fast"}', **fields}


def ok(**response: Any) -> dict[str, Any]:
    return {"taskId": "t1", **response}


RECORDS: list[tuple[str, dict[str, Any], TaskState, tuple[str, ...]]] = [
    ("generating", rec(successFlag=0, response=None), TaskState.RUNNING, ()),
    ("success", rec(successFlag=1, response=ok(resultUrls=["a"])), TaskState.SUCCEEDED, ("a",)),
    ("flag as string", rec(successFlag="1", response=ok(resultUrls=["a"])), TaskState.SUCCEEDED, ("a",)),
    ("flag 0 as string", rec(successFlag="0"), TaskState.RUNNING, ()),
    ("flag 2 failed", rec(successFlag=2), TaskState.FAILED, ()),
    ("flag 3 generation failed", rec(successFlag="3"), TaskState.FAILED, ()),
    ("no flag yet", rec(), TaskState.PENDING, ()),
    ("status name", rec(status="GENERATING"), TaskState.RUNNING, ()),
    (
        "status name success",
        rec(status="SUCCESS", response=ok(resultUrls=["a"])),
        TaskState.SUCCEEDED,
        ("a",),
    ),
    ("status name failure", rec(status="GENERATE_FAILED"), TaskState.FAILED, ()),
    ("unknown future flag keeps polling", rec(successFlag=9), TaskState.RUNNING, ()),
    (
        "response JSON-encoded",
        rec(successFlag=1, response=json.dumps(ok(resultUrls=["a", "b"]))),
        TaskState.SUCCEEDED,
        ("a", "b"),
    ),
    (
        "snake_case result_urls",
        rec(successFlag=1, response=ok(result_urls=["a"])),
        TaskState.SUCCEEDED,
        ("a",),
    ),
    (
        "quickstart: data.resultUrls as a JSON string",
        rec(successFlag=1, resultUrls='["q"]'),
        TaskState.SUCCEEDED,
        ("q",),
    ),
    (
        "extend: the stitched fullResultUrls after resultUrls",
        rec(successFlag=1, response=ok(resultUrls=["seg"], fullResultUrls=["full"])),
        TaskState.SUCCEEDED,
        ("seg", "full"),
    ),
    (
        "extend: a fullResultUrls equal to resultUrls is one file",
        rec(successFlag=1, response=ok(resultUrls=["same"], fullResultUrls=["same"])),
        TaskState.SUCCEEDED,
        ("same",),
    ),
    (
        "4K record: imageUrls are thumbnails, not results",
        rec(successFlag=1, response=ok(resultUrls=["4k.mp4"], imageUrls=["4k.jpg"], mediaIds=["m"])),
        TaskState.SUCCEEDED,
        ("4k.mp4",),
    ),
    (
        "urls are not results before success",
        rec(successFlag=0, response=ok(resultUrls=["a"])),
        TaskState.RUNNING,
        (),
    ),
]


@pytest.mark.parametrize(("name", "data", "state", "urls"), RECORDS, ids=[r[0] for r in RECORDS])
def test_record_encodings(name: str, data: dict[str, Any], state: TaskState, urls: tuple[str, ...]) -> None:
    status = family.parse_status(Envelope(200, "success", data), "fallback")
    assert status.state is state and status.result_urls == urls


def test_docs_record_example() -> None:
    status = family.parse_status(parse_envelope(200, DOCS_RECORD.encode()), "x")
    assert status.state is TaskState.SUCCEEDED and status.result_urls == (VIDEO,)
    assert status.task_id == "veo_task_abcdef123456" and status.raw_state == "1"
    assert status.extra == {"originUrls": [ORIGIN], "resolution": "1080p", "fallbackFlag": False}
    assert status.create_time == 1749205500000 and status.complete_time == 1749205800000
    assert status.input == {"prompt": "A futuristic city with flying cars at sunset.", "waterMark": "KieAI"}
    assert status.fail_code is None and status.fail_msg is None


TIMES = [
    ("example string", "2025-06-06 10:25:00", 1749205500000),
    ("schema ISO", "2025-06-06T10:25:00Z", 1749205500000),
    ("ms integer", 1749205500000, 1749205500000),
    ("ms as a string", "1749205500000", 1749205500000),
    ("absent", None, None),
]


@pytest.mark.parametrize(("name", "value", "ms"), TIMES, ids=[t[0] for t in TIMES])
def test_every_time_format(name: str, value: Any, ms: int | None) -> None:
    status = family.parse_record(rec(successFlag=0, createTime=value, completeTime=value), "t1")
    assert status.create_time == ms and status.complete_time == ms


def test_model_and_input_come_from_param_json() -> None:
    status = family.parse_record(
        rec(successFlag=0, paramJson='{"prompt":"p","model":"veo3","callBackUrl":"u"}'), "t"
    )
    assert status.model == "veo3" and status.input == {"prompt": "p", "model": "veo3"}
    extension = family.parse_record(rec(successFlag=0, paramJson='{"taskId":"s","model":"fast"}'), "t")
    assert extension.model is None  # an extend's tier is not a model id


FAILURES = [
    (
        rec(
            successFlag=2,
            errorCode=400,
            errorMessage="Your prompt was flagged by Website as violating content policies.",
        ),
        "400",
        "Your prompt was flagged by Website as violating content policies.",
    ),
    (
        rec(successFlag=3, errorCode=501, errorMessage="Failed - Video generation task failed"),
        "501",
        "Failed - Video generation task failed",
    ),
    (rec(successFlag=3, errorCode=500), "500", "Task created successfully but generation failed"),
    (rec(successFlag=2), None, "Task failed"),
    (
        rec(errorCode=500, errorMessage="Internal Error, Please try again later."),
        "500",
        "Internal Error, Please try again later.",
    ),
    (rec(successFlag=3, failCode="422", failMsg="Market spelling"), "422", "Market spelling"),
]


@pytest.mark.parametrize(("data", "code", "msg"), FAILURES)
def test_failure_encoding(data: dict[str, Any], code: str | None, msg: str) -> None:
    status = family.parse_status(Envelope(200, "success", data), "t1")
    assert status.state is TaskState.FAILED and status.fail_code == code and status.fail_msg == msg
    assert status.result_urls == ()


def test_success_ignores_the_empty_error_fields_of_the_example() -> None:
    status = family.parse_record(
        rec(successFlag=1, errorCode=None, errorMessage="", response=ok(resultUrls=["a"])), "t"
    )
    assert status.fail_code is None and status.fail_msg is None


# -- callbacks (§4.4, §5) ---------------------------------------------------------------------------------
CALLBACKS: list[tuple[str, dict[str, Any], TaskState, tuple[str, ...], dict[str, Any]]] = [
    (
        "generation success",
        {
            "code": 200,
            "msg": "Veo3.1 video generated successfully.",
            "data": {
                "taskId": "veo_task_abcdef123456",
                "info": {"resultUrls": [VIDEO], "originUrls": [ORIGIN], "resolution": "1080p"},
                "fallbackFlag": False,
            },
        },
        TaskState.SUCCEEDED,
        (VIDEO,),
        {"originUrls": [ORIGIN], "resolution": "1080p", "fallbackFlag": False},
    ),
    (
        "4K success",
        {
            "code": 200,
            "msg": "4K Video generated successfully.",
            "data": {
                "taskId": "veo_task_example123",
                "info": {
                    "resultUrls": ["https://file.aiquickdraw.com/v/example_task_1234567890.mp4"],
                    "imageUrls": ["https://file.aiquickdraw.com/v/example_task_1234567890.jpg"],
                },
            },
        },
        TaskState.SUCCEEDED,
        ("https://file.aiquickdraw.com/v/example_task_1234567890.mp4",),
        {"imageUrls": ["https://file.aiquickdraw.com/v/example_task_1234567890.jpg"]},
    ),
    (
        "4K OpenAPI variant: flat snake_case data",
        {
            "code": 200,
            "msg": "4K Video generated successfully.",
            "data": {
                "task_id": "bf3e7adb-fb6c-4257-bbcd-470787386fb0",
                "result_urls": [
                    "https://file.aiquickdraw.com/p/d1301f0aa3f647c1ab7bb1f60ef006c0_1750236843.mp4"
                ],
                "media_ids": ["CAUaJDQ5"],
                "image_urls": [
                    "https://tempfile.aiquickdraw.com/p/d1301f0aa3f647c1ab7bb1f60ef006c0_1750236843.jpg"
                ],
            },
        },
        TaskState.SUCCEEDED,
        ("https://file.aiquickdraw.com/p/d1301f0aa3f647c1ab7bb1f60ef006c0_1750236843.mp4",),
        {
            "imageUrls": [
                "https://tempfile.aiquickdraw.com/p/d1301f0aa3f647c1ab7bb1f60ef006c0_1750236843.jpg"
            ],
            "mediaIds": ["CAUaJDQ5"],
        },
    ),
    (
        "4K newer page: generic msg, fallbackFlag beside info",
        {
            "code": 200,
            "msg": "Video generated successfully.",
            "data": {
                "taskId": "6060e30319dbb51ce35a43bd9312f476",
                "fallbackFlag": False,
                "info": {"resultUrls": ["https://tempfile.aiquickdraw.com/v/6060e303_1768391941.mp4"]},
            },
        },
        TaskState.SUCCEEDED,
        ("https://tempfile.aiquickdraw.com/v/6060e303_1768391941.mp4",),
        {"fallbackFlag": False},
    ),
    (
        "info JSON-encoded, code as a string",
        {"code": "200", "msg": "ok", "data": {"taskId": "t", "info": json.dumps({"resultUrls": ["a"]})}},
        TaskState.SUCCEEDED,
        ("a",),
        {},
    ),
    (
        "taskId at the top level",
        {"code": 200, "msg": "ok", "taskId": "top", "data": {"info": {"resultUrls": ["a"]}}},
        TaskState.SUCCEEDED,
        ("a",),
        {},
    ),
]


@pytest.mark.parametrize(("name", "body", "state", "urls", "extra"), CALLBACKS, ids=[c[0] for c in CALLBACKS])
def test_callback_shapes(
    name: str, body: dict[str, Any], state: TaskState, urls: tuple[str, ...], extra: dict[str, Any]
) -> None:
    status = family.parse_callback(body)
    data = body["data"]
    assert status.task_id == (data.get("taskId") or data.get("task_id") or body.get("taskId"))
    assert status.state is state and status.result_urls == urls and status.extra == extra


CALLBACK_FAILURES = [
    (
        400,
        "Your prompt was flagged by Website as violating content policies.",
        {"taskId": "t", "fallbackFlag": False},
    ),
    (
        422,
        "Your request was rejected by Flow(...). Enable fallback to retry.",
        {"taskId": "t", "fallbackFlag": False},
    ),
    (500, "Internal Error, Please try again later.", {"taskId": "t", "fallbackFlag": False}),
    (501, "Failed - Video generation task failed", {"taskId": "t", "fallbackFlag": False}),
    (
        500,
        "The 4K version of this video is unavailable. Please try a different video.",
        {"taskId": "t", "info": None},
    ),
]


@pytest.mark.parametrize(("code", "msg", "data"), CALLBACK_FAILURES)
def test_callback_failures(code: int, msg: str, data: dict[str, Any]) -> None:
    status = family.parse_callback({"code": code, "msg": msg, "data": data})
    assert status.state is TaskState.FAILED and status.task_id == "t"
    assert status.fail_code == str(code) and status.fail_msg == msg and status.result_urls == ()


def test_4k_failure_callback_with_null_data() -> None:
    body = {
        "code": 500,
        "msg": "The 4K version of this video is unavailable. Please try a different video.",
        "data": None,
    }
    status = family.parse_callback(body)
    assert status.state is TaskState.FAILED and status.task_id == "" and status.fail_code == "500"


# -- envelopes and visibility ----------------------------------------------------------------------------
def test_unknown_ids_are_not_visible_and_other_422s_are_errors() -> None:
    assert family.not_visible(Envelope(422, "record is null", None))
    assert family.not_visible(Envelope(404, "Not Found", None))
    too_old = Envelope(422, "Temporarily supports records within 14 days", None)
    assert not family.not_visible(too_old) and family.answers() == frozenset({404, 422})
    with pytest.raises(kie.ValidationError, match="14 days"):
        family.parse_status(too_old, "t1")


# -- requests ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_id", ["veo3", "veo3_fast", "veo3_lite"])
def test_generate_body_is_flat_with_the_fixed_model(model_id: str) -> None:
    spec = catalog.get(model_id)
    request = family.create_request(spec, {"prompt": "p", "aspect_ratio": "16:9"}, "https://cb.example/hook")
    assert (request.method, request.path, request.kind) == ("POST", "/api/v1/veo/generate", "create")
    assert request.json == {
        "prompt": "p",
        "aspect_ratio": "16:9",
        "model": model_id,
        "callBackUrl": "https://cb.example/hook",
    }
    assert family_named("veo") is not None and spec.endpoint.api == "veo"


def test_extend_and_4k_bodies() -> None:
    extend = family.create_request(
        catalog.get("veo3/extend"), {"taskId": "s", "prompt": "p", "model": "quality"}, None
    )
    assert (extend.path, extend.kind) == ("/api/v1/veo/extend", "create")
    assert extend.json == {"taskId": "s", "prompt": "p", "model": "quality"}
    four_k = family.create_request(
        catalog.get("veo3/4k"), {"taskId": "s", "index": 0}, "https://cb.example/4k"
    )
    assert (four_k.method, four_k.path, four_k.kind) == ("POST", "/api/v1/veo/get-4k-video", "create")
    assert four_k.json == {"taskId": "s", "index": 0, "callBackUrl": "https://cb.example/4k"}


def test_status_request_reads_record_info() -> None:
    request = family.status_request(catalog.get("veo3_fast"), "abc")
    assert (request.method, request.path, dict(request.params)) == (
        "GET",
        "/api/v1/veo/record-info",
        {"taskId": "abc"},
    )
    assert family.status_request(None, "abc").path == "/api/v1/veo/record-info"


# -- 1080p ---------------------------------------------------------------------------------------------------
UPGRADE = catalog.get("veo3/1080p")


def test_1080p_create_reads_the_source_and_names_an_upgrade_id() -> None:
    request = family.create_request(UPGRADE, {"taskId": "src-1", "index": 1}, "https://cb.example/ignored")
    assert (request.method, request.path, request.kind) == ("GET", "/api/v1/veo/record-info", "read")
    assert dict(request.params) == {"taskId": "src-1"} and request.json is None
    created = family.parse_created(UPGRADE, rec(taskId="src-1", successFlag=1))
    assert created.task_id == upgrade_id("src-1", 1) == "veo-1080p-1-src-1" and created.status is None
    assert parse_upgrade_id(created.task_id) == ("src-1", 1)
    poll = family.status_request(UPGRADE, created.task_id)
    assert (poll.method, poll.path, dict(poll.params)) == (
        "GET",
        "/api/v1/veo/get-1080p-video",
        {"taskId": "src-1", "index": 1},
    )


def test_1080p_index_is_kept_per_thread() -> None:
    """Two threads upgrading the same source with different indexes each get their own."""
    results: dict[int, str] = {}

    def upgrade(index: int, ready: threading.Barrier) -> None:
        family.create_request(UPGRADE, {"taskId": "shared", "index": index}, None)
        ready.wait()
        results[index] = family.parse_created(UPGRADE, {"taskId": "shared"}).task_id

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=upgrade, args=(i, barrier)) for i in (0, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {0: "veo-1080p-0-shared", 2: "veo-1080p-2-shared"}


def test_upgrade_ids_that_are_not_ours() -> None:
    assert parse_upgrade_id("6060e30319dbb51ce35a43bd9312f476") is None
    assert parse_upgrade_id("veo-1080p-x-abc") is None and parse_upgrade_id("veo-1080p-0-") is None
    assert parse_upgrade_id("veo-1080p-0-ee603959-debb-48d1") == ("ee603959-debb-48d1", 0)


UPGRADE_ID = upgrade_id("veo_task_abcdef123456", 0)
URL_1080P = "https://tempfile.aiquickdraw.com/p/42f4f8facbb040c0ade87c27cb2d5e58_1749711595.mp4"
UPGRADE_ANSWERS: list[tuple[str, Envelope, TaskState]] = [
    ("docs example: ready", Envelope(200, "success", {"resultUrl": URL_1080P}), TaskState.SUCCEEDED),
    ("200 without a URL yet", Envelope(200, "success", None), TaskState.RUNNING),
    ("422 result data is blank", Envelope(422, "record result data is blank.", None), TaskState.RUNNING),
    ("422 result data is empty", Envelope(422, "record result data is empty", None), TaskState.RUNNING),
    ("422 source not successful", Envelope(422, "record status is not success.", None), TaskState.FAILED),
    ("422 too old", Envelope(422, "Temporarily supports records within 14 days.", None), TaskState.FAILED),
    ("422 no video at that index", Envelope(422, "record result data not exist", None), TaskState.FAILED),
]


@pytest.mark.parametrize(("name", "env", "state"), UPGRADE_ANSWERS, ids=[a[0] for a in UPGRADE_ANSWERS])
def test_1080p_answers(name: str, env: Envelope, state: TaskState) -> None:
    assert not family.not_visible(env)
    status = family.parse_status(env, UPGRADE_ID)
    assert status.state is state and status.task_id == UPGRADE_ID and status.model == "veo3/1080p"
    assert status.extra == {"sourceTaskId": "veo_task_abcdef123456", "index": 0, "resolution": "1080p"}
    assert status.result_urls == ((URL_1080P,) if state is TaskState.SUCCEEDED else ())
    if state is TaskState.FAILED:
        assert status.fail_code == "422" and status.fail_msg == env.msg


# -- 4K ------------------------------------------------------------------------------------------------------
FOUR_K = catalog.get("veo3/4k")
FOUR_K_URL = "https://tempfile.aiquickdraw.com/v/example_task_1234567890.mp4"
FOUR_K_JPG = "https://tempfile.aiquickdraw.com/v/example_task_1234567890.jpg"


def test_4k_create_answer_is_a_task_id() -> None:
    created = family.parse_created(
        FOUR_K, {"taskId": "veo_task_abcdef123456", "resultUrls": None, "imageUrls": None}
    )
    assert created.task_id == "veo_task_abcdef123456" and created.status is None
    done = family.parse_created(
        FOUR_K, {"taskId": "k", "resultUrls": [FOUR_K_URL], "imageUrls": [FOUR_K_JPG]}
    )
    assert done.status is not None and done.status.state is TaskState.SUCCEEDED
    assert done.status.result_urls == (FOUR_K_URL,) and done.status.extra == {"imageUrls": [FOUR_K_JPG]}


def test_4k_repeat_answers_are_statuses() -> None:
    processing = parse_envelope(
        200,
        b'{"code":422,"msg":"4k is processing. It should be ready in 5-10 minutes. '
        b'Please check back shortly.",'
        b'"data":{"taskId":"veo_task_example123","resultUrls":null,"imageUrls":null}}',
    )
    running = family.create_answer(FOUR_K, processing)
    assert running is not None and running.task_id == "veo_task_example123" and running.status is None
    generated = Envelope(
        422,
        "The video has been generated successfully",
        {"taskId": "veo_task_example123", "resultUrls": [FOUR_K_URL], "imageUrls": [FOUR_K_JPG]},
    )
    done = family.create_answer(FOUR_K, generated)
    assert done is not None and done.status is not None and done.status.state is TaskState.SUCCEEDED
    assert done.status.result_urls == (FOUR_K_URL,) and done.status.task_id == "veo_task_example123"
    assert family.create_answer(FOUR_K, Envelope(422, "record is null", None)) is None
    assert family.create_answer(catalog.get("veo3_fast"), processing) is None


def test_created_without_task_id_is_an_error() -> None:
    with pytest.raises(ValueError, match="taskId"):
        family.parse_created(catalog.get("veo3_fast"), {})
    with pytest.raises(ValueError, match="taskId"):
        family.parse_created(UPGRADE, None)
