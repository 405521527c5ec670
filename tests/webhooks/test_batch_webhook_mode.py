"""A batch in webhook mode: callbacks finish the jobs; polling is only a slow safety net."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from kie.client import AsyncKie
from kie.runner.engine import BatchRunner, RunOptions, RunResult
from kie.runner.plan import plan_batch
from kie.sandbox.server import SandboxServer
from kie.store import DONE, Ledger
from kie.webhooks import Receiver
from tests.conftest import FAST_RETRY, client_settings, poll_policy
from tests.receiver import Served

KEY = "whk-batch"
SCALE = 0.05  # the safety-net poll comes at 3x the model time (1.5 s here): callbacks, even on a loaded
# machine, must be able to beat it for "callbacks do the work" to be what is measured
pytestmark = pytest.mark.parametrize("sandbox", [{"webhook_key": KEY, "time_scale": SCALE}], indirect=True)


def run(sandbox: SandboxServer, ledger: Ledger, served: Served, tmp_path: Path, rows: int) -> RunResult:
    batch = tmp_path / "b.jsonl"
    batch.write_text(
        "\n".join(
            json.dumps({"id": f"r{n}", "model": "z-image", "prompt": f"p{n}", "aspect_ratio": "1:1"})
            for n in range(rows)
        )
    )
    ledger.ensure_batch("b", source=str(batch), output_dir=str(tmp_path / "out"), options={})
    ledger.add_jobs("b", plan_batch(batch).jobs)

    async def main() -> RunResult:
        async with AsyncKie(
            settings=client_settings(sandbox), poll=poll_policy(SCALE), retry=FAST_RETRY, create_interval=None
        ) as client:
            options = RunOptions(output_dir=tmp_path / "out", create_interval=0.0, webhook_base=served.url)
            return await BatchRunner(ledger, client, "b", options).run()

    return asyncio.run(main())


def receiver(sandbox: SandboxServer, ledger: Ledger, tmp_path: Path) -> Served:
    settings = client_settings(sandbox)
    return Served(
        Receiver(
            ledger=ledger,
            settings=settings,
            output_dir=tmp_path / "out",
            key=KEY,
            # The receiver paces its re-reads on the same time scale as the sandbox, as in production.
            client_factory=lambda: AsyncKie(settings=settings, poll=poll_policy(SCALE), create_interval=None),
        )
    )


def test_callbacks_do_the_work(sandbox: SandboxServer, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    with receiver(sandbox, ledger, tmp_path) as served:
        result = run(sandbox, ledger, served, tmp_path, 8)
    assert result.counts == {DONE: 8}
    assert all(c.status == 200 for c in sandbox.state.callbacks) and len(sandbox.state.callbacks) == 8
    assert all(j["callback_token"] in sandbox.state.tasks[j["task_id"]].callback_url for j in ledger.jobs())
    # One authoritative re-read per job by the receiver; the runner's safety net rarely needed to poll.
    assert sandbox.state.requests_for("recordInfo") <= 8 * 1.5


def test_lost_callbacks_still_finish_by_polling(sandbox: SandboxServer, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    sandbox.state.inject("callback", "callback_fail", times=1000)  # every delivery attempt fails
    with receiver(sandbox, ledger, tmp_path) as served:
        result = run(sandbox, ledger, served, tmp_path, 4)
    assert result.counts == {DONE: 4}
    assert served.receiver.accepted == 0


def test_the_run_ends_with_its_last_callback_not_its_safety_net(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """The safety-net poll comes at three times the model's time; a run whose callbacks all arrived
    must end without waiting for it (it used to wait until every dropped watch fell due)."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    finished: list[float] = []
    with receiver(sandbox, ledger, tmp_path) as served:
        served.receiver.on_event = lambda kind, data: (
            finished.append(time.monotonic()) if kind == "done" else None
        )
        result = run(sandbox, ledger, served, tmp_path, 6)
        ended = time.monotonic()
    assert result.counts == {DONE: 6}
    safety_net = 3.0 * 10 * SCALE  # z-image's typical 10 s, time-scaled
    assert ended - max(finished) < safety_net / 2
