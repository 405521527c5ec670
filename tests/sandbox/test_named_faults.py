"""Named faults as a plan: parsing, rates, counting in `GET /_sandbox/state`, and a seed that reproduces
a run's faults per task whatever the concurrency (`kie sandbox --faults … --seed 7`, twice)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kie.client import AsyncKie, Kie
from kie.client._base import sync_transport
from kie.config import Settings, Timeouts
from kie.errors import ConfigurationError, KieError
from kie.protocol.polling import PollPolicy
from kie.sandbox import faults
from kie.sandbox.server import SandboxServer
from tests.conftest import FAST_RETRY, TIME_SCALE, poll_policy

PLAN = (
    "create.429=0.15,create.500_after=0.05,status.transient_null=0.15,status.550=0.1,"
    "download.500=0.15,download.truncate=0.1,download.wrong_bytes=0.1,task.fail=0.1,price.drift=0.1"
)
ROWS = [("google/nano-banana", {"prompt": f"fox number {n}"}) for n in range(24)]
KIE = [sys.executable, "-c", "from kie.cli import main; main()"]
# A transient "recordInfo is null" past the grace window ends a wait with NotFoundError (see the
# report on flows.Watch.read); a wide window keeps this test about the seed, not about that.
PATIENT = PollPolicy(scale=TIME_SCALE, not_visible_grace=3000.0)


def test_plans_parse_from_text_and_mappings() -> None:
    plan = faults.parse_plan("create.429=0.02, download.truncate=0.5,price.drift=-0.1,status.501=0")
    assert plan.rates == {"create.429": 0.02, "download.truncate": 0.5} and plan.price_drift == -0.1
    assert faults.parse_plan({"charge_failed": 1}).rates == {"charge_failed": 1.0}
    assert faults.parse_plan(None).empty and faults.parse_plan("").empty


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("create.430=0.1", ["unknown fault 'create.430'", "create.429"]),
        ("create.429=2", ["create.429 must be a rate from 0 to 1"]),
        ("create.429", ["NAME=RATE"]),
        ("price.drift=20", ["price.drift must be a fraction from -0.9 to 10"]),
        ("download.stall=often", ["rate from 0 to 1", "'often'"]),
    ],
)
def test_bad_plans_are_one_sentence(text: str, words: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        faults.parse_plan(text)
    message = str(caught.value)
    assert all(w in message for w in words) and message.count(". ") == 0 and message.endswith(".")


def test_streams_depend_on_seed_and_content_only() -> None:
    body = {"model": "m", "input": {"prompt": "x"}, "callBackUrl": "https://a/1"}
    key = faults.content_key(body)
    assert key == faults.content_key({**body, "callBackUrl": "https://b/2"})  # batches vary the URL
    assert key != faults.content_key({"model": "m", "input": {"prompt": "y"}})
    draws = [faults.stream(7, key).random() for _ in range(2)]
    assert draws[0] == draws[1] and faults.stream(8, key).random() != draws[0]


def test_draws_follow_the_rates() -> None:
    rng = faults.stream(1, "k")
    picks = [faults.draw_create(rng, {"create.429": 0.3, "create.500": 0.1}) for _ in range(2000)]
    assert 500 < picks.count("create.429") < 700 and 120 < picks.count("create.500") < 280
    tasks = [faults.draw_task(rng, {"status.501": 1.0, "task.fail": 1.0}) for _ in range(10)]
    assert all(t == ["status.501"] for t in tasks)  # at most one terminal fault per task


@pytest.mark.parametrize("sandbox", [{"faults": "status.transient_null=1,download.500=1"}], indirect=True)
def test_rates_of_one_reach_every_task_and_are_counted(sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = Settings(api_key=sandbox.api_key, base_url=sandbox.url, upload_base_url=sandbox.url)
    with Kie(settings=settings, poll=poll_policy(), retry=FAST_RETRY, create_interval=None) as client:
        for n in range(3):
            client.generate("google/nano-banana", prompt=f"fox {n}", output_dir=tmp_path)
    with httpx.Client(base_url=sandbox.url, transport=sync_transport()) as http:
        state = http.get("/_sandbox/state").json()
    assert state["injected"] == {"download.500": 3, "status.transient_null": 3}
    assert all(t["faults"] == ["status.transient_null", "download.500"] for t in state["tasks"])
    assert state["faultRates"] == {"status.transient_null": 1.0, "download.500": 1.0}


def test_unknown_named_fault_over_http_is_refused(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.url, transport=sync_transport()) as http:
        answer = http.post("/_sandbox/faults", json={"name": "download.teapot"})
    assert answer.status_code == 400 and "download.500" in answer.json()["error"]


# -- the acceptance run: `kie sandbox --faults … --seed 7` twice, the same batch, other concurrency ---
@contextmanager
def kie_sandbox(*options: str) -> Iterator[dict[str, Any]]:
    """`kie sandbox … --json` as its own process: its first line says where it listens."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*KIE, "sandbox", "--port", "0", "--json", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise AssertionError(
                f"kie sandbox did not start: {process.stderr.read() if process.stderr else ''}"
            )
        yield json.loads(line)
    finally:
        process.terminate()
        process.wait(timeout=10)


