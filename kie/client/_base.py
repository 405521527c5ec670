"""What the sync and async clients share: configuration, request building, envelope checks, retries.

Both clients are thin drivers over `kie.protocol.flows`; this module holds the little that touches httpx
objects without doing IO, so neither driver has logic the other lacks.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import tenacity

from kie import catalog
from kie.catalog.pricing import Estimate
from kie.catalog.spec import ModelSpec
from kie.config import Settings, load_settings
from kie.errors import ConfigurationError
from kie.protocol.envelope import ApiRequest, Envelope, error_for, parse_envelope
from kie.protocol.flows import FetchFailed, Send
from kie.protocol.polling import Pacer, PollClock, PollPolicy
from kie.protocol.retry import RetryPolicy, is_retryable, retry_after

log = logging.getLogger("kie")
USER_AGENT = "kie-python/0.1"


class RedactingFilter(logging.Filter):
    """Scrubs secrets from every log record that passes through kie's handlers (defence in depth)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def configure_logging(settings: Settings) -> None:
    """`KIE_LOG=debug` turns on kie's (and httpx's) debug logs, with keys redacted."""
    level_name = os.environ.get("KIE_LOG", "").upper()
    if not level_name:
        return
    level = getattr(logging, level_name, logging.INFO)
    redact = RedactingFilter([settings.api_key or "", settings.webhook_key or ""])
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(redact)
    for name in ("kie", "httpx"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(f, RedactingFilter) for h in logger.handlers for f in h.filters):
            logger.addHandler(handler)


# httpx writes a POST's headers and body separately and leaves Nagle's algorithm on, so each create
# waits for the server's delayed ACK: about 40 ms per POST on Linux. TCP_NODELAY removes that stall.
SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def sync_transport(limits: httpx.Limits | None = None) -> httpx.HTTPTransport:
    return httpx.HTTPTransport(socket_options=SOCKET_OPTIONS, limits=limits or httpx.Limits())


def async_transport(limits: httpx.Limits | None = None) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(socket_options=SOCKET_OPTIONS, limits=limits or httpx.Limits())


