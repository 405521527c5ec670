"""`kie batch …` and `kie jobs …`: durable batches over the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from kie.cli._common import (
    console,
    err_console,
    fail,
    fmt_credits,
    fmt_usd,
    poll_scale,
    print_json,
    print_problem,
)
from kie.client import AsyncKie
from kie.config import Settings, load_settings
from kie.errors import KieError
from kie.protocol.polling import PollPolicy
from kie.runner.engine import BatchRunner, RunOptions, RunResult
from kie.runner.plan import Plan, batch_id_for, plan_batch
from kie.sandbox.server import SandboxServer
from kie.sandbox.state import SandboxConfig
from kie.store import ABANDONED, FAILED, PENDING, STATES, UNKNOWN, Ledger, Record, default_store_url

JsonOpt = Annotated[bool, typer.Option("--json", help="Emit JSON (events, one per line, while running).")]
PublicUrlOpt = Annotated[
    str | None, typer.Option("--public-url", help="URL of your `kie serve` receiver: per-job callbacks.")
]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Ledger URL (default: SQLite in KIE_HOME).")]

batch_app = typer.Typer(
    help="Run JSONL/CSV batches that resume, never pay twice and stay in budget.", no_args_is_help=True
)
jobs_app = typer.Typer(help="Inspect and resolve jobs in the ledger.", no_args_is_help=True)


def open_ledger(store: str | None, settings: Settings) -> Ledger:
    return Ledger(store or settings.store_url or default_store_url(settings.home))


def _rate(text: str) -> float:
    count, _, window = text.partition("/")
    try:
        n, seconds = int(count), float(window)
    except ValueError:
        fail(f"--rate must look like 20/10 (20 creates per 10 seconds), got {text!r}.")
    if n < 1 or seconds <= 0:
        fail(f"--rate needs a positive count and window, got {text!r}.")
    return seconds / n


@contextlib.contextmanager
def _client(settings: Settings, use_sandbox: bool, json_: bool) -> Iterator[tuple[AsyncKie, Settings]]:
    """An async client for Kie, or for an in-process sandbox (with a notice) when there is no key."""
    sandbox: SandboxServer | None = None
    scale = poll_scale()
    if use_sandbox or not settings.api_key:
        scale = 0.1
        sandbox = SandboxServer(SandboxConfig(time_scale=scale)).start()
        settings = settings.with_(api_key=sandbox.api_key, base_url=sandbox.url, upload_base_url=sandbox.url)
        if not json_:
            err_console.print(
                f"[cyan]No KIE_API_KEY (or --sandbox): using the built-in sandbox at {sandbox.url}.[/]"
            )
    client = AsyncKie(settings=settings, poll=PollPolicy(scale=scale), create_interval=None)
    try:
        yield client, settings
    finally:
        if sandbox is not None:
            sandbox.stop()


def _print_plan(plan: Plan, settings: Settings, balance: float | None) -> None:
    table = Table(title="Plan")
    for column in ("model", "jobs", "credits", "USD"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model in sorted(plan.rows_by_model):
        credits = plan.credits_by_model[model]
        table.add_row(
            model,
            str(plan.rows_by_model[model]),
            fmt_credits(credits),
            fmt_usd(credits * settings.usd_per_credit),
        )
    table.add_section()
    table.add_row(
        "total",
        str(len(plan.jobs)),
        fmt_credits(plan.known_credits),
        fmt_usd(plan.known_credits * settings.usd_per_credit),
    )
    console.print(table)
    if plan.unknown_price_rows:
        console.print(
            f"[yellow]{len(plan.unknown_price_rows)} rows have an unknown price (--allow-unknown-price).[/]"
        )
    if balance is not None:
        note = (
            "" if balance >= plan.known_credits else "  [red]— less than this batch is estimated to cost[/]"
        )
        console.print(f"balance: {fmt_credits(balance)} credits{note}")


class Progress:
    """Counts per state, credits against the budget, rate and ETA; or JSON lines with --json."""

    def __init__(self, ledger: Ledger, batch_id: str, budget: float | None, json_: bool) -> None:
        self.ledger, self.batch_id, self.budget, self.json = ledger, batch_id, budget, json_
        self.started = time.monotonic()
        self.done_at_start = ledger.counts(batch_id).get("done", 0)

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        if self.json:
            sys.stdout.write(json.dumps({"event": kind, "at": time.time(), **data}, default=str) + "\n")
            sys.stdout.flush()

    def __rich__(self) -> Table:
        counts = self.ledger.counts(self.batch_id)
        spent, flight = self.ledger.spend(self.batch_id)
        total = sum(counts.values())
        finished = sum(counts.get(s, 0) for s in ("done", "failed", "rejected", "abandoned"))
        elapsed = max(1e-6, time.monotonic() - self.started)
        rate = (counts.get("done", 0) - self.done_at_start) / elapsed * 60
        remaining = total - finished - counts.get("unknown", 0)
        eta = f"{remaining / (rate / 60):.0f}s" if rate > 0 and remaining else "—"
        table = Table(title=f"batch {self.batch_id}", show_header=True)
        for state in STATES:
            table.add_column(state, justify="right")
        table.add_row(*(str(counts.get(s, 0)) for s in STATES))
        budget = f" / {fmt_credits(self.budget)}" if self.budget is not None else ""
        table.caption = (
            f"spent {fmt_credits(spent)}{budget} credits, {fmt_credits(flight)} in flight · "
            f"{rate:.1f} done/min · ETA {eta}"
        )
        return table


def _run(
    ledger: Ledger, batch_id: str, options: RunOptions, settings: Settings, json_: bool, use_sandbox: bool
) -> RunResult:
    progress = Progress(ledger, batch_id, options.max_credits, json_)

    async def main() -> RunResult:
        with _client(settings, use_sandbox, json_) as (client, _):
            async with client:
                runner = BatchRunner(ledger, client, batch_id, options, progress.event)
                loop = asyncio.get_running_loop()
                presses = 0

                def on_sigint() -> None:
                    nonlocal presses
                    presses += 1
                    if presses == 1:
                        err_console.print(
                            "Stopping submissions; waiting for running tasks and downloads. "
                            "Press Ctrl-C again to exit now (the ledger stays consistent)."
                        )
                        runner.stop_submitting("interrupted")
                    else:
                        for task in asyncio.all_tasks(loop):
                            task.cancel()

                loop.add_signal_handler(signal.SIGINT, on_sigint)
                return await runner.run()

    live = (
        contextlib.nullcontext()
        if json_
        else Live(progress, console=err_console, refresh_per_second=4, transient=True)
    )
    try:
        with live:
            return asyncio.run(main())
    except asyncio.CancelledError:
        err_console.print(f"Exited. Resume with: kie batch resume {batch_id}")
        raise typer.Exit(130) from None


def _report(result: RunResult, batch_id: str, options: RunOptions, json_: bool) -> None:
    if json_:
        print_json(
            {
                "batch": batch_id,
                "counts": result.counts,
                "stopped": result.stopped_reason,
                "spent": result.spent,
                "balance_spent": result.balance_spent,
                "in_flight": result.in_flight,
                "manifest": str(options.output_dir / "manifest.jsonl"),
            }
        )
        return
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items()))
    balance = (
        ""
        if result.balance_spent is None
        else f" (the account balance fell by {fmt_credits(result.balance_spent)} since the batch started)"
    )
    console.print(f"batch {batch_id}: {counts}; {fmt_credits(result.spent)} credits spent{balance}")
    console.print(f"manifest: {options.output_dir / 'manifest.jsonl'}")
    if result.counts.get(UNKNOWN):
        console.print(
            f"[yellow]{result.counts[UNKNOWN]} jobs are unknown (a create's outcome was lost); "
            "see `kie jobs list --state unknown` and resolve each with `kie jobs resolve`.[/]"
        )
    if result.stopped_reason:
        console.print(
            f"[yellow]Stopped submitting: {result.stopped_reason}. Continue: kie batch resume {batch_id}[/]"
        )


@batch_app.command("run")
def batch_run(
    file: Annotated[Path, typer.Argument(help="JSONL (one object per row) or CSV (columns are fields).")],
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Default model; repeat with --matrix.")
    ] = None,
    matrix: Annotated[bool, typer.Option("--matrix", help="Run every row against every --model.")] = False,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for results and manifest.jsonl.")
    ] = Path("kie-output"),
    max_credits: Annotated[
        float | None, typer.Option("--max-credits", help="Never commit more than this.")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Running tasks at once.")] = 100,
    rate: Annotated[str, typer.Option("--rate", help="Account create limit N/SECONDS.")] = "20/10",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and estimate only.")] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Submit valid rows even if some are not.")
    ] = False,
    allow_unknown_price: Annotated[
        bool, typer.Option("--allow-unknown-price", help="Submit rows with no known price.")
    ] = False,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Run against the built-in sandbox.")] = False,
    public_url: PublicUrlOpt = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Validate every row, estimate, then submit at the account's pace; rerunning the same file resumes."""
    settings = load_settings()
    if not file.is_file():
        fail(f"{file} is not a readable file; check the path.")
    models = [m.strip() for item in (model or []) for m in item.split(",") if m.strip()]
    if matrix and len(models) < 1:
        fail("--matrix needs the models to compare: --model a --model b (or --model a,b).")
    try:
        plan = plan_batch(
            file,
            default_model=None if matrix else (models[0] if models else None),
            matrix_models=models if matrix else (),
            overrides=settings.price_overrides,
            allow_unknown_price=allow_unknown_price,
        )
    except KieError as exc:
        fail(str(exc))
    for error in plan.errors:
        print_problem(error.line, error.message)
    if plan.errors and not skip_invalid:
        fail(f"{len(plan.errors)} invalid rows; nothing was submitted. Fix them or pass --skip-invalid.")
    budget = max_credits if max_credits is not None else settings.max_credits
    if not json_:
        _print_plan(plan, settings, None)
    if dry_run:
        if json_:
            print_json(
                {
                    "jobs": len(plan.jobs),
                    "credits": plan.known_credits,
                    "by_model": plan.credits_by_model,
                    "unknown_price_rows": plan.unknown_price_rows,
                    "invalid": [e.line for e in plan.errors],
                }
            )
        return
    if budget is not None and plan.known_credits > budget and not json_:
        err_console.print(
            f"[yellow]The estimate ({fmt_credits(plan.known_credits)}) exceeds --max-credits "
            f"{fmt_credits(budget)}: submitting stops at the cap.[/]"
        )
    ledger = open_ledger(store, settings)
    batch_id = batch_id_for(file)
    options = RunOptions(
        output_dir=output.resolve(),
        max_credits=budget,
        concurrency=concurrency,
        create_interval=_rate(rate),
        allow_unknown_price=allow_unknown_price,
        callback_url=settings.callback_url,
        webhook_base=public_url,
        deadline=settings.timeouts.task_deadline,
    )
    ledger.ensure_batch(
        batch_id,
        source=str(file.resolve()),
        output_dir=str(options.output_dir),
        options={
            "max_credits": budget,
            "concurrency": concurrency,
            "rate": rate,
            "allow_unknown_price": allow_unknown_price,
        },
    )
    ledger.add_jobs(batch_id, plan.jobs)
    result = _run(ledger, batch_id, options, settings, json_, sandbox)
    _report(result, batch_id, options, json_)


