"""Parsing Suno answers: every status encoding, every record shape and every callback shape of
kie-api.md §4.8 / §5 / Appendix B and the per-endpoint docs pages, including the variants they disagree on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kie import catalog
from kie.errors import TaskFailedError, ValidationError
from kie.protocol.envelope import Envelope, parse_envelope
from kie.protocol.families import family_named
from kie.protocol.families.suno import SunoFamily, camel
from kie.protocol.task import TaskState
from kie.protocol.task import epoch_ms as parse_time

family = SunoFamily()
PENDING, RUNNING, SUCCEEDED, FAILED = (
    TaskState.PENDING,
    TaskState.RUNNING,
    TaskState.SUCCEEDED,
    TaskState.FAILED,
)
MP3 = "https://tempfile.aiquickdraw.com/s/e231-track.mp3"

# docs.kie.ai/suno-api/get-music-details (dog-test mirror), verbatim apart from the masked ids.
MUSIC_DOCS = {
    "taskId": "5c79be8e",
    "parentMusicId": "",
    "param": '{"prompt":"A calm piano track","style":"Classical","title":"Peaceful Piano","customMode":true,'
    '"instrumental":true,"model":"V3_5"}',
    "response": {
        "taskId": "5c79be8e",
        "sunoData": [
            {
                "id": "e231-8cadc7dc",
                "audioUrl": MP3,
                "streamAudioUrl": "https://example.cn/stream",
                "imageUrl": "https://example.cn/cover.jpeg",
                "prompt": "[Verse] 夜晚城市 灯火辉煌",
                "modelName": "chirp-v3-5",
                "title": "钢铁侠",
                "tags": "electrifying, rock",
                "createTime": "2025-01-01 00:00:00",
                "duration": 198.44,
            }
        ],
    },
    "status": "SUCCESS",
    "type": "GENERATE",
    "errorCode": None,
    "errorMessage": None,
}


def music(status: str, audio: str = MP3, **changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(MUSIC_DOCS))
    data["status"] = status
    data["response"]["sunoData"][0]["audioUrl"] = audio
    data.update(changes)
    return data


STATUS_TABLE = [
    # generate/record-info and lyrics/record-info `status`
    ("status", "PENDING", PENDING),
    ("status", "TEXT_SUCCESS", RUNNING),
    ("status", "FIRST_SUCCESS", RUNNING),
    ("status", "SUCCESS", SUCCEEDED),
    ("status", "CREATE_TASK_FAILED", FAILED),
    ("status", "GENERATE_AUDIO_FAILED", FAILED),
    ("status", "GENERATE_MUSIC_FAILED", FAILED),  # S-HAS spelling
    ("status", "GENERATE_LYRICS_FAILED", FAILED),
    ("status", "GENERATE_WAV_FAILED", FAILED),
    ("status", "GENERATE_MP4_FAILED", FAILED),
    ("status", "GENERATE_COVER_FAILED", FAILED),
    ("status", "SENSITIVE_WORD_ERROR", FAILED),
    ("status", "CALLBACK_EXCEPTION", FAILED),  # no results: nothing was made
    ("status", "success", SUCCEEDED),  # case does not matter
    # wav, vocal-removal, mp4 `successFlag` strings
    ("successFlag", "PENDING", PENDING),
    ("successFlag", "SUCCESS", SUCCEEDED),
    ("successFlag", "CREATE_TASK_FAILED", FAILED),
    ("successFlag", "GENERATE_AUDIO_FAILED", FAILED),
    ("successFlag", "CALLBACK_EXCEPTION", FAILED),
    # midi and cover `successFlag` ints, and the same as digit strings
    ("successFlag", 0, PENDING),
    ("successFlag", 1, SUCCEEDED),
    ("successFlag", 2, FAILED),
    ("successFlag", 3, FAILED),
    ("successFlag", "0", PENDING),
    ("successFlag", "1", SUCCEEDED),
    ("successFlag", "2", FAILED),
    ("successFlag", "3", FAILED),
    ("successFlag", "成功", SUCCEEDED),  # style boost [REAL]
    # Market-like `state` words
    ("state", "waiting", PENDING),
    ("state", "queuing", PENDING),
    ("state", "generating", RUNNING),
    ("state", "success", SUCCEEDED),
    ("state", "fail", FAILED),
]


@pytest.mark.parametrize(("key", "value", "expected"), STATUS_TABLE)
def test_every_status_encoding(key: str, value: Any, expected: TaskState) -> None:
    status = family.parse_record({"taskId": "t", key: value, "errorCode": 400, "errorMessage": "why"}, "t")
    assert status.state is expected
    if expected is FAILED:
        assert status.fail_code == "400" and status.fail_msg == "why"
    else:
        assert status.fail_code is None and status.fail_msg is None


def test_docs_music_record() -> None:
    status = family.parse_status(
        parse_envelope(200, json.dumps({"code": 200, "msg": "success", "data": MUSIC_DOCS}).encode()), "x"
    )
    assert status.state is SUCCEEDED and status.task_id == "5c79be8e" and status.raw_state == "SUCCESS"
    assert status.result_urls == (MP3,) and status.progress == 1.0
    (track,) = status.extra["tracks"]
    assert track["id"] == "e231-8cadc7dc" and track["duration"] == 198.44  # follow-ups need the id
    assert status.input == {
        "prompt": "A calm piano track",
        "style": "Classical",
        "title": "Peaceful Piano",
        "customMode": True,
        "instrumental": True,
        "model": "V3_5",
    }


@pytest.mark.parametrize(
    ("record", "state", "progress", "urls"),
    [
        (music("PENDING", response=None), PENDING, None, ()),
        (music("TEXT_SUCCESS", audio=""), RUNNING, 0.33, ()),
        (music("FIRST_SUCCESS", audio=""), RUNNING, 0.66, ()),
        (music("SUCCESS"), SUCCEEDED, 1.0, (MP3,)),
        (music("CALLBACK_EXCEPTION"), SUCCEEDED, 1.0, (MP3,)),  # the audio exists; only the callback failed
        (music("CALLBACK_EXCEPTION", audio=""), FAILED, None, ()),
    ],
)
def test_music_stages(
    record: dict[str, Any], state: TaskState, progress: float | None, urls: tuple[str, ...]
) -> None:
    status = family.parse_record(record, "x")
    assert (status.state, status.progress, status.result_urls) == (state, progress, urls)
    if record["response"] is not None:
        assert status.extra["tracks"][0]["id"] == "e231-8cadc7dc"  # ids are there before the audio


def test_music_failure_carries_code_and_message() -> None:
    record = music("SENSITIVE_WORD_ERROR", audio="", response=None, errorCode=400, errorMessage="flagged")
    status = family.parse_record(record, "x")
    assert status.state is FAILED and status.fail_code == "400" and status.fail_msg == "flagged"
    bare = family.parse_record(music("GENERATE_AUDIO_FAILED", response=None), "x")
    assert bare.fail_code == "GENERATE_AUDIO_FAILED" and "GENERATE_AUDIO_FAILED" in (bare.fail_msg or "")


LYRICS_ITEM = {
    "text": "[Verse]\n我穿越城市黑暗夜",
    "title": "钢铁侠",
    "status": "complete",
    "errorMessage": "",
}


@pytest.mark.parametrize("list_key", ["lyricsData", "data"])  # kie docs vs the aibackend / S-HAS variant
def test_lyrics_record(list_key: str) -> None:
    data = {
        "taskId": "11dc8b0f",
        "param": '{"prompt":"A song about peaceful night in the city"}',
        "response": {"taskId": "11dc8b0f", list_key: [LYRICS_ITEM, {**LYRICS_ITEM, "title": "Two"}]},
        "status": "SUCCESS",
        "type": "LYRICS",
        "errorCode": None,
        "errorMessage": None,
    }
    status = family.parse_record(data, "x")
    assert status.state is SUCCEEDED and status.result_urls == ()
    assert "钢铁侠" in status.extra["text"] and "Two" in status.extra["text"]
    assert "我穿越城市黑暗夜" in status.extra["text"] and len(status.extra["lyrics"]) == 2


def test_lyrics_failure() -> None:
    data = {
        "taskId": "t",
        "response": None,
        "status": "GENERATE_LYRICS_FAILED",
        "errorCode": 500,
        "errorMessage": "Internal Error",
    }
    status = family.parse_record(data, "t")
    assert status.state is FAILED and status.fail_code == "500"


WAV = "https://example.com/s/04e6e727.wav"
MP4 = "https://example.com/videos/video_847715e66259.mp4"


@pytest.mark.parametrize(
    ("data", "url", "created"),
    [
        # kie docs (CN page): successFlag string, camelCase, "YYYY-MM-DD HH:MM:SS" times
        (
            {
                "taskId": "988ec8d3",
                "musicId": "e231",
                "callbackUrl": "https://api.example.com/callback",
                "musicIndex": 0,
                "completeTime": "2025-01-01 00:10:00",
                "response": {"audioWavUrl": WAV},
                "successFlag": "SUCCESS",
                "createTime": "2025-01-01 00:00:00",
                "errorCode": None,
                "errorMessage": None,
            },
            WAV,
            1735689600000,
        ),
        # sunoapi sibling: `status` and snake_case `audio_wav_url`
        (
            {
                "taskId": "988ec8d3",
                "musicId": "8551662c",
                "callbackUrl": "https://api.example.com/callback",
                "completeTime": "2025-01-01 00:10:00",
                "response": {"audio_wav_url": WAV},
                "status": "SUCCESS",
                "createTime": "2025-01-01 00:00:00",
                "errorCode": None,
                "errorMessage": None,
            },
            WAV,
            1735689600000,
        ),
        # mp4 (sunoapi mirror), string times
        (
            {
                "taskId": "taskId_774b9aa0422f",
                "musicId": "audioId_0295980ec02e",
                "musicIndex": 0,
                "completeTime": "2025-01-01 00:10:00",
                "response": {"videoUrl": MP4},
                "successFlag": "SUCCESS",
                "createTime": "2025-01-01 00:00:00",
                "errorCode": None,
                "errorMessage": None,
            },
            MP4,
            1735689600000,
        ),
        # mp4 (aibackend mirror), ms times
        (
            {
                "taskId": "taskId_774b9aa0422f",
                "musicIndex": 0,
                "completeTime": 1735661400000,
                "response": {"videoUrl": MP4},
                "successFlag": "SUCCESS",
                "createTime": 1735661400000,
                "errorCode": None,
                "errorMessage": None,
            },
            MP4,
            1735661400000,
        ),
    ],
)
def test_single_file_records(data: dict[str, Any], url: str, created: int) -> None:
    status = family.parse_record(data, "x")
    assert status.state is SUCCEEDED and status.result_urls == (url,) and status.create_time == created
    assert status.complete_time is not None and status.complete_time >= created


def test_single_file_failures() -> None:
    for flag in ("GENERATE_WAV_FAILED", "GENERATE_MP4_FAILED"):
        data = {
            "taskId": "t",
            "response": None,
            "successFlag": flag,
            "errorCode": 500,
            "errorMessage": "boom",
        }
        status = family.parse_record(data, "t")
        assert status.state is FAILED and status.fail_msg == "boom" and status.result_urls == ()


STEM = "https://file.aiquickdraw.com/s/{}.mp3"
NULL_STEMS = {
    k: None
    for k in (
        "backingVocalsUrl",
        "drumsUrl",
        "bassUrl",
        "guitarUrl",
        "pianoUrl",
        "keyboardUrl",
        "percussionUrl",
        "stringsUrl",
        "synthUrl",
        "fxUrl",
        "brassUrl",
        "woodwindsUrl",
    )
}


def test_vocal_separation_record_with_origin_data() -> None:
    """dog-test.kie.ai get-vocal-separation-details: successFlag string, ms times, originData duplicates."""
    data = {
        "taskId": "3e63b4cc88d52611159371f6af5571e7",
        "musicId": "376c687e-d439-42c1-b1e4-bcb43b095ec2",
        "callbackUrl": "https://example.ngrok-free.app/api/v1/vocal-removal/test",
        "musicIndex": 0,
        "completeTime": 1753782937000,
        "response": {
            "id": None,
            "originUrl": None,
            "originData": [
                {
                    "duration": 245.6,
                    "audio_url": "https://example001.mp3",
                    "stem_type_group_name": "Vocals",
                    "id": "3d7021c9",
                },
                {
                    "duration": 245.6,
                    "audio_url": "https://example002.mp3",
                    "stem_type_group_name": "Instrumental",
                    "id": "d92a13bf",
                },
            ],
            "instrumentalUrl": STEM.format("d92a13bf_Instrumental"),
            "vocalUrl": STEM.format("3d7021c9_Vocals"),
            **NULL_STEMS,
        },
        "successFlag": "SUCCESS",
        "createTime": 1753782854000,
        "errorCode": None,
        "errorMessage": None,
    }
    status = family.parse_record(data, "x")
    assert status.state is SUCCEEDED and status.create_time == 1753782854000
    assert status.result_urls == (STEM.format("d92a13bf_Instrumental"), STEM.format("3d7021c9_Vocals"))
    assert set(status.extra["stems"]) == {"instrumentalUrl", "vocalUrl"}
    assert [o["id"] for o in status.extra["originData"]] == ["3d7021c9", "d92a13bf"]


def test_split_stem_record_every_non_null_url_and_never_the_origin() -> None:
    stems = {k: STEM.format(k) for k in NULL_STEMS if k != "pianoUrl"}
    data = {
        "taskId": "e649",
        "response": {
            "originUrl": "https://cdn1.suno.ai/source.mp3",
            "instrumentalUrl": None,
            "vocalUrl": STEM.format("vocal"),
            "pianoUrl": None,
            **stems,
        },
        "successFlag": "SUCCESS",
    }
    status = family.parse_record(data, "e649")
    assert len(status.result_urls) == 12 and "https://cdn1.suno.ai/source.mp3" not in status.result_urls


def test_origin_data_is_the_fallback_when_no_named_stem() -> None:
    data = {
        "taskId": "t",
        "successFlag": "SUCCESS",
        "response": {"originUrl": None, "originData": [{"audio_url": "https://a.mp3", "id": "1"}]},
    }
    assert family.parse_record(data, "t").result_urls == ("https://a.mp3",)


def test_midi_record() -> None:
    """dog-test.kie.ai get-midi-details: int successFlag, ms times, the notes as JSON."""
    data = {
        "taskId": "5c79be8e",
        "recordTaskId": -1,
        "audioId": "e231-8cadc7dc",
        "callbackUrl": "https://example.callback",
        "completeTime": 1760335255000,
        "midiData": {
            "state": "complete",
            "instruments": [
                {"name": "Drums", "notes": [{"pitch": 73, "start": 0.036, "end": 0.18, "velocity": 1}]},
                {
                    "name": "Electric Bass (finger)",
                    "notes": [{"pitch": 44, "start": 7.68, "end": 7.91, "velocity": 1}],
                },
            ],
        },
        "successFlag": 1,
        "createTime": 1760335251000,
        "errorCode": None,
        "errorMessage": None,
    }
    status = family.parse_record(data, "x")
    assert status.state is SUCCEEDED and status.result_urls == ()
    assert status.extra["json"]["instruments"][1]["name"] == "Electric Bass (finger)"
    assert status.complete_time == 1760335255000


def test_cover_record_success_with_error_code_200() -> None:
    """docs.kie.ai get-cover-suno-details: ISO times, int flag, errorCode 200 on success is no failure."""
    images = [
        "https://tempfile.aiquickdraw.com/s/1753958521_6c1b.png",
        "https://tempfile.aiquickdraw.com/s/1753958524_c153.png",
    ]
    data = {
        "taskId": "21aee3c3c2a01fa5e030b3799fa4dd56",
        "parentTaskId": "73d6128b3523a0079df10da9471017c8",
        "callbackUrl": "https://api.example.com/callback",
        "completeTime": "2025-01-15T10:35:27.000Z",
        "response": {"images": images},
        "successFlag": 1,
        "createTime": "2025-01-15T10:33:01.000Z",
        "errorCode": 200,
        "errorMessage": "",
    }
    status = family.parse_record(data, "x")
    assert status.state is SUCCEEDED and status.result_urls == tuple(images) and status.fail_code is None
    assert status.complete_time is not None and status.create_time is not None
    assert status.complete_time - status.create_time == 146_000


def test_unknown_task_is_not_visible_yet() -> None:
    env = parse_envelope(200, b'{"code":200,"msg":"success","data":null}')  # [REAL]
    assert family.not_visible(env)
    for code, msg in ((422, "Record does not exist"), (404, "Task not found")):
        assert family.not_visible(Envelope(code, msg, None))
    assert not family.not_visible(Envelope(200, "success", {"taskId": "t", "status": "PENDING"}))
    assert family.answers() == frozenset({404, 422})


def test_other_error_codes_raise() -> None:
    with pytest.raises(Exception) as caught:
        family.parse_status(Envelope(500, "Internal Error", None), "t")
    assert "500" in str(caught.value)


# -- synchronous answers ------------------------------------------------------------------------------
STYLE_BOOST_REAL = {
    "taskId": "3c8a4bd0a2f9c9f4e6f7a1b2c3d4e5f6",
    "param": '{"content":"Pop, Mysterious"}',
    "result": "Pop with mysterious, shadowy synth layers, breathy vocals and a slow-building chorus.",
    "creditsConsumed": 0.4,
    "creditsRemaining": 5915.85,
    "successFlag": "成功",
    "errorCode": None,
    "errorMsg": None,
    "createTime": "2026-04-30 08:53:07",
}


def test_style_boost_real_body_is_a_finished_task() -> None:
    spec = catalog.get("suno/style-boost")
    created = family.parse_created(spec, STYLE_BOOST_REAL)
    status = created.status
    assert created.task_id == STYLE_BOOST_REAL["taskId"] and status is not None
    assert status.state is SUCCEEDED and status.raw_state == "成功"
    assert status.extra == {"text": STYLE_BOOST_REAL["result"]} and status.credits_consumed == 0.4
    assert status.input == {"content": "Pop, Mysterious"} and status.create_time is not None


def test_style_boost_without_result_is_a_failure_not_a_task() -> None:
    spec = catalog.get("suno/style-boost")
    body = {**STYLE_BOOST_REAL, "result": "", "successFlag": "失败", "errorCode": 500, "errorMsg": "busy"}
    with pytest.raises(TaskFailedError) as caught:
        family.parse_created(spec, body)
    assert caught.value.fail_code == "500" and caught.value.fail_msg == "busy"


def test_persona_and_timestamped_lyrics_are_synchronous_json() -> None:
    persona = {"personaId": "a1b2c3d4", "name": "Electronic Pop Singer", "description": "A modern singer"}
    created = family.parse_created(catalog.get("suno/persona"), persona)
    assert created.task_id == "a1b2c3d4" and created.status is not None
    assert created.status.extra == {"json": persona}
    for word_keys in (
        {"startS": 1.36, "endS": 1.79, "palign": 0},
        {"start_s": 1.36, "end_s": 1.79, "p_align": 0},
    ):
        lyrics = {
            "alignedWords": [{"word": "[Verse]\nWaggin'", "success": True, **word_keys}],
            "waveformData": [0, 1, 0.5, 0.75],
            "hootCer": 0.3803191489361702,
            "isStreamed": False,
        }
        spec = catalog.get("suno/timestamped-lyrics")
        first, again = family.parse_created(spec, lyrics), family.parse_created(spec, lyrics)
        assert first.task_id == again.task_id and first.task_id.startswith("timestamped-lyrics-")
        assert first.status is not None and first.status.extra["json"] == lyrics


def test_persona_without_id_is_unknown() -> None:
    with pytest.raises(ValueError):
        family.parse_created(catalog.get("suno/persona"), {"name": "x"})


def test_async_create_answers() -> None:
    spec = catalog.get("suno/V5")
    assert family.parse_created(spec, {"taskId": "091fbbaa1d20d47e9576ce84d5254b18"}).task_id == (
        "091fbbaa1d20d47e9576ce84d5254b18"
    )
    assert family.parse_created(spec, {"task_id": "t2"}).status is None
    with pytest.raises(ValueError):
        family.parse_created(spec, {})


def test_requests_are_flat_with_fixed_fields_and_callback() -> None:
    request = family.create_request(
        catalog.get("suno/V5"), {"prompt": "p", "customMode": False}, "https://cb"
    )
    assert (request.method, request.path, request.kind) == ("POST", "/api/v1/generate", "create")
    assert request.json == {"prompt": "p", "customMode": False, "model": "V5", "callBackUrl": "https://cb"}
    split = family.create_request(catalog.get("suno/split-stem"), {"taskId": "t", "audioId": "a"}, None)
    assert split.json == {"taskId": "t", "audioId": "a", "type": "split_stem"}
    status = family.status_request(catalog.get("suno/wav"), "t")
    assert (status.method, status.path, dict(status.params)) == (
        "GET",
        "/api/v1/wav/record-info",
        {"taskId": "t"},
    )
    with pytest.raises(ValidationError):
        family.status_request(catalog.get("suno/style-boost"), "t")
    assert family_named("suno") is not None


# -- callbacks ------------------------------------------------------------------------------------
def track_cb(audio: str) -> dict[str, Any]:
    """The upload-and-cover callback docs' track (Karl-The-Man copy of docs.kie.ai)."""
    return {
        "id": "8551662c",
        "audio_url": audio,
        "source_audio_url": audio,
        "stream_audio_url": "https://example.cn/stream",
        "source_stream_audio_url": "https://example.cn/stream",
        "image_url": "https://example.cn/cover.jpeg",
        "source_image_url": "https://example.cn/cover.jpeg",
        "prompt": "[Verse] Night city lights shining bright",
        "model_name": "chirp-v3-5",
        "title": "Iron Man",
        "tags": "electrifying, rock",
        "createTime": "2025-01-01 00:00:00",
        "duration": 228.28,
    }


