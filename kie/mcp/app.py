"""The MCP server's state: settings, the ledger, the human's limits and the background job engine.

One `KieApp` per server process. The tools in `kie.mcp.server` are thin: they read the catalogue,
ask `consent` whether a spend may go ahead, and hand accepted work to the ledger and the engine here.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kie.client import AsyncKie
from kie.config import Settings
from kie.mcp.consent import Plan, SpendView
from kie.mcp.jobs import JobEngine, batch_options, committed, spent_since, start_of_today
from kie.mcp.limits import Limits
from kie.mcp.models import Budget
from kie.store import Ledger, NewJob

# Waits stay under the strictest hosts' 60 s limit for one tool call.
AUTO_WAIT = 40.0
MAX_WAIT = 50.0
SUBMIT_WAIT = 10.0
HEARTBEAT = 10.0


@dataclass
class KieApp:
    settings: Settings
    ledger: Ledger
    limits: Limits
    client_factory: Callable[[], AsyncKie]
    create_interval: float = 0.5
    transport: str = "stdio"
    sandbox: bool = False
    auto_wait: float = AUTO_WAIT
    heartbeat: float = HEARTBEAT
    session_id: str = field(default_factory=lambda: secrets.token_hex(6))
    session_spent: float = 0.0
    engine: JobEngine = field(init=False)
    _users: int = 0

    def __post_init__(self) -> None:
        self.engine = JobEngine(
            self.ledger,
            self.client_factory,
            create_interval=self.create_interval,
            deadline=self.settings.timeouts.task_deadline,
            callback_url=self.settings.callback_url,
        )

    @property
    def output_root(self) -> Path:
        if self.limits.output_dir is not None:
            return self.limits.output_dir
        return self.settings.home / ("sandbox" if self.sandbox else "") / "mcp-output"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[KieApp]:
        """The engine runs while any transport session is open (one for stdio, many over HTTP)."""
        if self._users == 0:
            await self.engine.start()
        self._users += 1
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0:
                await self.engine.close()

    def spend_view(self) -> SpendView:
        return SpendView(
            self.session_spent, spent_since(self.ledger, start_of_today()), committed(self.ledger)
        )

    def budget(self, view: SpendView | None = None) -> Budget:
        view = view or self.spend_view()
        limits = self.limits
        return Budget(
            auto_approve_credits=limits.auto_approve_credits,
            per_call=limits.max_credits_per_call,
            session_spent=view.session,
            session_cap=limits.max_credits_per_session,
            today_spent=view.today,
            day_cap=limits.max_credits_per_day,
            ledger_committed=view.committed,
            total_cap=limits.max_credits_total,
            read_only=limits.read_only,
            models_allowed=list(limits.models),
        )

    def gallery_url(self, *, batch_id: str | None = None, job_id: str | None = None) -> str:
        base = f"http://127.0.0.1:{self.limits.gallery_port}"
        if job_id:
            return f"{base}/jobs/{job_id}"
        return f"{base}/?batch={batch_id}" if batch_id else f"{base}/"

    def record_intent(self, plan: Plan) -> list[str]:
        """Write the consented jobs to the ledger (batch and rows in one transaction) and start them.
        A second call with the same key finds the same rows: nothing new is created or paid."""
        folder = self.output_root / plan.batch_id
        credits = plan.total or 0.0
        ids = self.ledger.add_batch(
            plan.batch_id,
            source="mcp",
            output_dir=str(folder),
            options=batch_options(plan.request_hash, credits, self.session_id, plan.key),
            jobs=[
                NewJob(
                    job.model,
                    job.input,
                    row_key=str(job.position),
                    row_line=job.position,
                    output_name=job.output_name,
                    estimated_credits=job.credits,
                )
                for job in plan.jobs
            ],
        )
        self.session_spent += credits
        self.engine.ensure_running(plan.batch_id)
        return ids

    def describe(self) -> dict[str, Any]:
        return {"store": self.ledger.display_url, "output": str(self.output_root), "sandbox": self.sandbox}
