"""Faults as a reproducible plan: documented names, rates, and one random stream per task.

`kie sandbox --faults 'create.429=0.02,download.truncate=0.02,price.drift=0.1' --seed 7` (or
`SandboxConfig(faults=...)`) gives every named fault a rate. Two things make a seed reproduce a run
whatever the concurrency:

- Streams are per request content, not shared: a create body (without its callback URL, which batches
  make unique per job) is hashed with the seed into its own `random.Random`. Every decision about that
  row (each create attempt's fault, then the task's duration and the faults it will meet) is drawn
  from that stream in a fixed order, so no other task's timing can shift it.
- Every fault a task will meet is drawn when the task is created and bound to a point the client
  always reaches (its first status read, the first download of each result file, its callback
  deliveries), never to "the n-th request", whose count depends on polling timing.

`POST /_sandbox/faults {"name": "download.403", "times": 2}` plans a named fault for the next two
create attempts (create faults) or the next two tasks (all others), ahead of the rates.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kie.errors import ConfigurationError

# Every fault name with the real-world event it stands for. The order is the order of the draws, so it
# is part of what a seed reproduces: add new names at the end of their group.
CREATE_FAULTS: dict[str, str] = {
    "create.429": "the account's create limit: rejected, nothing created",
    "create.433": "a sub-key's usage cap: rejected, nothing created",
    "create.455": "maintenance: rejected, nothing created",
    "create.500": "a 500 before any task exists (Kie also uses 500 for parameter errors)",
    "create.505": "the feature is disabled: rejected, nothing created",
    "create.500_after": "the task was created, then the answer was a 500",
    "create.drop": "the connection is cut before anything happens",
    "create.drop_after_create": "the task was created, then the connection was cut before the answer",
    "create.malformed": "a proxy's HTML page with HTTP 200 instead of the envelope; nothing created",
}
STATUS_FAULTS: dict[str, str] = {
    "status.transient_null": "recordInfo answers 'recordInfo is null' for a task that exists",
    "status.550": "a status read answered 550 (queue full), once",
    "status.401": "a status read answered 401 in the middle of a run, once",
    "status.402": "a status read answered 402 in the middle of a run, once",
    "status.501": "the task failed: recordInfo answers envelope code 501 (Generation failed)",
    "status.408": "the task failed: recordInfo answers envelope code 408 (no result for 10 minutes)",
    "status.451": "the task failed: its input image could not be fetched (failCode 451)",
    "task.fail": "the task failed: state fail with failCode 500",
}
# Faults that end the task in failure; a task meets at most one, the first drawn.
TERMINAL_FAULTS = ("status.501", "status.408", "status.451", "task.fail")
DOWNLOAD_FAULTS: dict[str, str] = {
    "download.500": "the file host answers 500 on the first download",
    "download.403": "the file host answers 403 (a signed link refused) on the first download",
    "download.truncate": "the body stops short of its Content-Length and the connection closes",
    "download.stall": "the body stops half way and nothing more arrives",
    "download.wrong_bytes": "HTTP 200 with an HTML error page instead of the file",
    "download.expired": "the result links are already expired when the task succeeds",
}
CALLBACK_FAULTS: dict[str, str] = {
    "callback.timeout_after": "the receiver got the callback, but the answer came too late; resent",
    "callback.duplicate": "the callback is delivered twice, the second signed anew",
    "callback.early": "the callback arrives before recordInfo shows the task finished",
    "callback.out_of_order": "a task's callbacks arrive last first (Suno's stages)",
    "callback.disagrees": "the callback body says the opposite of the task's record",
}
CHARGE_FAULTS: dict[str, str] = {
    "charge_failed": "a failed task is charged anyway",
}
TASK_FAULTS: dict[str, str] = {**STATUS_FAULTS, **DOWNLOAD_FAULTS, **CALLBACK_FAULTS, **CHARGE_FAULTS}
FAULTS: dict[str, str] = {**CREATE_FAULTS, **TASK_FAULTS}
KNOBS = {"price.drift": "every charge differs from the catalogue estimate by this fraction"}

# Faults a task meets once, on its first status read (any family): the envelope that read gets.
TRANSIENT_STATUS: dict[str, tuple[int, str]] = {
    "status.transient_null": (422, "recordInfo is null"),
    "status.550": (550, "Connection Denied – Task was rejected due to a full queue"),
    "status.401": (401, "Unauthorized – Authentication failed."),
    "status.402": (402, "Credits insufficient. Please top up and try again."),
}
# Terminal faults Kie reports as the envelope code of every status read once the task has ended.
TERMINAL_CODES: dict[str, tuple[int, str]] = {
    "status.501": (501, "Generation failed"),
    "status.408": (408, "Upstream returned no result for over 10 minutes"),
}
FAILURES: dict[str, tuple[str, str]] = {  # terminal fault → (failCode, failMsg) in the record
    "status.501": ("501", "Generation failed"),
    "status.408": ("408", "Upstream returned no result for over 10 minutes"),
    "status.451": (
        "451",
        "Failed to fetch the image. Kindly verify any access limits set by you or your service provider.",
    ),
    "task.fail": ("500", "Internal Error, Please try again later"),
}


@dataclass(frozen=True)
class FaultPlan:
    rates: dict[str, float] = field(default_factory=dict)
    price_drift: float = 0.0

    @property
    def empty(self) -> bool:
        return not self.rates and not self.price_drift


def parse_plan(spec: str | Mapping[str, Any] | None) -> FaultPlan:
    """`'create.429=0.02,price.drift=0.1'` (or the same as a mapping) as a `FaultPlan`.

    Raises:
        ConfigurationError: an unknown name, or a rate outside 0…1 (a drift outside -0.9…10).
    """
    if spec is None:
        return FaultPlan()
    items: list[tuple[str, Any]]
    if isinstance(spec, str):
        items = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            key, sep, text = part.partition("=")
            if not sep:
                raise ConfigurationError(
                    f"--faults needs NAME=RATE pairs such as create.429=0.02, not {part!r}; "
                    "separate pairs with commas."
                )
            items.append((key.strip(), text.strip()))
    else:
        items = list(spec.items())
    rates: dict[str, float] = {}
    drift = 0.0
    for name, raw in items:
        if name not in FAULTS and name not in KNOBS:
            known = ", ".join([*FAULTS, *KNOBS])
            raise ConfigurationError(f"--faults has an unknown fault {name!r}; use one of: {known}.")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if name == "price.drift":
            if not (math.isfinite(value) and -0.9 <= value <= 10):
                raise ConfigurationError(
                    f"--faults price.drift must be a fraction from -0.9 to 10 (0.1 charges 10 % more "
                    f"than the estimate), not {raw!r}."
                )
            drift = value
            continue
        if not (math.isfinite(value) and 0 <= value <= 1):
            raise ConfigurationError(
                f"--faults {name} must be a rate from 0 to 1 (0.02 is 2 % of tasks), not {raw!r}."
            )
        if value > 0:
            rates[name] = value
    return FaultPlan(rates, drift)


def content_key(body: Any) -> str:
    """The identity of a create request for its random stream: the body without callback URLs (a batch
    gives every job its own), canonical JSON, hashed. Equal rows share a stream: they are
    indistinguishable to the sandbox anyway."""
    if isinstance(body, Mapping):
        body = {k: v for k, v in body.items() if k not in ("callBackUrl", "calBackUrl", "callbackUrl")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stream(seed: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def draw_create(rng: random.Random, rates: Mapping[str, float]) -> str | None:
    """One create attempt's fault: a single draw, partitioned by the create rates in `FAULTS` order."""
    u = rng.random()
    edge = 0.0
    for name in CREATE_FAULTS:
        edge += rates.get(name, 0.0)
        if u < edge:
            return name
    return None


def draw_task(rng: random.Random, rates: Mapping[str, float]) -> list[str]:
    """The faults one task will meet, one draw per name in `FAULTS` order (drawn whether or not its
    rate is set, so adding a rate for one name does not reshuffle the others)."""
    chosen: list[str] = []
    for name in TASK_FAULTS:
        u = rng.random()
        if u < rates.get(name, 0.0):
            if name in TERMINAL_FAULTS and any(c in TERMINAL_FAULTS for c in chosen):
                continue
            chosen.append(name)
    return chosen