def music_cb(
    stage: str, audio: str = "", code: int = 200, msg: str = "All generated successfully."
) -> dict[str, Any]:
    return {
        "code": code,
        "msg": msg,
        "data": {"callbackType": stage, "task_id": "2fac9f72", "data": [track_cb(audio)]},
    }


CALLBACK_TABLE: list[tuple[str, dict[str, Any], TaskState, tuple[str, ...], float | None]] = [
    ("music text", music_cb("text"), RUNNING, (), 0.33),
    ("music first", music_cb("first", MP3), RUNNING, (MP3,), 0.66),
    ("music complete", music_cb("complete", MP3), SUCCEEDED, (MP3,), 1.0),
    (
        "lyrics (sunoapi: taskId, data[])",
        {
            "code": 200,
            "msg": "All generated successfully.",
            "data": {"callbackType": "complete", "taskId": "11dc8b0f", "data": [LYRICS_ITEM]},
        },
        SUCCEEDED,
        (),
        None,
    ),
    (
        "lyrics (sunoapi: lyricsData)",
        {
            "code": 200,
            "msg": "All generated successfully.",
            "data": {"callbackType": "complete", "taskId": "11dc8b0f", "lyricsData": [LYRICS_ITEM]},
        },
        SUCCEEDED,
        (),
        None,
    ),
    (
        "lyrics (kie: task_id, error_message)",
        {
            "code": 200,
            "msg": "All generated successfully.",
            "data": {
                "callbackType": "complete",
                "task_id": "11dc8b0f",
                "data": [{"text": "la", "title": "T", "status": "complete", "error_message": ""}],
            },
        },
        SUCCEEDED,
        (),
        None,
    ),
    (
        "wav (kie: audioWavUrl)",
        {"code": 200, "msg": "success", "data": {"task_id": "988e", "audioWavUrl": WAV}},
        SUCCEEDED,
        (WAV,),
        None,
    ),
    (
        "wav (old docs: audio_wav_url)",
        {"code": 200, "msg": "success", "data": {"audio_wav_url": WAV, "task_id": "988e"}},
        SUCCEEDED,
        (WAV,),
        None,
    ),
    (
        "mp4",
        {"code": 200, "msg": "MP4 generated successfully.", "data": {"task_id": "774b", "video_url": MP4}},
        SUCCEEDED,
        (MP4,),
        None,
    ),
    (
        "separate_vocal (vocal_separation_info)",
        {
            "code": 200,
            "msg": "vocal separation generated successfully.",
            "data": {
                "task_id": "3e63",
                "vocal_separation_info": {
                    "instrumental_url": STEM.format("inst"),
                    "origin_url": "",
                    "vocal_url": STEM.format("voc"),
                },
            },
        },
        SUCCEEDED,
        (STEM.format("inst"), STEM.format("voc")),
        None,
    ),
    (
        "vocal removal (sibling: vocal_removal_info with the source as origin_url)",
        {
            "code": 200,
            "msg": "vocal Removal generated successfully.",
            "data": {
                "task_id": "5e72",
                "vocal_removal_info": {
                    "instrumental_url": STEM.format("inst"),
                    "origin_url": "https://cdn1.suno.ai/549f.mp3",
                    "vocal_url": STEM.format("voc"),
                },
            },
        },
        SUCCEEDED,
        (STEM.format("inst"), STEM.format("voc")),
        None,
    ),
    (
        "split_stem_advanced (origin_data extract/remove)",
        {
            "code": 200,
            "msg": "success",
            "data": {
                "task_id": "a1",
                "vocal_separation_info": None,
                "vocal_removal_info": {
                    "origin_data": [
                        {
                            "extract": {"audio_url": STEM.format("kick"), "id": "k"},
                            "remove": {"audio_url": STEM.format("rest"), "id": "r"},
                        }
                    ]
                },
            },
        },
        SUCCEEDED,
        (STEM.format("kick"), STEM.format("rest")),
        None,
    ),
    (
        "cover images",
        {
            "code": 200,
            "data": {"images": ["https://a.png", "https://b.png"], "taskId": "21ae"},
            "msg": "success",
        },
        SUCCEEDED,
        ("https://a.png", "https://b.png"),
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "state", "urls", "progress"), CALLBACK_TABLE, ids=[c[0] for c in CALLBACK_TABLE]
)
def test_every_callback_shape(
    name: str, body: dict[str, Any], state: TaskState, urls: tuple[str, ...], progress: float | None
) -> None:
    status = family.parse_callback(body)
    assert status.state is state and status.result_urls == urls and status.progress == progress
    assert status.task_id and status.fail_code is None
    if name.startswith("lyrics"):
        assert status.extra["text"].strip()