@dataclass
class ClientConfig:
    settings: Settings
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll: PollPolicy = field(default_factory=PollPolicy)
    learned: PollClock = field(default_factory=PollClock)
    create_pacer: Pacer | None = None
    upload_path: str = "kie/uploads"

    @property
    def timeout(self) -> httpx.Timeout:
        t = self.settings.timeouts
        return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)

    def headers(self) -> dict[str, str]:
        from kie.config import clean_key

        key = clean_key(self.settings.api_key)
        if not key:
            raise ConfigurationError(
                "No Kie.ai API key: set KIE_API_KEY, pass api_key=..., or use the sandbox (--sandbox)."
            )
        return {"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT, "Accept": "application/json"}

    def url(self, request: ApiRequest) -> str:
        base = self.settings.upload_base_url if request.host == "upload" else self.settings.base_url
        return base + request.path


def env_poll_scale() -> float:
    """`KIE_POLL_SCALE`: the time scale of a time-scaled sandbox (`kie sandbox --time-scale`).

    Polling waits are real seconds; against a sandbox running at 1/100 of real time they would poll a
    hundred times too late. The SDK and the CLI both read this, so a script and `kie` agree on the clock.

    Raises:
        ConfigurationError: the value is not a positive finite number (`0` would poll in a tight loop).
    """
    raw = os.environ.get("KIE_POLL_SCALE", "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigurationError(
            f"KIE_POLL_SCALE must be a positive number such as 0.01, not {raw!r}; unset it for real time."
        )
    return scale


def make_config(
    *,
    api_key: str | None,
    base_url: str | None,
    upload_base_url: str | None,
    settings: Settings | None,
    retry: RetryPolicy | None,
    poll: PollPolicy | None,
    create_interval: float | None,
    learned: PollClock | None = None,
) -> ClientConfig:
    base = settings or load_settings(api_key=api_key, base_url=base_url, upload_base_url=upload_base_url)
    if settings is not None:
        changes = {
            k: v
            for k, v in (("api_key", api_key), ("base_url", base_url), ("upload_base_url", upload_base_url))
            if v is not None
        }
        base = base.with_(**changes)
    configure_logging(base)
    return ClientConfig(
        settings=base,
        retry=retry or RetryPolicy(),
        poll=poll or PollPolicy(scale=env_poll_scale()),
        create_pacer=Pacer(create_interval) if create_interval else None,
        learned=learned or PollClock(),
    )


def httpx_args(config: ClientConfig, request: ApiRequest) -> dict[str, Any]:
    """Keyword arguments for `client.request(...)`. Rewinds file objects so a retried upload is whole."""
    if request.files:
        for value in request.files.values():
            handle = value[1] if isinstance(value, tuple) else value
            if hasattr(handle, "seek"):
                handle.seek(0)
    args: dict[str, Any] = {"method": request.method, "url": config.url(request)}
    if request.params:
        args["params"] = dict(request.params)
    if request.json is not None:
        args["json"] = request.json
    if request.files is not None:
        args["files"] = dict(request.files)
    if request.data is not None:
        args["data"] = dict(request.data)
    return args


def read_envelope(response: httpx.Response) -> Envelope:
    return parse_envelope(response.status_code, response.content, response.headers)


def check(effect: Send, env: Envelope) -> Envelope:
    """Hand back successes and expected answers; raise every other code as its typed error."""
    if env.ok or env.code in effect.answers:
        return env
    raise error_for(env)


def retrying_args(
    config: ClientConfig, kind: str, sleep: Callable[[float], Any] | None = None
) -> dict[str, Any]:
    policy = config.retry

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.delay(state.attempt_number, retry_after(exc) if exc else None)

    def should_retry(exc: BaseException) -> bool:
        if kind == "download":
            return isinstance(exc, FetchFailed) and (
                exc.status is None or exc.status >= 500 or exc.status == 429
            )
        return is_retryable(kind, exc)  # type: ignore[arg-type]

    args: dict[str, Any] = {
        "stop": tenacity.stop_after_attempt(policy.attempts_for(kind)),  # type: ignore[arg-type]
        "wait": wait,
        "retry": tenacity.retry_if_exception(should_retry),
        "reraise": True,
    }
    if sleep is not None:
        args["sleep"] = sleep
    return args


def create_retry(
    config: ClientConfig, effect: Send, sleep: Callable[[float], Any] | None = None
) -> dict[str, Any]:
    """Retry rules for a request. A create whose caller commits intent at departure (`on_depart`, the
    batch engine) is tried once: its job is `submitting` from that moment, so waiting out a 429 or a
    refused connection here would keep it there, and a crash meanwhile would leave it `unknown` though
    nothing was created. That caller releases and re-queues the job itself."""
    args = retrying_args(config, effect.request.kind, sleep)
    if effect.request.kind == "create" and effect.on_depart is not None:
        args["stop"] = tenacity.stop_after_attempt(1)
    return args


@dataclass(frozen=True)
class Prepared:
    model: ModelSpec
    input: dict[str, Any]
    estimate: Estimate


def prepare(
    model: str | ModelSpec,
    values: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
    *,
    settings: Settings,
    allow_unknown: bool = False,
) -> Prepared:
    """Resolve, validate and price a request before anything is sent."""
    merged = dict(values or {})
    merged.update(fields)
    checked = catalog.validate(model, merged, allow_unknown=allow_unknown)
    est = catalog.estimate(checked.model, checked.input, overrides=settings.price_overrides)
    return Prepared(checked.model, checked.input, est)


def callback_for(config: ClientConfig, spec: ModelSpec) -> str | None:
    """The callback URL to attach: the user's, or Suno's required placeholder, else none."""
    from kie.config import DEFAULT_CALLBACK_PLACEHOLDER

    if config.settings.callback_url:
        return config.settings.callback_url
    return DEFAULT_CALLBACK_PLACEHOLDER if spec.endpoint.requires_callback else None


def content_length(response: httpx.Response) -> int | None:
    if response.headers.get("content-encoding"):
        return None
    raw = response.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() else None
