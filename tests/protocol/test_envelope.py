"""Envelope parsing and the code → error map, on the real shapes of kie-api.md §2."""

from __future__ import annotations

import pytest

from kie import errors
from kie.protocol.envelope import MalformedResponse, error_for, parse_envelope, parse_retry_after, require_ok


def test_http_200_error_envelope_is_an_error() -> None:
    env = parse_envelope(200, b'{"code":422,"msg":"Please enter callBackUrl.","data":null}')
    assert (env.code, env.msg, env.ok) == (422, "Please enter callBackUrl.", False)
    with pytest.raises(errors.ValidationError) as caught:
        require_ok(env)
    assert "(Please enter callBackUrl)" in str(caught.value) and ".." not in str(caught.value)
    assert caught.value.code == 422


def test_message_spelling_is_accepted() -> None:
    env = parse_envelope(200, b'{"code":200,"message":"success","data":{"taskId":"t"}}')
    assert env.ok and env.msg == "success" and env.data == {"taskId": "t"}


def test_upload_host_success_false_is_failure() -> None:
    env = parse_envelope(200, b'{"success":false,"code":400,"msg":"Missing required parameter: uploadPath"}')
    assert env.code == 400 and not env.ok


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (401, errors.AuthenticationError),
        (402, errors.InsufficientCreditsError),
        (404, errors.NotFoundError),
        (422, errors.ValidationError),
        (429, errors.RateLimitError),
        (433, errors.RateLimitError),
        (455, errors.MaintenanceError),
        (500, errors.ServerError),
        (550, errors.ServerError),
        (505, errors.FeatureDisabledError),
    ],
)
def test_codes_map_to_typed_errors(code: int, cls: type[Exception]) -> None:
    env = parse_envelope(200, f'{{"code":{code},"msg":"m{code}","data":null}}'.encode())
    error = error_for(env, task_id="abc")
    assert type(error) is cls
    assert isinstance(error, errors.KieError)
    assert error.task_id == "abc"  # type: ignore[attr-defined]
    assert f"m{code}" in str(error)


def test_http_error_without_envelope_uses_http_status() -> None:
    env = parse_envelope(502, b"<html>Bad gateway</html>")
    assert env.code == 502 and env.http_status == 502
    assert isinstance(error_for(env), errors.ServerError)


def test_http_status_overrides_success_code() -> None:
    env = parse_envelope(429, b'{"code":200,"msg":"success","data":null}')
    assert env.code == 429


def test_garbled_200_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        parse_envelope(200, b"<html>oops</html>")


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("2500000") == 600.0 or parse_retry_after("2500000") == 2500.0
    assert parse_retry_after("15000") == 15.0  # milliseconds
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 5) == pytest.approx(5.0)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
