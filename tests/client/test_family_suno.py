"""Suno through the public client against the sandbox (kie-api.md §4.8): songs, lyrics and every
follow-up on disk, the synchronous helpers without polling, failures, the required callBackUrl, the
multi-stage callbacks, and the raw record-info wire shapes."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import kie
from kie.client import AsyncKie, Kie
from kie.client._base import sync_transport
from kie.client.results import Generation
from kie.config import DEFAULT_CALLBACK_PLACEHOLDER
from kie.protocol import flows
from kie.protocol.families.suno import SunoFamily
from kie.sandbox.server import SandboxServer
from tests.receiver import CallbackReceiver

SONG = {"prompt": "a lullaby about foxes in the snow"}
CUSTOM = {"prompt": "[Verse] la la", "customMode": True, "style": "Folk", "title": "Fox Song"}
STATUS_ENDPOINTS = (
    "generate/record-info",
    "lyrics/record-info",
    "wav/record-info",
    "vocal-removal/record-info",
    "midi/record-info",
    "mp4/record-info",
    "suno/cover/record-info",
)
CLOCK = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
family = SunoFamily()


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def record(http: httpx.Client, path: str, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get(f"/api/v1/{path}", params={"taskId": task_id}).json()
    return body


def status_polls(sandbox: SandboxServer) -> int:
    return sum(sandbox.state.requests_for(name) for name in STATUS_ENDPOINTS)


@pytest.fixture
def song(client: Kie, tmp_path: Path) -> Generation:
    return client.generate("suno/V5", SONG, output_dir=tmp_path / "song")


def audio_id(gen: Generation, index: int = 0) -> str:
    track_id: str = gen.status.extra["tracks"][index]["id"]
    return track_id


# -- songs and text -------------------------------------------------------------------------------
def test_generate_saves_two_mp3_tracks(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate("suno/V5", SONG, output_dir=tmp_path)
    assert [p.name for p in gen.paths] == [f"{gen.task_id}-1.mp3", f"{gen.task_id}-2.mp3"]
    for result in gen.results:
        data = result.read()
        assert data[:3] == b"ID3" and hashlib.sha256(data).hexdigest() == result.sha256
    assert gen.status.state is kie.TaskState.SUCCEEDED and len(gen.status.extra["tracks"]) == 2
    assert gen.estimate.credits == 12 and sandbox.state.spent == 12
    task = sandbox.state.tasks[gen.task_id]
    assert task.callback_url == DEFAULT_CALLBACK_PLACEHOLDER  # the client's documented placeholder
    assert task.request["model"] == "V5" and task.request["customMode"] is False
    assert (
        sandbox.state.requests_for("generate") == 1
        and sandbox.state.requests_for("generate/record-info") >= 1
    )


def test_custom_song_keeps_its_title_and_style(client: Kie, tmp_path: Path) -> None:
    gen = client.generate("suno/V4_5PLUS", CUSTOM, output_dir=tmp_path)
    tracks = gen.status.extra["tracks"]
    assert {t["title"] for t in tracks} == {"Fox Song"} and {t["tags"] for t in tracks} == {"Folk"}
    assert all(t["imageUrl"] and t["audioUrl"] in gen.status.result_urls for t in tracks)


def test_lyrics_are_saved_as_a_text_file(client: Kie, tmp_path: Path) -> None:
    gen = client.generate("suno/lyrics", {"prompt": "rain on tin roofs"}, output_dir=tmp_path)
    (result,) = gen.results
    assert result.path == tmp_path / f"{gen.task_id}-1.txt"
    text = result.path.read_text()
    assert text == gen.status.extra["text"] and text.count("[Verse]") == 2  # both variants
    assert gen.status.result_urls == ()


def test_style_boost_is_synchronous(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate("suno/style-boost", {"content": "Pop, Mysterious"}, output_dir=tmp_path)
    (result,) = gen.results
    assert result.path.suffix == ".txt" and result.path.read_text().startswith("Pop, Mysterious")
    assert gen.status.raw_state == "成功" and gen.status.credits_consumed == 0.4
    assert sandbox.state.requests_for("style/generate") == 1
    assert status_polls(sandbox) == 0  # the create answer was the result: nothing was polled
    assert sandbox.state.spent == pytest.approx(0.4)


def test_style_boost_wire_shape(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        body = http.post("/api/v1/style/generate", json={"content": "Pop, Mysterious"}).json()
    data = body["data"]
    assert body["code"] == 200 and set(data) == {
        "taskId",
        "param",
        "result",
        "creditsConsumed",
        "creditsRemaining",
        "successFlag",
        "errorCode",
        "errorMsg",
        "createTime",
    }
    assert data["successFlag"] == "成功" and data["creditsConsumed"] == 0.4
    # As recorded: integer milliseconds and the plain content string.
    assert isinstance(data["createTime"], int) and data["param"] == "Pop, Mysterious"


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("suno/persona", {"name": "Fox Singer", "description": "soft folk voice"}),
        ("suno/timestamped-lyrics", {}),
    ],
)
def test_synchronous_helpers_on_a_finished_song(
    client: Kie, sandbox: SandboxServer, song: Generation, tmp_path: Path, model: str, extra: dict[str, Any]
) -> None:
    polls = status_polls(sandbox)
    gen = client.generate(
        model, {"taskId": song.task_id, "audioId": audio_id(song), **extra}, output_dir=tmp_path
    )
    (result,) = gen.results
    assert result.path.suffix == ".json" and result.path.read_text().strip().startswith("{")
    assert status_polls(sandbox) == polls
    if model == "suno/persona":
        assert gen.task_id == gen.status.extra["json"]["personaId"]
        with pytest.raises(kie.ValidationError):  # one persona per audioId
            client.generate(
                model, {"taskId": song.task_id, "audioId": audio_id(song), **extra}, output_dir=tmp_path
            )
    else:
        words = [w["word"] for w in gen.status.extra["json"]["alignedWords"]]
        assert words == SONG["prompt"].split()


# -- follow-ups ----------------------------------------------------------------------------------
FOLLOW_UPS = [
    ("suno/wav", {}, [".wav"], b"RIFF"),
    ("suno/mp4", {"author": "Fox"}, [".mp4"], None),
    ("suno/vocal-removal", {}, [".mp3"] * 2, b"ID3"),
    ("suno/split-stem", {}, [".mp3"] * 12, b"ID3"),
    ("suno/cover", {}, [".png"] * 2, b"\x89PNG"),
    ("suno/extend", {"model": "V5", "defaultParamFlag": False}, [".mp3"] * 2, b"ID3"),
    (
        "suno/replace-section",
        {
            "prompt": "new words",
            "tags": "folk",
            "title": "Fox",
            "infillStartS": 2,
            "infillEndS": 9,
            "fullLyrics": "la la new words",
        },
        [".mp3"],
        b"ID3",
    ),
]


@pytest.mark.parametrize(("model", "values", "suffixes", "magic"), FOLLOW_UPS, ids=[f[0] for f in FOLLOW_UPS])
def test_follow_ups_on_a_finished_song(
    client: Kie,
    song: Generation,
    tmp_path: Path,
    model: str,
    values: dict[str, Any],
    suffixes: list[str],
    magic: bytes | None,
) -> None:
    refs = {"audioId": audio_id(song, 1)} if model == "suno/extend" else {"taskId": song.task_id}
    if model not in ("suno/cover", "suno/extend"):
        refs["audioId"] = audio_id(song, 1)
    gen = client.generate(model, {**refs, **values}, output_dir=tmp_path)
    assert [p.suffix for p in gen.paths] == suffixes and gen.status.state is kie.TaskState.SUCCEEDED
    for result in gen.results:
        assert result.path.stat().st_size > 0
        if magic is not None:
            assert result.read().startswith(magic)


@pytest.mark.parametrize(
    ("model", "values"),
    [
        ("suno/upload-cover", {"model": "V5", "prompt": "jazz it up"}),
        ("suno/upload-extend", {"model": "V5", "continueAt": 4}),
        ("suno/add-instrumental", {"title": "Fox", "tags": "folk", "negativeTags": "metal"}),
        ("suno/add-vocals", {"prompt": "sing", "title": "Fox", "style": "folk", "negativeTags": "metal"}),
    ],
)
def test_upload_based_operations(
    client: Kie, song: Generation, tmp_path: Path, model: str, values: dict[str, Any]
) -> None:
    gen = client.generate(model, {"uploadUrl": song.status.result_urls[0], **values}, output_dir=tmp_path)
    assert [p.suffix for p in gen.paths] == [".mp3", ".mp3"]


def test_mashup_and_sounds(client: Kie, song: Generation, tmp_path: Path) -> None:
    urls = list(song.status.result_urls)
    mashup = client.generate(
        "suno/mashup",
        {"uploadUrlList": urls, "model": "V5", "style": "folk", "title": "Two Foxes"},
        output_dir=tmp_path,
    )
    sounds = client.generate(
        "suno/sounds", {"prompt": "rain on a window", "model": "V5"}, output_dir=tmp_path
    )
    assert len(mashup.paths) == 2 and len(sounds.paths) == 2


def test_midi_from_a_vocal_separation(client: Kie, song: Generation, tmp_path: Path) -> None:
    stems = client.generate(
        "suno/vocal-removal", {"taskId": song.task_id, "audioId": audio_id(song)}, output_dir=tmp_path
    )
    stem_id = stems.status.extra["originData"][0]["id"]
    midi = client.generate("suno/midi", {"taskId": stems.task_id, "audioId": stem_id}, output_dir=tmp_path)
    (result,) = midi.results
    assert result.path.suffix == ".json" and midi.status.extra["json"]["instruments"]
    with pytest.raises(kie.ValidationError) as caught:  # MIDI needs a separation, not a song
        client.submit("suno/midi", {"taskId": song.task_id})
    assert caught.value.code == 422


def test_cover_twice_returns_the_existing_task(client: Kie, song: Generation, tmp_path: Path) -> None:
    first = client.submit("suno/cover", {"taskId": song.task_id})
    with pytest.raises(kie.ValidationError) as caught:
        client.submit("suno/cover", {"taskId": song.task_id})
    assert caught.value.code == 400 and first.task_id in str(caught.value)


@pytest.mark.parametrize("model", ["suno/wav", "suno/mp4", "suno/vocal-removal"])
def test_follow_up_on_unknown_record_is_refused_before_any_charge(
    client: Kie, sandbox: SandboxServer, song: Generation, model: str
) -> None:
    spent = sandbox.state.spent
    for refs in (
        {"taskId": "0" * 32, "audioId": audio_id(song)},
        {"taskId": song.task_id, "audioId": "bogus"},
    ):
        with pytest.raises(kie.ValidationError) as caught:
            client.submit(model, refs)
        assert caught.value.code == 422 and "Record does not exist" in str(caught.value)
    assert sandbox.state.spent == spent and len(sandbox.state.tasks) == 1


def test_extend_with_a_bogus_audio_id_gets_a_task_that_fails(client: Kie, sandbox: SandboxServer) -> None:
    sub = client.submit("suno/extend", {"audioId": "no-such-track", "model": "V5"})  # [REAL]: still a taskId
    with pytest.raises(kie.TaskFailedError) as caught:
        client.wait(sub.task_id, "suno/extend")
    assert "no-such-track" in str(caught.value) and sandbox.state.spent == 0
    with api(sandbox) as http:
        assert record(http, "generate/record-info", sub.task_id)["data"]["status"] == "CREATE_TASK_FAILED"


def test_dropped_create_is_unknown_never_resent_and_still_finishes(
    client: Kie, sandbox: SandboxServer
) -> None:
    sandbox.state.inject("generate", "drop_after_create")
    with pytest.raises(kie.SubmissionUnknownError):
        client.submit("suno/V5", SONG)
    assert sandbox.state.requests_for("generate") == 1
    (task_id,) = sandbox.state.tasks
    status = client.wait(task_id, "suno/V5")  # the task exists and is readable by its id
    assert status.state is kie.TaskState.SUCCEEDED and len(status.extra["tracks"]) == 2


# -- failures -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "values", "path", "fail_code", "word", "error_code"),
    [
        ("suno/V5", SONG, "generate/record-info", "500", "GENERATE_AUDIO_FAILED", 500),
        ("suno/V5", SONG, "generate/record-info", "SENSITIVE_WORD_ERROR", "SENSITIVE_WORD_ERROR", 400),
        ("suno/lyrics", {"prompt": "x"}, "lyrics/record-info", "500", "GENERATE_LYRICS_FAILED", 500),
    ],
)
def test_failure_encoding(
    client: Kie,
    sandbox: SandboxServer,
    model: str,
    values: dict[str, Any],
    path: str,
    fail_code: str,
    word: str,
    error_code: int,
) -> None:
    sandbox.state.inject(
        "generation", "fail_generation", fail_code=fail_code, fail_msg="Your prompt was flagged"
    )
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate(model, values)
    assert caught.value.fail_code == str(error_code) and caught.value.fail_msg == "Your prompt was flagged"
    assert sandbox.state.spent == 0
    with api(sandbox) as http:
        data = record(http, path, caught.value.task_id or "")["data"]
    assert data["status"] == word and data["errorCode"] == error_code and data["response"] is None


def test_failed_follow_up_uses_the_string_success_flag(
    client: Kie, sandbox: SandboxServer, song: Generation
) -> None:
    sandbox.state.inject("generation", "fail_generation")
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate("suno/wav", {"taskId": song.task_id, "audioId": audio_id(song)})
    with api(sandbox) as http:
        data = record(http, "wav/record-info", caught.value.task_id or "")["data"]
    assert data["successFlag"] == "GENERATE_WAV_FAILED" and data["errorMessage"]


# -- the wire -------------------------------------------------------------------------------------
def test_missing_callback_is_422_at_the_wire(sandbox: SandboxServer) -> None:
    body = {"prompt": "x", "customMode": False, "instrumental": False, "model": "V5"}
    with api(sandbox) as http:
        for path, payload in (
            ("/api/v1/generate", body),
            ("/api/v1/lyrics", {"prompt": "x"}),
            ("/api/v1/wav/generate", {"taskId": "t", "audioId": "a"}),
        ):
            answer = http.post(path, json=payload)
            assert answer.status_code == 200
            assert answer.json() == {"code": 422, "msg": "Please enter callBackUrl.", "data": None}
        created = http.post(
            "/api/v1/generate", json={**body, "callBackUrl": DEFAULT_CALLBACK_PLACEHOLDER}
        ).json()
    assert created["code"] == 200 and created["msg"] == "success" and set(created["data"]) == {"taskId"}
    assert len(sandbox.state.tasks) == 1


def test_bypassing_the_client_without_callback_is_a_typed_error(client: Kie, sandbox: SandboxServer) -> None:
    spec = kie.catalog.get("suno/V5")
    with pytest.raises(kie.ValidationError) as caught:
        client.run(flows.submit(spec, {"prompt": "x", "customMode": False, "instrumental": False}, None))
    assert caught.value.code == 422 and "callBackUrl" in str(caught.value)


def test_unknown_task(client: Kie, sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        for path in STATUS_ENDPOINTS:
            assert record(http, path, "nope") == {"code": 200, "msg": "success", "data": None}  # [REAL]
    with pytest.raises(kie.NotFoundError):
        client.get("nope", "suno/V5")


def test_music_record_wire_shape(sandbox: SandboxServer, song: Generation) -> None:
    with api(sandbox) as http:
        body = record(http, "generate/record-info", song.task_id)
    data = body["data"]
    assert body["code"] == 200 and data["status"] == "SUCCESS" and data["type"] == "GENERATE"
    assert isinstance(data["param"], str) and "callBackUrl" not in data["param"]
    assert data["errorCode"] is None and data["errorMessage"] is None and data["parentMusicId"] == ""
    tracks = data["response"]["sunoData"]
    assert [t["id"] for t in tracks] == [t["id"] for t in song.status.extra["tracks"]]
    assert set(tracks[0]) == {
        "id",
        "audioUrl",
        "streamAudioUrl",
        "imageUrl",
        "prompt",
        "modelName",
        "title",
        "tags",
        "createTime",
        "duration",
    }
    assert CLOCK.match(tracks[0]["createTime"]) and tracks[0]["modelName"] == "chirp-v5"
    with httpx.Client(transport=sync_transport()) as files:
        assert files.get(tracks[0]["imageUrl"]).content[:2] == b"\xff\xd8"  # the cover image is real


def test_follow_up_record_wire_shapes(
    client: Kie, sandbox: SandboxServer, song: Generation, tmp_path: Path
) -> None:
    refs = {"taskId": song.task_id, "audioId": audio_id(song, 1)}
    wav = client.generate("suno/wav", refs, output_dir=tmp_path)
    stems = client.generate("suno/split-stem", refs, output_dir=tmp_path)
    midi = client.generate("suno/midi", {"taskId": stems.task_id}, output_dir=tmp_path)
    cover = client.generate("suno/cover", {"taskId": song.task_id}, output_dir=tmp_path)
    with api(sandbox) as http:
        w = record(http, "wav/record-info", wav.task_id)["data"]
        s = record(http, "vocal-removal/record-info", stems.task_id)["data"]
        m = record(http, "midi/record-info", midi.task_id)["data"]
        c = record(http, "suno/cover/record-info", cover.task_id)["data"]
    assert w["successFlag"] == "SUCCESS" and w["musicId"] == refs["audioId"] and w["musicIndex"] == 1
    assert CLOCK.match(w["createTime"]) and w["response"] == {"audioWavUrl": wav.status.result_urls[0]}
    assert s["successFlag"] == "SUCCESS" and isinstance(s["createTime"], int)  # a string flag, ms times
    assert s["response"]["instrumentalUrl"] is None and s["response"]["pianoUrl"] is None
    assert s["response"]["originUrl"] is None and len(s["response"]["originData"]) == 12
    assert m["successFlag"] == 1 and m["midiData"]["state"] == "complete"  # an int flag
    assert c["successFlag"] == 1 and ISO.match(c["createTime"]) and c["errorCode"] == 200
    assert c["parentTaskId"] == song.task_id and c["response"]["images"] == list(cover.status.result_urls)


@pytest.mark.parametrize("sandbox", [{"time_scale": 0.02}], indirect=True)
def test_music_stages_are_seen_while_polling(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    seen: list[tuple[str | None, float | None]] = []
    client.generate(
        "suno/V5", SONG, output_dir=tmp_path, on_status=lambda s, _: seen.append((s.raw_state, s.progress))
    )
    words = [w for w, _ in seen]
    assert words[-1] == "SUCCESS" and {"TEXT_SUCCESS", "FIRST_SUCCESS"} & set(words)
    progress = [p for _, p in seen if p is not None]
    assert progress == sorted(progress) and progress[-1] == 1.0


# -- callbacks ------------------------------------------------------------------------------------
def test_music_callbacks_arrive_in_stages(client: Kie, sandbox: SandboxServer) -> None:
    with CallbackReceiver() as receiver:
        sub = client.submit("suno/V5", SONG, callback_url=receiver.url)
        hits = receiver.wait_for(3)
    assert sandbox.state.tasks[sub.task_id].callback_url == receiver.url
    assert [h.body["data"]["callbackType"] for h in hits] == ["text", "first", "complete"]
    assert [h.body["data"]["task_id"] for h in hits] == [sub.task_id] * 3
    parsed = [family.parse_callback(h.body) for h in hits]
    assert [p.state for p in parsed] == [
        kie.TaskState.RUNNING,
        kie.TaskState.RUNNING,
        kie.TaskState.SUCCEEDED,
    ]
    assert [p.progress for p in parsed] == [0.33, 0.66, 1.0]
    final, polled = parsed[-1], client.get(sub.task_id, "suno/V5")
    assert (final.task_id, final.state, final.result_urls) == (
        polled.task_id,
        polled.state,
        polled.result_urls,
    )
    assert [t["id"] for t in final.extra["tracks"]] == [t["id"] for t in polled.extra["tracks"]]
    assert hits[-1].body["msg"] == "All generated successfully." and len(final.result_urls) == 2


def test_failure_callback_is_a_single_error_body(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_code="451", fail_msg="Download Failed")
    with CallbackReceiver() as receiver:
        sub = client.submit("suno/V5", SONG, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
        time.sleep(0.05)
        assert len(receiver.received) == 1
    assert hit.body == {
        "code": 451,
        "msg": "Download Failed",
        "data": {"callbackType": "error", "task_id": sub.task_id, "data": None},
    }
    parsed = family.parse_callback(hit.body)
    assert parsed.state is kie.TaskState.FAILED and parsed.fail_code == "451"
    assert client.get(sub.task_id, "suno/V5").state is kie.TaskState.FAILED


@pytest.mark.parametrize(
    ("model", "key"),
    [("suno/wav", "audioWavUrl"), ("suno/vocal-removal", "vocal_separation_info"), ("suno/mp4", "video_url")],
)
def test_follow_up_callbacks_match_polling(client: Kie, song: Generation, model: str, key: str) -> None:
    with CallbackReceiver() as receiver:
        sub = client.submit(
            model, {"taskId": song.task_id, "audioId": audio_id(song)}, callback_url=receiver.url
        )
        (hit,) = receiver.wait_for(1)
    assert key in hit.body["data"]
    parsed, polled = family.parse_callback(hit.body), client.get(sub.task_id, model)
    assert parsed.state is polled.state is kie.TaskState.SUCCEEDED
    assert parsed.task_id == sub.task_id and set(parsed.result_urls) == set(polled.result_urls)


def test_lyrics_callback(client: Kie) -> None:
    with CallbackReceiver() as receiver:
        sub = client.submit("suno/lyrics", {"prompt": "rain"}, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    parsed = family.parse_callback(hit.body)
    assert parsed.extra["text"] == client.get(sub.task_id, "suno/lyrics").extra["text"]


@pytest.fixture
def failing_receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver(fail_first=1) as receiver:
        yield receiver


@pytest.mark.parametrize("sandbox", [{"callback_retries": (600.0,)}], indirect=True)
def test_callback_exception_with_audio_counts_as_success(
    client: Kie, sandbox: SandboxServer, failing_receiver: CallbackReceiver
) -> None:
    sub = client.submit("suno/V5", SONG, callback_url=failing_receiver.url)
    deadline = time.monotonic() + 10
    while not any(c.task_id == sub.task_id and c.status == 500 for c in list(sandbox.state.callbacks)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with api(sandbox) as http:
        data = record(http, "generate/record-info", sub.task_id)["data"]
    assert data["status"] == "CALLBACK_EXCEPTION" and all(t["audioUrl"] for t in data["response"]["sunoData"])
    status = client.get(sub.task_id, "suno/V5")
    assert status.state is kie.TaskState.SUCCEEDED and len(status.result_urls) == 2
    assert status.raw_state == "CALLBACK_EXCEPTION"


# -- async ----------------------------------------------------------------------------------------
async def test_async_client_generates_a_song(aclient: AsyncKie, tmp_path: Path) -> None:
    gen = await aclient.generate("suno/V4", SONG, output_dir=tmp_path)
    assert [p.suffix for p in gen.paths] == [".mp3", ".mp3"]
    boost = await aclient.generate("suno/style-boost", {"content": "lofi"}, output_dir=tmp_path)
    assert boost.paths[0].read_text().startswith("lofi")
