"""Everything the sandbox remembers, and the knobs that make it behave like the real Kie.ai.

One `SandboxState` per server. It is touched by request handlers on the server's event loop and read
by tests from other threads, so every mutation happens under one lock. Durations are real seconds
multiplied by `time_scale`: 0.001 makes a 30-second image take 30 ms in tests, 1 is real time. Times the
sandbox reports come from one virtual clock running at that scale (`kie.sandbox.clock`), and random
faults and durations from per-request streams (`kie.sandbox.faults`), so a seed reproduces a run.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kie.sandbox import faults as named
from kie.sandbox.clock import VirtualClock

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
    # Old-style random faults, `{"createTask:429": 0.5}` (endpoint:kind), from the shared generator.
    fault_rates: dict[str, float] = field(default_factory=dict)
    # Named faults and rates, `"create.429=0.02,price.drift=0.1"` or a mapping (`kie.sandbox.faults`).
    faults: str | Mapping[str, Any] | None = None
    # "2026-09": recordInfo and callbacks carry the fields Kie's docs of 2026-09-24 list and the
    # April recordings never show (updateTime, progress, creditsConsumed; firstFrameUrl, lastFrameUrl,
    # resultObject). Off by default: today's recorded shapes stay the default.
    recordinfo_fields: str | None = None
    # How long a `download.stall` body hangs before the connection closes (scaled seconds).
    stall_seconds: float = 600.0
    # How long after a `callback.early` delivery the record shows the task finished (scaled seconds).
    early_callback_lead: float = 30.0
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
    content_key: str = ""
    planned: list[str] = field(default_factory=list)  # named faults this task will meet
    injected: list[str] = field(default_factory=list)  # named faults it met, in order
    estimate: float = 0.0
    signed_at: int | None = None  # the last callback signature timestamp

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
        self.clock = VirtualClock(config.time_scale, mono=self.started)
        self.fault_plan = named.parse_plan(config.faults)
        self.streams: dict[str, random.Random] = {}
        self.planned_named: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.injected_by_input: dict[str, list[str]] = defaultdict(list)
        self.revoked: set[str] = set()

    # -- identities and counters ------------------------------------------------------------------
    @staticmethod
    def key_id(key: str) -> str:
        """A stable, non-secret name for a key: introspection never shows keys themselves."""
        return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]

    def now(self) -> float:
        return time.monotonic()

    def now_ms(self, mono: float | None = None) -> int:
        """Virtual epoch milliseconds (at `mono`, else now): the only source of reported times."""
        return self.clock.ms(mono)

    def revoke(self, key: str) -> str:
        """Revoke an API key: every later request with it gets Kie's 401, as after a key is deleted."""
        key_id = self.key_id(key)
        with self.lock:
            self.revoked.add(key_id)
        return key_id

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

    # -- named faults -----------------------------------------------------------------------------
    def plan_named(self, name: str, times: int = 1) -> None:
        """Plan `name` for the next `times` create attempts (create faults) or new tasks (others)."""
        if name not in named.FAULTS:
            raise ValueError(f"unknown fault {name!r}; use one of: {', '.join(named.FAULTS)}")
        with self.lock:
            self.planned_named[name] += max(1, int(times))

    def stream_for(self, key: str) -> random.Random:
        with self.lock:
            rng = self.streams.get(key)
            if rng is None:
                rng = self.streams[key] = named.stream(self.config.seed, key)
            return rng

    def create_fault(self, key: str) -> str | None:
        """The named fault of one create attempt for the request with content `key`: a planned one
        first, else a draw from the request's own stream (always made, so planned faults do not shift
        the seeded sequence)."""
        rates = self.fault_plan.rates
        with self.lock:
            drawn = named.draw_create(self.stream_for(key), rates) if rates else None
            for name in named.CREATE_FAULTS:
                if self.planned_named[name] > 0:
                    self.planned_named[name] -= 1
                    drawn = name
                    break
            if drawn is not None:
                self.record_injected(key, drawn)
            return drawn

    def plan_task(self, task: SandboxTask) -> None:
        """Draw everything random about a new task from its request's stream, in a fixed order: its
        duration factor, then the faults it will meet (planned ones added)."""
        with self.lock:
            rng = self.stream_for(task.content_key)
            factor = self.duration_factor(rng)
            chosen = named.draw_task(rng, self.fault_plan.rates) if self.fault_plan.rates else []
            for name in named.TASK_FAULTS:
                if self.planned_named[name] > 0 and name not in chosen:
                    if name in named.TERMINAL_FAULTS and any(c in named.TERMINAL_FAULTS for c in chosen):
                        continue
                    self.planned_named[name] -= 1
                    chosen.append(name)
            task.planned = chosen
            task.extra["duration_factor"] = factor

    def meets(self, task: SandboxTask, name: str) -> bool:
        """Whether the task was planned to meet `name` and has not met it yet."""
        with self.lock:
            return name in task.planned and name not in task.injected

    def fire(self, task: SandboxTask, name: str) -> bool:
        """Mark a planned fault as met (once); False when it was not planned or already met."""
        with self.lock:
            if name not in task.planned or name in task.injected:
                return False
            task.injected.append(name)
            self.record_injected(task.content_key, name)
            return True

    def record_injected(self, key: str, name: str) -> None:
        with self.lock:
            self.injected[name] += 1
            self.injected_by_input[key].append(name)

    def charge_for(self, task: SandboxTask, *, failed: bool) -> float:
        """What a finished task costs: the estimate moved by `price.drift`; a failed task nothing,
        unless it meets `charge_failed`."""
        if failed and not self.fire(task, "charge_failed"):
            return 0.0
        return round(task.estimate * (1.0 + self.fault_plan.price_drift), 4)

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

    def refund_create(self, key_id: str) -> None:
        """Take back the create window's latest event: that create was rejected by a fault instead."""
        with self.lock:
            window = self.create_windows.get(key_id)
            if window is not None and window.events:
                window.events.pop()

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

    def duration_factor(self, rng: random.Random | None = None) -> float:
        jitter = self.config.duration_jitter
        source = rng or self.rng
        with self.lock:
            return source.lognormvariate(0.0, jitter) if jitter > 0 else 1.0

    def plan_duration(self, typical_seconds: float, factor: float | None = None) -> tuple[float, float]:
        """(waiting, generating) scaled seconds; together they follow the model's typical total time,
        as Kie's `costTime` covers the whole task, queue included. `factor` is the task's own draw
        (`plan_task`); without one it comes from the shared generator."""
        total = typical_seconds * (self.duration_factor() if factor is None else factor)
        waiting = min(3.0, 0.1 * total)
        return self.config.scaled(waiting), self.config.scaled(total - waiting)

    def add_task(self, task: SandboxTask) -> None:
        with self.lock:
            self.tasks[task.task_id] = task
            task.history.append((task.state, task.created_at))

    def set_state(self, task: SandboxTask, state: str, at: float | None = None) -> None:
        with self.lock:
            task.state = state
            task.history.append((state, self.now() if at is None else at))

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
                        "costTime": t.cost_time,
                        "contentKey": t.content_key,
                        "faults": list(t.injected),
                    }
                    for t in self.tasks.values()
                ],
                "injected": dict(sorted(self.injected.items())),
                "injectedByInput": {k: list(v) for k, v in sorted(self.injected_by_input.items())},
                "clock": {
                    "timeScale": self.config.time_scale,
                    "startedAt": self.now_ms(self.started),
                    "now": self.now_ms(),
                },
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
                "plannedFaults": {k: n for k, n in sorted(self.planned_named.items()) if n > 0},
                "faultRates": dict(self.fault_plan.rates),
                "priceDrift": self.fault_plan.price_drift,
            }
