"""Parsing Market records: the real recorded responses of kie-api.md §3.2 and §3.4."""

from __future__ import annotations

import json

from kie import catalog
from kie.protocol.envelope import Envelope, parse_envelope
from kie.protocol.families.market import MarketFamily
from kie.protocol.task import TaskState

RUNNING = (
    '{"code":200,"msg":"success","data":{"taskId":"fdf741dc55b42564e8a5411d59451f21","model":"wan/2-7-r2v",'
    '"state":"waiting","param":"{\\"input\\":\\"{\\\\\\"duration\\\\\\":5,\\\\\\"aspect_ratio\\\\\\":\\\\\\"16:9\\\\\\"}\\",'
    '\\"model\\":\\"wan/2-7-r2v\\"}","resultJson":"","failCode":null,"failMsg":null,"costTime":null,'
    '"completeTime":null,"createTime":1776323959640}}'
)
SUCCESS = (
    '{"code":200,"msg":"success","data":{"taskId":"db9b3e9d0f28c2b06a57f1e43f8fb2e8",'
    '"model":"happyhorse/image-to-video","state":"success","param":"{\\"input\\":\\"{\\\\\\"duration\\\\\\":3}\\",'
    '\\"model\\":\\"happyhorse/image-to-video\\"}",'
    '"resultJson":"{\\"resultUrls\\":[\\"https://tempfile.aiquickdraw.com/happyhorse-v1_0/1777534577235-uunt3pkqp8.mp4\\"]}",'
    '"failCode":null,"failMsg":null,"costTime":63,"completeTime":1777534578854,"createTime":1777534515134}}'
)
family = MarketFamily()


def test_real_running_record() -> None:
    status = family.parse_status(parse_envelope(200, RUNNING.encode()), "x")
    assert status.state is TaskState.PENDING and status.raw_state == "waiting"
    assert status.result_urls == () and status.fail_code is None and status.cost_time is None
    assert status.input == {"duration": 5, "aspect_ratio": "16:9"}  # double-encoded input decoded
    assert status.create_time == 1776323959640


def test_real_success_record() -> None:
    status = family.parse_status(parse_envelope(200, SUCCESS.encode()), "x")
    assert status.state is TaskState.SUCCEEDED
    assert status.result_urls == (
        "https://tempfile.aiquickdraw.com/happyhorse-v1_0/1777534577235-uunt3pkqp8.mp4",
    )
    assert status.cost_time == 63  # seconds, not ms
    assert status.task_id == "db9b3e9d0f28c2b06a57f1e43f8fb2e8"


def test_envelope_501_and_408_mean_failed_task() -> None:
    for code in (501, 408):
        status = family.parse_status(Envelope(code, "Generation failed", None), "t1")
        assert status.state is TaskState.FAILED and status.fail_code == str(code)


def test_fail_state_and_unknown_fields_tolerated() -> None:
    data = {
        "taskId": "t2",
        "model": "m",
        "state": "fail",
        "failCode": "422",
        "failMsg": "Invalid prompt: prompt contains prohibited content",
        "param": "{}",
        "resultJson": "",
        "brandNewField": {"x": 1},
        "createTime": 1,
    }
    status = family.parse_record(data, "t2")
    assert status.state is TaskState.FAILED and status.fail_msg.startswith("Invalid prompt")  # type: ignore[union-attr]


def test_docs_shape_with_nested_param_object_also_parses() -> None:
    data = {
        "taskId": "t3",
        "state": "success",
        "param": {"input": {"prompt": "p"}},
        "resultJson": json.dumps({"resultUrls": ["u1", "u2"], "resultObject": {"k": 1}}),
        "costTime": 15000,
    }
    status = family.parse_record(data, "t3")
    assert status.input == {"prompt": "p"} and status.result_urls == ("u1", "u2")
    assert status.extra == {"resultObject": {"k": 1}}


def test_market_callback_success_and_failure() -> None:
    success = {
        "code": 200,
        "msg": "Playground task completed successfully.",
        "data": {
            "taskId": "bd8f",
            "model": "wan/3-0-video-prime",
            "state": "success",
            "param": '{"input":"{}","model":"wan/3-0-video-prime"}',
            "resultJson": '{"resultUrls":["https://tempfile.aiquickdraw.com/a.mp4"]}',
            "costTime": 89,
            "completeTime": 1787567409000,
            "createTime": 1787567320000,
            "updateTime": 1787567409000,
            "creditsConsumed": 61,
        },
    }
    status = family.parse_callback(success)
    assert status.state is TaskState.SUCCEEDED and status.credits_consumed == 61
    failure = {
        "code": 501,
        "msg": "Playground task failed.",
        "data": {
            "taskId": "bd8f",
            "model": "m",
            "state": "fail",
            "param": "…",
            "failCode": "400",
            "failMsg": "bad",
            "costTime": 89,
            "creditsConsumed": 0,
        },
    }
    status = family.parse_callback(failure)
    assert status.state is TaskState.FAILED and status.credits_consumed == 0 and status.fail_code == "400"


def test_create_answer_with_and_without_record_id() -> None:
    spec = catalog.get("nano-banana-pro")
    both = {"taskId": "09e4987e60ef4b82c25e2650652989d6", "recordId": "09e4987e60ef4b82c25e2650652989d6"}
    assert family.parse_created(spec, both).task_id == "09e4987e60ef4b82c25e2650652989d6"
    created = family.parse_created(spec, {"taskId": "091fbbaa1d20d47e9576ce84d5254b18"})
    assert created.task_id == "091fbbaa1d20d47e9576ce84d5254b18" and created.status is None


def _record(model: str, result: object) -> dict[str, object]:
    return {
        "taskId": "a" * 32,
        "model": model,
        "state": "success",
        "param": json.dumps({"model": model, "input": json.dumps({"model": "V6"})}),
        "resultJson": json.dumps(result),
        "costTime": 40,
    }


def test_suno_on_createtask_songs_come_under_data() -> None:
    songs = [
        {"id": "aud-A", "audio_url": "https://cdn.test/a.mp3", "title": "Rain", "duration": 30.0},
        {"id": "aud-B", "audio_url": "https://cdn.test/b.mp3", "title": "Rain", "duration": 31.0},
    ]
    status = family.parse_record(_record("ai-music-api/generate", {"code": 200, "data": songs}), "x")
    assert status.state is TaskState.SUCCEEDED
    assert status.result_urls == ("https://cdn.test/a.mp3", "https://cdn.test/b.mp3")
    assert [t["id"] for t in status.extra["tracks"]] == ["aud-A", "aud-B"]  # ids for follow-ups
    assert status.input == {"model": "V6"}


def test_suno_on_createtask_lyrics_come_under_result_object() -> None:
    lyrics = [{"text": "[Verse] rain", "title": "Rain", "status": "complete"}]
    record = _record("ai-music-api/generate-lyrics", {"resultObject": {"lyricsData": lyrics}})
    status = family.parse_record(record, "x")
    assert status.result_urls == () and status.extra["lyrics"] == lyrics
    assert status.extra["text"].startswith("Rain\n\n[Verse] rain")


def test_result_urls_still_win_when_a_record_has_them() -> None:
    result = {"resultUrls": ["https://cdn.test/x.png"], "resultObject": {"layers_data": [1]}}
    status = family.parse_record(_record("seedream/5-pro-layer-decomposition", result), "x")
    assert status.result_urls == ("https://cdn.test/x.png",) and status.extra["resultObject"] == {
        "layers_data": [1]
    }