def settings_for(info: dict[str, Any]) -> Settings:
    return Settings(
        api_key=info["api_key"],
        base_url=info["url"],
        upload_base_url=info["url"],
        timeouts=Timeouts(connect=2, read=5, write=5, pool=5, task_deadline=60),
    )


def all_at_once(info: dict[str, Any], folder: Path) -> list[Any]:
    async def main() -> list[Any]:
        async with AsyncKie(
            settings=settings_for(info), poll=PATIENT, retry=FAST_RETRY, create_interval=None
        ) as client:
            return await client.generate_many(ROWS, output_dir=folder)

    return asyncio.run(main())


def one_by_one_reversed(info: dict[str, Any], folder: Path) -> list[Any]:
    outcomes: list[Any] = []
    with Kie(
        settings=settings_for(info), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
    ) as client:
        for model, values in reversed(ROWS):
            try:
                outcomes.append(client.generate(model, values, output_dir=folder))
            except KieError as exc:
                outcomes.append(exc)
    return outcomes[::-1]


def state_of(info: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=info["url"], transport=sync_transport()) as http:
        state: dict[str, Any] = http.get("/_sandbox/state").json()
    return state


def test_the_same_seed_injects_the_same_faults_per_task_at_any_concurrency(tmp_path: Path) -> None:
    options = ("--faults", PLAN, "--seed", "7", "--time-scale", "0.002", "--rate-limit", "off")
    with kie_sandbox(*options) as first:
        concurrent = all_at_once(first, tmp_path / "a")
        a = state_of(first)
    with kie_sandbox(*options) as second:
        sequential = one_by_one_reversed(second, tmp_path / "b")
        b = state_of(second)
    assert a["injectedByInput"] == b["injectedByInput"]
    assert a["injected"] == b["injected"] and len(a["injected"]) >= 4  # a real mix of faults
    per_task = lambda s: {t["contentKey"]: t["faults"] for t in s["tasks"]}  # noqa: E731
    assert per_task(a) == per_task(b)
    assert a["spent"] == pytest.approx(b["spent"])  # the same tasks succeeded, at the drifted price
    assert [type(o).__name__ for o in concurrent] == [type(o).__name__ for o in sequential]
    with kie_sandbox(
        "--faults", PLAN, "--seed", "8", "--time-scale", "0.002", "--rate-limit", "off"
    ) as other:
        all_at_once(other, tmp_path / "c")
        assert state_of(other)["injectedByInput"] != a["injectedByInput"]  # the seed decides


def test_a_bad_faults_option_is_one_sentence_and_exit_2() -> None:
    done = subprocess.run(
        [*KIE, "sandbox", "--port", "0", "--faults", "create.430=0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        done.returncode == 2
        and "unknown fault 'create.430'" in done.stderr
        and "Traceback" not in done.stderr
    )
    done = subprocess.run(
        [*KIE, "sandbox", "--port", "0", "--recordinfo-fields", "2027"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--recordinfo-fields must be 2026-09" in done.stderr