def _batch_or_fail(ledger: Ledger, batch_id: str) -> Record:
    batch = ledger.batch(batch_id)
    if batch is None:
        fail(f"No batch {batch_id!r} in {ledger.url}; `kie jobs list` shows known batches.")
    return batch


@batch_app.command("resume")
def batch_resume(
    batch_id: Annotated[str, typer.Argument(help="Batch id (shown by kie batch run).")],
    max_credits: Annotated[
        float | None, typer.Option("--max-credits", help="New cap (default: as before).")
    ] = None,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Run against the built-in sandbox.")] = False,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Continue a paused or interrupted batch from the ledger (after a top-up, a crash or Ctrl-C)."""
    settings = load_settings()
    ledger = open_ledger(store, settings)
    batch = _batch_or_fail(ledger, batch_id)
    saved = dict(batch["options"] or {})
    options = RunOptions(
        output_dir=Path(batch["output_dir"] or "kie-output"),
        max_credits=max_credits if max_credits is not None else saved.get("max_credits"),
        concurrency=int(saved.get("concurrency") or 100),
        create_interval=_rate(str(saved.get("rate") or "20/10")),
        allow_unknown_price=bool(saved.get("allow_unknown_price")),
        callback_url=settings.callback_url,
        deadline=settings.timeouts.task_deadline,
    )
    if max_credits is not None:
        ledger.ensure_batch(
            batch_id,
            source=batch["source"],
            output_dir=batch["output_dir"],
            options={**saved, "max_credits": max_credits},
        )
    result = _run(ledger, batch_id, options, settings, json_, sandbox)
    _report(result, batch_id, options, json_)


@batch_app.command("status")
def batch_status(
    batch_id: Annotated[str, typer.Argument()], store: StoreOpt = None, json_: JsonOpt = False
) -> None:
    """Counts per state, credits and why a batch paused."""
    settings = load_settings()
    ledger = open_ledger(store, settings)
    batch = _batch_or_fail(ledger, batch_id)
    counts = ledger.counts(batch_id)
    spent, flight = ledger.spend(batch_id)
    start, end = batch["balance_start"], batch["balance_end"]
    if json_:
        print_json(
            {
                "batch": batch_id,
                "counts": counts,
                "spent": spent,
                "in_flight": flight,
                "balance_start": start,
                "balance_end": end,
                "paused": batch["paused_reason"],
                "source": batch["source"],
                "output_dir": batch["output_dir"],
            }
        )
        return
    console.print(f"batch {batch_id} ({batch['source']}) → {batch['output_dir']}")
    console.print("  " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATES if counts.get(s)))
    console.print(f"  {fmt_credits(spent)} credits spent, {fmt_credits(flight)} in flight")
    if start is not None and end is not None:
        console.print(
            f"  account balance {fmt_credits(start)} → {fmt_credits(end)} "
            f"({fmt_credits(start - end)} fewer, including any other use of the account meanwhile)"
        )
    if batch["paused_reason"]:
        console.print(f"  paused: {batch['paused_reason']} — continue with `kie batch resume {batch_id}`")


