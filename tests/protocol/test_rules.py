"""Retry classification, the poll schedule, the pacer and the file sink."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from kie import catalog, errors
from kie.protocol.envelope import Envelope, MalformedResponse
from kie.protocol.files import FileSink, safe_stem, sniff_extension
from kie.protocol.flows import Watch
from kie.protocol.polling import Pacer, PollPolicy, next_delay
from kie.protocol.retry import RetryPolicy, final_error, is_retryable

REQ = httpx.Request("POST", "http://x")


@pytest.mark.parametrize(
    ("exc", "create", "read"),
    [
        (httpx.ConnectError("refused", request=REQ), True, True),
        (httpx.ConnectTimeout("t", request=REQ), True, True),
        (httpx.ReadTimeout("t", request=REQ), False, True),
        (httpx.RemoteProtocolError("closed", request=REQ), False, True),
        (errors.RateLimitError("r", code=429), True, True),
        (errors.MaintenanceError("m", code=455), True, True),
        (errors.ServerError("s", code=500), False, True),
        (MalformedResponse(200, "x"), False, True),
        (errors.AuthenticationError("a", code=401), False, False),
        (errors.InsufficientCreditsError("c", code=402), False, False),
        (errors.ValidationError("v", code=422), False, False),
    ],
)
def test_retry_rules(exc: BaseException, create: bool, read: bool) -> None:
    assert is_retryable("create", exc) is create
    assert is_retryable("read", exc) is read


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("t", request=REQ),
        httpx.RemoteProtocolError("reset", request=REQ),
        errors.ServerError("s", code=500),
        MalformedResponse(200, "<html>"),
    ],
)
def test_ambiguous_create_becomes_submission_unknown(exc: BaseException) -> None:
    final = final_error("create", exc, label="create m", model="m")
    assert isinstance(final, errors.SubmissionUnknownError)
    assert "not resent" in str(final) and final.model == "m"


def test_definitive_create_errors_pass_through() -> None:
    exc = errors.InsufficientCreditsError("no credits", code=402)
    assert final_error("create", exc, label="c") is exc
    transport = final_error("read", httpx.ReadTimeout("t", request=REQ), label="recordInfo")
    assert isinstance(transport, errors.TransportError)


def test_backoff_grows_caps_and_honours_retry_after() -> None:
    policy = RetryPolicy(initial=1, maximum=8, jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 8]
    assert policy.delay(1, retry_after=30) == 30


def test_poll_schedule_waits_for_expected_time_then_grows() -> None:
    policy = PollPolicy(jitter=0)
    rng = random.Random(1)
    assert next_delay(policy, 0, 100, rng=rng) == 30  # capped wait toward 80 s
    assert next_delay(policy, 70, 100, rng=rng) == pytest.approx(10)  # reach 0.8 x expected
    assert next_delay(policy, 100, 100, rng=rng) == pytest.approx(15)  # 15 % of elapsed
    assert next_delay(policy, 1000, 100, rng=rng) == 30  # capped
    assert next_delay(policy, 1, 2, rng=rng) == 1.0  # never below min_interval


def test_poll_schedule_scales() -> None:
    policy = PollPolicy(jitter=0, scale=0.001)
    assert next_delay(policy, 0.07, 100) == pytest.approx(0.01)


def test_pacer_spaces_without_burst() -> None:
    pacer = Pacer(0.5)
    waits = [pacer.reserve(now=10.0) for _ in range(4)]
    assert waits == [0.0, 0.5, 1.0, 1.5]
    assert pacer.reserve(now=20.0) == 0.0


def test_pacer_keeps_the_gap_at_departure_even_after_a_late_wake_up() -> None:
    pacer = Pacer(0.5)
    assert pacer.depart(now=10.0) == 0.0
    # The next slot was 10.5 but this sender woke late, at 10.9; the one after woke on time at 11.0.
    assert pacer.depart(now=10.9) == 0.0
    assert pacer.depart(now=11.0) == pytest.approx(0.4)  # not 0.1 after the previous create
    assert pacer.depart(now=11.4) == 0.0
    assert Pacer(0).depart(now=1.0) == 0.0


def test_sniffing() -> None:
    assert sniff_extension(b"\x89PNG\r\n\x1a\n....", "text/plain") == "png"
    assert sniff_extension(b"\xff\xd8\xff\xe0", None) == "jpg"
    assert sniff_extension(b"\0\0\0\x18ftypisom", None) == "mp4"
    assert sniff_extension(b"RIFF\0\0\0\0WEBPVP8 ", None) == "webp"
    assert sniff_extension(b"ID3\x03", None) == "mp3"
    assert sniff_extension(b"????", "video/mp4") == "mp4"
    assert sniff_extension(b"????", None, "https://x/y/file.WAV?sig=1") == "wav"
    assert sniff_extension(b"????", None, None) == "bin"


def test_names_cannot_escape_the_folder() -> None:
    assert "/" not in safe_stem("../../etc/passwd") and safe_stem("../../etc/passwd") != ""
    assert safe_stem("..") == "result"


def test_sink_is_atomic_and_checks_length(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, "job-1", "http://h/x")
    sink.start("image/png", 12)
    sink.write(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match="truncated"):
        sink.finish()
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind

    sink = FileSink(tmp_path, "job-1", "http://h/x")
    sink.start(None, None)
    sink.write(b"\x89PNG\r\n\x1a\n")
    sink.write(b"rest")
    saved = sink.finish()
    assert saved.path == tmp_path / "job-1.png" and saved.size == 12
    import hashlib

    assert saved.sha256 == hashlib.sha256(b"\x89PNG\r\n\x1a\nrest").hexdigest()


def test_a_watch_follows_the_schedule_and_keeps_its_whole_deadline_when_resumed() -> None:
    spec = catalog.get("nano-banana-pro")
    policy = PollPolicy(jitter=0)
    expected = spec.traits.typical_seconds
    fresh = Watch.begin(spec, "t1", policy=policy, now=1000.0, deadline=600.0)
    assert fresh.delay(1000.0) == pytest.approx(min(0.8 * expected, 30))
    # Resumed after running an hour: poll at the late-task interval, and still allow the full deadline.
    resumed = Watch.begin(spec, "t1", policy=policy, now=1000.0, deadline=600.0, elapsed=3600.0)
    assert resumed.delay(1000.0) == pytest.approx(30)
    assert resumed.delay(1599.0) == pytest.approx(1.0)  # never past the deadline
    with pytest.raises(errors.TimeoutError, match="t1"):
        resumed.delay(1600.0)


def test_a_watch_reads_not_visible_within_grace_then_raises() -> None:
    spec = catalog.get("nano-banana-pro")
    watch = Watch.begin(spec, "t9", policy=PollPolicy(not_visible_grace=90), now=0.0, deadline=600.0)
    missing = Envelope(422, "recordInfo is null", None)
    assert watch.read(missing, 10.0) is None and watch.polls == 1
    # Past the grace window one more "no record" is still read through (Kie says so now and then about
    # a task it knows); the third in a row ends the watch.
    assert watch.read(missing, 91.0) is None
    with pytest.raises(errors.NotFoundError, match="t9"):
        watch.read(missing, 92.0)


def test_a_visible_answer_resets_the_count_of_no_record_answers() -> None:
    spec = catalog.get("nano-banana-pro")
    watch = Watch.begin(spec, "t8", policy=PollPolicy(not_visible_grace=0), now=0.0, deadline=600.0)
    missing = Envelope(422, "recordInfo is null", None)
    waiting = Envelope(200, "success", {"taskId": "t8", "state": "waiting", "resultJson": ""})
    assert watch.read(missing, 1.0) is None and watch.read(missing, 2.0) is None
    assert watch.read(waiting, 3.0) is not None
    assert watch.read(missing, 4.0) is None and watch.read(missing, 5.0) is None
    with pytest.raises(errors.NotFoundError):
        watch.read(missing, 6.0)