@pytest.mark.parametrize(
    "body",
    [
        # top-level task_id (docs.kie.ai EN page) and data.taskId (CN page / kieai mintlify)
        {
            "task_id": "5c79be8e",
            "code": 200,
            "msg": "success",
            "data": {
                "state": "complete",
                "instruments": [
                    {"name": "Drums", "notes": [{"pitch": 73, "start": "0.03", "end": "0.18", "velocity": 1}]}
                ],
            },
        },
        {
            "code": 200,
            "msg": "success",
            "data": {
                "state": "complete",
                "taskId": "5c79be8e",
                "instruments": [{"name": "Drums", "notes": []}],
            },
        },
    ],
)
def test_midi_callbacks(body: dict[str, Any]) -> None:
    status = family.parse_callback(body)
    assert status.state is SUCCEEDED and status.task_id == "5c79be8e"
    assert status.extra["json"]["instruments"][0]["name"] == "Drums"


@pytest.mark.parametrize(
    ("body", "code", "msg"),
    [
        (
            {
                "code": 400,
                "msg": "Audio covering failed",
                "data": {"callbackType": "error", "task_id": "2fac", "data": None},
            },
            "400",
            "Audio covering failed",
        ),
        (
            {
                "code": 451,
                "msg": "Download Failed",
                "data": {"callbackType": "error", "task_id": "2fac", "data": None},
            },
            "451",
            "Download Failed",
        ),
        (
            {
                "code": 500,
                "msg": "Internal Error",
                "data": {"callbackType": "error", "task_id": "2fac", "data": []},
            },
            "500",
            "Internal Error",
        ),
        # replace-section's failure example carries an `error` string
        (
            {
                "code": 400,
                "msg": "failed",
                "data": {"callbackType": "error", "task_id": "2fac", "error": "bad range"},
            },
            "400",
            "bad range",
        ),
        # single-stage families: a non-200 code is the failure
        (
            {"code": 500, "msg": "wav failed", "data": {"task_id": "2fac", "audioWavUrl": None}},
            "500",
            "wav failed",
        ),
        (
            {"code": 501, "msg": "Cover generation failed", "data": {"taskId": "2fac"}},
            "501",
            "Cover generation failed",
        ),
        ({"task_id": "2fac", "code": 500, "msg": "midi failed", "data": None}, "500", "midi failed"),
    ],
)
def test_failure_callbacks(body: dict[str, Any], code: str, msg: str) -> None:
    status = family.parse_callback(body)
    assert status.state is FAILED and status.fail_code == code and status.fail_msg == msg
    assert status.task_id == "2fac" and status.result_urls == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1753782854000, 1753782854000),
        ("1753782854000", 1753782854000),
        (1753782854, 1753782854000),  # seconds
        ("2025-01-01 00:00:00", 1735689600000),  # UTC assumed
        ("2025-01-15T10:33:01.000Z", 1736937181000),
        ("", None),
        (None, None),
        ("not a time", None),
    ],
)
def test_time_formats(value: Any, expected: int | None) -> None:
    assert parse_time(value) == expected


def test_camel_leaves_values_alone() -> None:
    assert camel({"task_id": "a_b", "data": [{"audio_url": "x_y"}]}) == {
        "taskId": "a_b",
        "data": [{"audioUrl": "x_y"}],
    }