@batch_app.command("retry-failed")
def batch_retry_failed(batch_id: Annotated[str, typer.Argument()], store: StoreOpt = None) -> None:
    """Queue failed generations again (failed tasks were not charged); run `kie batch resume` next."""
    settings = load_settings()
    ledger = open_ledger(store, settings)
    _batch_or_fail(ledger, batch_id)
    moved = sum(
        ledger.transition(
            j["id"], FAILED, PENDING, {"retry": True}, task_id=None, error_code=None, error_message=None
        )
        for j in ledger.jobs(batch_id=batch_id, states=[FAILED])
    )
    console.print(f"{moved} failed jobs queued again; run: kie batch resume {batch_id}")


@jobs_app.command("list")
def jobs_list(
    state: Annotated[str | None, typer.Option("--state", help=f"One of {', '.join(STATES)}.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Only this batch.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 200,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Jobs in the ledger, oldest first."""
    if state is not None and state not in STATES:
        fail(f"--state must be one of {', '.join(STATES)}, got {state!r}.")
    settings = load_settings()
    ledger = open_ledger(store, settings)
    rows = ledger.jobs(batch_id=batch, states=[state] if state else None, limit=limit)
    if json_:
        print_json(
            [
                {
                    k: r[k]
                    for k in (
                        "id",
                        "batch_id",
                        "row_key",
                        "step",
                        "model",
                        "state",
                        "task_id",
                        "estimated_credits",
                        "actual_credits",
                        "error_message",
                    )
                }
                for r in rows
            ]
        )
        return
    table = Table(title=f"{len(rows)} jobs")
    for column in ("job", "batch", "row", "model", "state", "task", "credits"):
        table.add_column(column, overflow="fold")
    for r in rows:
        credits = r["actual_credits"] if r["actual_credits"] is not None else r["estimated_credits"]
        table.add_row(
            r["id"][:12],
            r["batch_id"] or "",
            str(r["row_key"] or ""),
            r["model"],
            r["state"],
            r["task_id"] or "",
            fmt_credits(credits),
        )
    console.print(table)


@jobs_app.command("show")
def jobs_show(
    job: Annotated[str, typer.Argument(help="Job id (or prefix) or task id.")],
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """One job: input, state history, files and errors."""
    settings = load_settings()
    ledger = open_ledger(store, settings)
    row = ledger.find(job)
    if row is None:
        fail(f"No job matches {job!r}; `kie jobs list` shows them.")
    files = [dict(f) for f in ledger.files_of(row["id"])]
    history = [dict(e) for e in ledger.events_of(row["id"])]
    if json_:
        print_json({**dict(row), "files": files, "events": history})
        return
    console.print(f"job {row['id']} · {row['model']} · {row['state']} · task {row['task_id'] or '—'}")
    console.print(f"input: {json.dumps(row['input'])[:500]}")
    for e in history:
        console.print(
            f"  {time.strftime('%H:%M:%S', time.localtime(e['at']))} {e['from_state'] or '·'} → "
            f"{e['to_state']}"
        )
    for f in files:
        console.print(f"  file {f['path']} ({f['size']} bytes, sha256 {f['sha256'][:12]}…)")
    if row["error_message"]:
        console.print(f"  error: {row['error_message']}")


@jobs_app.command("resolve")
def jobs_resolve(
    job: Annotated[str, typer.Argument(help="An unknown job's id (or prefix).")],
    resubmit: Annotated[bool, typer.Option("--resubmit", help="Submit it again (may pay twice).")] = False,
    abandon: Annotated[bool, typer.Option("--abandon", help="Give it up.")] = False,
    task_id: Annotated[str | None, typer.Option("--task-id", help="You found its task: attach it.")] = None,
    store: StoreOpt = None,
) -> None:
    """Decide what happens to a job whose create outcome was lost."""
    if sum([resubmit, abandon, task_id is not None]) != 1:
        fail("Choose exactly one of --resubmit, --abandon or --task-id TASK.")
    settings = load_settings()
    ledger = open_ledger(store, settings)
    row = ledger.find(job)
    if row is None:
        fail(f"No job matches {job!r}.")
    if row["state"] != UNKNOWN:
        fail(f"Job {row['id']} is {row['state']}, not unknown; only unknown jobs need resolving.")
    at_risk = fmt_credits(row["estimated_credits"])
    if task_id is not None:
        ledger.transition(row["id"], UNKNOWN, "running", {"resolved": "task id given"}, task_id=task_id)
        console.print(f"Job {row['id']} is attached to task {task_id}; `kie batch resume` downloads it.")
    elif resubmit:
        ledger.transition(row["id"], UNKNOWN, PENDING, {"resolved": "resubmit"}, task_id=None)
        console.print(
            f"Job {row['id']} queued again. If the lost create did reach Kie, you pay twice: "
            f"{at_risk} credits at risk. Run `kie batch resume {row['batch_id']}`."
        )
    else:
        ledger.transition(row["id"], UNKNOWN, ABANDONED, {"resolved": "abandon"})
        console.print(f"Job {row['id']} abandoned ({at_risk} credits may have been spent on it).")


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
    app.add_typer(jobs_app, name="jobs")
