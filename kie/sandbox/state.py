"""Everything the sandbox remembers, and the knobs that make it behave like the real Kie.ai.

One `SandboxState` per server. It is touched by request handlers on the server's event loop and read
by tests from other threads, so every mutation happens under one lock. Times are real seconds
multiplied by `time_scale`: 0.001 makes a 30-second image take 30 ms in tests, 1 is real time.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal[
    "429",
    "433",
    "455",
    "500",
    "505",  # envelope rejections (nothing created)
    "drop_after_create",  # the task is created, then the connection is cut before any answer
    "drop",  # the connection is cut before anything happens
    "slow",  # answer after `delay` seconds (scaled)
    "malformed",  # HTTP 200 with a body that is not JSON
    "fail_generation",  # the task runs and ends in `fail`
    "callback_fail",  # the callback receiver is treated as failing (retried on schedule)
    "callback_duplicate",  # the callback is delivered twice
    "expire_urls",  # result links are already expired when the task succeeds
]


@dataclass
class Fault:
    """A fault for the next `times` matching requests (`endpoint` as in `SandboxState.count`)."""

    endpoint: str
    kind: FaultKind
    times: int = 1
    delay: float = 0.0
    fail_code: str = "500"
    fail_msg: str = "Internal Error, Please try again later"


@dataclass
class SandboxConfig:
    api_keys: tuple[str, ...] = ()
    credits: float = 100_000.0
    time_scale: float = 0.1
    seed: int = 0
    strict_http: bool = False
    webhook_key: str | None = None
    allow_external_callbacks: bool = False
    allow_external_url_upload: bool = False
    rate_limit: tuple[int, float] | None = (20, 10.0)
    status_rate_limit: tuple[int, float] | None = (10, 1.0)
    max_running: int = 100
    visible_after: float = 0.0
    duration_jitter: float = 0.25
    url_ttl: float = 24 * 3600.0
    retention: float = 14 * 24 * 3600.0
    upload_retention: float = 3 * 24 * 3600.0
    download_link_ttl: float = 20 * 60.0
    callback_timeout: float = 15.0
    callback_retries: tuple[float, ...] = (60.0, 300.0, 900.0)
    unknown_price_credits: float = 1.0
    # Whether a create holds its price until the task ends (unknown for real Kie; kie-api.md only says
    # credits are checked before accept and charged on success). Holding makes 402s appear mid-batch.
    reserve_credits: bool = True
    max_image_side: int | None = None
    user_id: int = 136592
    fault_rates: dict[str, float] = field(default_factory=dict)
    public_url: str | None = None
    upload_public_url: str | None = None

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale


@dataclass
class SandboxTask:
    task_id: str
    model: str
    api: str
    key_id: str
    request: dict[str, Any]
    input: dict[str, Any]
    callback_url: str | None
    create_time: int
    created_at: float
    state: str = "waiting"
    wait_seconds: float = 0.0
    generate_seconds: float = 1.0
    result_urls: list[str] = field(default_factory=list)
    fail_code: str | None = None
    fail_msg: str | None = None
    cost_time: int | None = None
    complete_time: int | None = None
    credits_consumed: float = 0.0
    held: float = 0.0
    fail_planned: Fault | None = None
    expire_urls: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    history: list[tuple[str, float]] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.state in ("success", "fail")


@dataclass
class StoredFile:
    content_type: str
    created_at: float
    expires_at: float
    retained_until: float = float("inf")
    data: bytes | None = None
    recipe: tuple[str, str, str, dict[str, Any], int] | None = None  # model, media, fmt, input, index
    task_id: str | None = None
    deleted_at: float | None = None


@dataclass
class CallbackRecord:
    task_id: str
    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    attempt: int
    status: int | None
    error: str | None
    at: float


class SlidingWindow:
    """At most `limit` events per `window` seconds; rejected events are not queued (like Kie's 429)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.events: deque[float] = deque()

    def allow(self, now: float) -> bool:
        while self.events and now - self.events[0] >= self.window:
            self.events.popleft()
        if len(self.events) >= self.limit:
            return False
        self.events.append(now)
        return True


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.rng = random.Random(config.seed)
        self.balance = config.credits
        self.tasks: dict[str, SandboxTask] = {}
        self.files: dict[str, StoredFile] = {}
        self.links: dict[str, tuple[str, float]] = {}
        self.faults: list[Fault] = []
        self.requests: Counter[tuple[str, str]] = Counter()
        self.request_log: list[dict[str, Any]] = []
        self.callbacks: list[CallbackRecord] = []
        self.create_windows: dict[str, SlidingWindow] = {}
        self.status_windows: dict[str, SlidingWindow] = {}
        self.running: set[str] = set()
        self.queue: deque[str] = deque()
        self.spent = 0.0
        self.held = 0.0
        self.started = time.monotonic()

    # -- identities and counters ------------------------------------------------------------------
    @staticmethod
    def key_id(key: str) -> str:
        """A stable, non-secret name for a key: introspection never shows keys themselves."""
        return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]

    def now(self) -> float:
        return time.monotonic()

    def count(self, endpoint: str, key_id: str, **details: Any) -> None:
        with self.lock:
            self.requests[(endpoint, key_id)] += 1
            self.request_log.append({"endpoint": endpoint, "key": key_id, "at": self.now(), **details})

    def requests_for(self, endpoint: str) -> int:
        with self.lock:
            return sum(n for (ep, _), n in self.requests.items() if ep == endpoint)

    # -- faults -----------------------------------------------------------------------------------
    def inject(self, endpoint: str, kind: FaultKind, times: int = 1, **options: Any) -> Fault:
        fault = Fault(endpoint, kind, times, **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, endpoint: str, kinds: tuple[str, ...] | None = None) -> Fault | None:
        """The next planned fault for this endpoint (consumed), else a random one from `fault_rates`."""
        with self.lock:
            for fault in self.faults:
                if (
                    fault.endpoint in (endpoint, "*")
                    and fault.times > 0
                    and (kinds is None or fault.kind in kinds)
                ):
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
            for name, rate in self.config.fault_rates.items():
                target, _, kind = name.partition(":")
                if target == endpoint and (kinds is None or kind in kinds) and self.rng.random() < rate:
                    return Fault(endpoint, kind)  # type: ignore[arg-type]
        return None

    # -- rate limits ------------------------------------------------------------------------------
    def allow_create(self, key_id: str) -> bool:
        limit = self.config.rate_limit
        if limit is None:
            return True
        with self.lock:
            window = self.create_windows.setdefault(
                key_id, SlidingWindow(limit[0], self.config.scaled(limit[1]))
            )
            return window.allow(self.now())

    def allow_status(self, key_id: str) -> bool:
        limit = self.config.status_rate_limit
        if limit is None:
            return True
        with self.lock:
            window = self.status_windows.setdefault(
                key_id, SlidingWindow(limit[0], self.config.scaled(limit[1]))
            )
            return window.allow(self.now())

    # -- tasks ------------------------------------------------------------------------------------
    def new_task_id(self) -> str:
        return secrets.token_hex(16)

    def plan_duration(self, typical_seconds: float) -> tuple[float, float]:
        """(waiting, generating) scaled seconds; together they follow the model's typical total time,
        as Kie's `costTime` covers the whole task, queue included."""
        jitter = self.config.duration_jitter
        factor = self.rng.lognormvariate(0.0, jitter) if jitter > 0 else 1.0
        total = typical_seconds * factor
        waiting = min(3.0, 0.1 * total)
        return self.config.scaled(waiting), self.config.scaled(total - waiting)

    def add_task(self, task: SandboxTask) -> None:
        with self.lock:
            self.tasks[task.task_id] = task
            task.history.append((task.state, self.now()))

    def set_state(self, task: SandboxTask, state: str) -> None:
        with self.lock:
            task.state = state
            task.history.append((state, self.now()))

    def available(self) -> float:
        with self.lock:
            return self.balance - self.held

    def hold(self, task: SandboxTask, credits: float) -> None:
        if not self.config.reserve_credits:
            return
        with self.lock:
            task.held = credits
            self.held += credits

    def settle(self, task: SandboxTask, charge: float) -> None:
        """Release the task's hold and charge what it cost (nothing for a failure)."""
        with self.lock:
            self.held -= task.held
            task.held = 0.0
            self.balance -= charge
            self.spent += charge

    # -- files ------------------------------------------------------------------------------------
    def store(self, path: str, stored: StoredFile) -> None:
        with self.lock:
            self.files[path] = stored

    def file(self, path: str, *, via_link: bool = False) -> StoredFile | None:
        """A stored file if its direct URL is still live (or, `via_link`, if it is still retained)."""
        with self.lock:
            stored = self.files.get(path)
            if stored is None or stored.deleted_at is not None:
                return None
            limit = stored.retained_until if via_link else stored.expires_at
            if self.now() >= min(limit, stored.retained_until):
                return None
            return stored

    def new_link(self, path: str) -> str:
        token = secrets.token_urlsafe(16)
        with self.lock:
            self.links[token] = (path, self.now() + self.config.scaled(self.config.download_link_ttl))
        return token

    # -- introspection ------------------------------------------------------------------------------
    def created_per_input(self) -> dict[str, int]:
        """How many tasks exist per distinct request body: the "never submitted twice" check."""
        counts: dict[str, int] = defaultdict(int)
        with self.lock:
            for task in self.tasks.values():
                counts[repr(sorted(task.input.items()))] += 1
        return dict(counts)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "credits": self.balance,
                "spent": self.spent,
                "tasks": [
                    {
                        "taskId": t.task_id,
                        "model": t.model,
                        "state": t.state,
                        "key": t.key_id,
                        "callBackUrl": t.callback_url,
                        "credits": t.credits_consumed,
                        "resultUrls": list(t.result_urls),
                        "input": t.input,
                        "createTime": t.create_time,
                        "completeTime": t.complete_time,
                    }
                    for t in self.tasks.values()
                ],
                "requests": [
                    {"endpoint": ep, "key": key, "count": n} for (ep, key), n in sorted(self.requests.items())
                ],
                "callbacks": [
                    {
                        "taskId": c.task_id,
                        "url": c.url,
                        "attempt": c.attempt,
                        "status": c.status,
                        "error": c.error,
                    }
                    for c in self.callbacks
                ],
                "faults": [f.__dict__ for f in self.faults],
            }
