"""`kie batch …` and `kie jobs …`: durable batches over the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from kie.cli._common import (
    BATCH_INCOMPLETE,
    INTERRUPTED,
    KIE_FAILED,
    OK,
    SECTION,
    USER_ERROR,
    console,
    emit_table,
    err_console,
    fail,
    fmt_credits,
    fmt_usd,
    one_sentence,
    print_json,
    print_problem,
)
from kie.cli.session import Session, open_ledger, session, settings_or_fail
from kie.config import Settings, budget_value
from kie.errors import ConfigurationError, KieError

if TYPE_CHECKING:
    from rich.table import Table

    from kie.client import AsyncKie
    from kie.runner.engine import Planner, RunOptions, RunResult
    from kie.runner.plan import Plan
    from kie.store import Ledger, Record

# The ledger's states, in the order a job moves through them (kept here so `--help` needs no ledger).
STATES = (
    "pending",
    "submitting",
    "running",
    "succeeded",
    "done",
    "failed",
    "rejected",
    "unknown",
    "abandoned",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Emit JSON (events, one per line, while running).")]
PublicUrlOpt = Annotated[
    str | None, typer.Option("--public-url", help="URL of your `kie serve` receiver: per-job callbacks.")
]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Ledger URL (default: SQLite in KIE_HOME).")]
SandboxOpt = Annotated[
    bool,
    typer.Option("--sandbox", help="Use the built-in sandbox and its own ledger: no account, no credits."),
]
BudgetOpt = Annotated[
    str | None,
    typer.Option("--max-credits", help="Never commit more than this many credits.", metavar="CREDITS"),
]

batch_app = typer.Typer(
    help="Run JSONL/CSV batches that resume, never pay twice and stay in budget.", no_args_is_help=True
)
jobs_app = typer.Typer(help="Inspect and resolve jobs in the ledger.", no_args_is_help=True)


def _rate(text: str) -> float:
    count, _, window = text.partition("/")
    try:
        n, seconds = int(count), float(window)
    except ValueError:
        fail(f"--rate must look like 20/10 (20 creates per 10 seconds), got {text!r}.")
    if n < 1 or seconds <= 0:
        fail(f"--rate needs a positive count and window, got {text!r}.")
    return seconds / n


def _window(text: str) -> float:
    return float(text.partition("/")[2])


def _budget(text: str | None) -> float | None:
    try:
        return budget_value(text, "--max-credits")
    except ConfigurationError as exc:
        fail(exc)


@contextlib.contextmanager
def _client(sess: Session) -> Iterator[AsyncKie]:
    from kie.client import AsyncKie
    from kie.protocol.polling import PollPolicy

    yield AsyncKie(settings=sess.settings, poll=PollPolicy(scale=sess.scale), create_interval=None)


def _print_plan(plan: Plan, settings: Settings) -> None:
    rate = settings.usd_per_credit
    rows: list[tuple[Any, ...]] = [
        (
            model,
            plan.rows_by_model[model],
            fmt_credits(plan.credits_by_model[model]),
            fmt_usd(plan.credits_by_model[model] * rate),
        )
        for model in sorted(plan.rows_by_model)
    ]
    rows += [
        SECTION,
        ("total", plan.job_count, fmt_credits(plan.known_credits), fmt_usd(plan.known_credits * rate)),
    ]
    emit_table(
        ("model", "jobs", "credits", "USD"),
        rows,
        title="Plan",
        justify={"jobs": "right", "credits": "right", "USD": "right"},
    )
    if plan.unknown_price_rows:
        err_console.print(
            f"[yellow]{len(plan.unknown_price_rows)} rows have an unknown price (--allow-unknown-price).[/]"
        )


class Progress:
    """Counts per state, credits against the budget, rate and ETA on a terminal; one line per event on
    stderr in a pipe; JSON lines on stdout with --json."""

    SHOWN = (
        "done",
        "failed",
        "rejected",
        "unknown",
        "unreachable",
        "retry_later",
        "stopping",
        "download_failed",
        "still_running",
        "balance_unavailable",
    )

    def __init__(
        self, ledger: Ledger, batch_id: str, budget: float | None, json_: bool, sess: Session
    ) -> None:
        self.ledger, self.batch_id, self.budget, self.json = ledger, batch_id, budget, json_
        self.sandbox = sess.is_sandbox
        self.started = time.monotonic()
        self.done_at_start = ledger.counts(batch_id).get("done", 0)
        self.plain = not json_ and not err_console.is_terminal
        self.notice = ""
        self.planning: int | None = None  # jobs planned so far while the file is still being read

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        if self.json:
            extra = {"sandbox": True} if self.sandbox else {}
            sys.stdout.write(
                json.dumps({"event": kind, "at": time.time(), **data, **extra}, default=str) + "\n"
            )
            sys.stdout.flush()
            return
        if kind == "planning":
            self.planning = None if data.get("complete") else int(data.get("planned") or 0)
            if self.plain and data.get("complete"):
                err_console.print(f"planning complete: {data.get('planned')} new jobs")
            return
        if kind == "unreachable":
            self.notice = (
                f"Kie unreachable at {data['url']}: retry {data['attempt']} in {data['retry_in']:g} s"
            )
        elif kind == "running":
            self.notice = ""
        if self.plain and kind in self.SHOWN:
            err_console.print(_event_line(kind, data))

    def __rich__(self) -> Table:
        from rich.table import Table

        counts = self.ledger.counts(self.batch_id)
        spent, flight = self.ledger.spend(self.batch_id)
        total = sum(counts.values())
        finished = sum(counts.get(s, 0) for s in ("done", "failed", "rejected", "abandoned"))
        elapsed = max(1e-6, time.monotonic() - self.started)
        rate = (counts.get("done", 0) - self.done_at_start) / elapsed * 60
        remaining = total - finished - counts.get("unknown", 0)
        eta = f"{remaining / (rate / 60):.0f}s" if rate > 0 and remaining else "—"
        table = Table(title=f"batch {self.batch_id}{' (sandbox)' if self.sandbox else ''}", show_header=True)
        for state in STATES:
            table.add_column(state, justify="right")
        table.add_row(*(str(counts.get(s, 0)) for s in STATES))
        budget = f" / {fmt_credits(self.budget)}" if self.budget is not None else ""
        table.caption = (
            f"spent {fmt_credits(spent)}{budget} credits, {fmt_credits(flight)} in flight · "
            f"{rate:.1f} done/min · ETA {eta}"
            + (f"\nplanning the file: {self.planning} jobs so far" if self.planning is not None else "")
            + (f"\n{self.notice}" if self.notice else "")
        )
        return table


def _event_line(kind: str, data: Mapping[str, Any]) -> str:
    if kind == "unreachable":
        return f"Kie unreachable at {data['url']}: retry {data['attempt']} in {data['retry_in']:g} s"
    if kind == "stopping":
        return f"stopping submissions: {data.get('reason')}"
    parts = [kind]
    for key in ("row", "job", "task_id", "model"):
        if data.get(key):
            parts.append(f"{key}={data[key]}")
    if data.get("files"):
        parts.append("files=" + ",".join(str(f) for f in data["files"]))
    if data.get("error"):
        parts.append(f"error={data['error']}")
    return " ".join(parts)


def _planner(
    ledger: Ledger,
    batch_id: str,
    path: Path,
    output_dir: str | None,
    options: dict[str, Any] | None,
    settings: Settings,
) -> Planner:
    """Plan the file into the ledger chunk by chunk while the batch runs (rows already there are
    skipped, so this also continues a planning that was cut short). With `options`, the first chunk
    writes them to the batch row; without, the batch keeps the ones it has."""
    from kie.runner.plan import plan_into

    saved = options if options is not None else dict((ledger.batch(batch_id) or {}).get("options") or {})

    def plan(on_chunk: Callable[[int], None], stop: Callable[[], bool]) -> int:
        return plan_into(
            ledger,
            batch_id,
            path,
            source=str(path),
            output_dir=output_dir,
            options=options,
            default_model=saved.get("model"),
            matrix_models=list(saved.get("matrix_models") or []),
            overrides=settings.price_overrides,
            allow_unknown_price=bool(saved.get("allow_unknown_price")),
            on_chunk=on_chunk,
            stop=stop,
        )

    return plan


def _run(
    ledger: Ledger,
    batch_id: str,
    options: RunOptions,
    sess: Session,
    json_: bool,
    planner: Planner | None = None,
) -> tuple[RunResult, bool]:
    """Run the batch (planning it meanwhile, with a `planner`); returns its result and whether Ctrl-C
    stopped it."""
    from kie.runner.engine import BatchRunner

    progress = Progress(ledger, batch_id, options.max_credits, json_, sess)
    interrupted = False

    async def main() -> RunResult:
        nonlocal interrupted
        with _client(sess) as client:
            async with client:
                runner = BatchRunner(ledger, client, batch_id, options, progress.event, planner)
                loop = asyncio.get_running_loop()
                presses = 0

                def on_sigint() -> None:
                    nonlocal presses, interrupted
                    presses += 1
                    interrupted = True
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

    if json_ or progress.plain:
        live: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    else:
        from rich.live import Live

        live = Live(progress, console=err_console, refresh_per_second=4, transient=True)
    try:
        with live:
            return asyncio.run(main()), interrupted
    except asyncio.CancelledError:
        err_console.print(f"Exited. Resume with: kie batch resume {batch_id}")
        raise typer.Exit(INTERRUPTED) from None


def outcome(result: RunResult, interrupted: bool) -> tuple[int, list[str]]:
    """The exit code of a finished run, and the next step to print for each thing left undone."""
    from kie.runner.engine import STOP_AUTH, STOP_KIE, STOP_UNREACHABLE

    counts, steps = result.counts, []
    if counts.get("failed"):
        steps.append(
            f"{counts['failed']} failed (not charged): kie batch retry-failed {{batch}}, "
            "then kie batch resume {batch}"
        )
    if counts.get("rejected"):
        steps.append(
            f"{counts['rejected']} rejected by Kie: "
            "kie jobs list --batch {batch} --state rejected shows why"
        )
    if counts.get("unknown"):
        steps.append(
            f"{counts['unknown']} unknown (a create's outcome was lost, never resent): "
            "kie jobs list --state unknown, then kie jobs resolve JOB"
        )
    left = counts.get("pending", 0) + counts.get("succeeded", 0) + counts.get("running", 0)
    if result.stopped_reason or left:
        steps.append(f"{left} not finished: kie batch resume {{batch}}")
    if interrupted:
        return INTERRUPTED, steps
    if result.stop_kind == STOP_AUTH:
        return USER_ERROR, steps
    if result.stop_kind in (STOP_UNREACHABLE, STOP_KIE):
        return KIE_FAILED, steps
    return (BATCH_INCOMPLETE if steps else OK), steps


def _report(
    result: RunResult,
    batch_id: str,
    options: RunOptions,
    sess: Session,
    json_: bool,
    code: int,
    steps: list[str],
) -> None:
    next_steps = [step.format(batch=batch_id) for step in steps]
    if json_:
        print_json(
            sess.tag(
                {
                    "batch": batch_id,
                    "counts": result.counts,
                    "stopped": result.stopped_reason,
                    "spent": result.spent,
                    "balance_spent": result.balance_spent,
                    "in_flight": result.in_flight,
                    "manifest": str(options.output_dir / "manifest.jsonl"),
                    "exit_code": code,
                    "next_steps": next_steps,
                }
            )
        )
        return
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items())) or "no jobs"
    balance = (
        ""
        if result.balance_spent is None
        else f" (the account balance fell by {fmt_credits(result.balance_spent)} since the batch started)"
    )
    console.print(f"batch {batch_id}: {counts}; {fmt_credits(result.spent)} credits spent{balance}")
    console.print(f"manifest: {options.output_dir / 'manifest.jsonl'}")
    if result.stopped_reason:
        err_console.print(
            f"[yellow]{escape(one_sentence(f'Stopped submitting: {result.stopped_reason}'))}[/]"
        )
    for step in next_steps:
        err_console.print(f"[yellow]next: {step}[/]")


def _options(
    output_dir: Path,
    settings: Settings,
    *,
    budget: float | None,
    concurrency: int,
    rate: str,
    allow_unknown_price: bool,
    public_url: str | None,
) -> RunOptions:
    from kie.runner.engine import RunOptions

    return RunOptions(
        output_dir=output_dir,
        max_credits=budget,
        concurrency=concurrency,
        create_interval=_rate(rate),
        create_window=_window(rate),
        allow_unknown_price=allow_unknown_price,
        callback_url=settings.callback_url,
        webhook_base=public_url,
        deadline=settings.timeouts.task_deadline,
        unreachable_timeout=settings.timeouts.unreachable,
    )


def checked_plan(
    file: Path,
    model: list[str] | None,
    matrix: bool,
    settings: Settings,
    allow_unknown_price: bool,
    skip_invalid: bool,
) -> tuple[Plan, list[str]]:
    """Validate and price every row of a batch file before anything is spent (`batch run` and
    `batch submit`): each invalid row is printed with its line, and unless `--skip-invalid` allows it,
    one invalid row stops the command. Returns the plan and the `--model` list."""
    from kie.runner.plan import plan_batch

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
            keep_jobs=False,
        )
    except KieError as exc:
        fail(exc)
    for error in plan.errors:
        print_problem(error.line, error.message)
    if plan.errors and not skip_invalid:
        fail(f"{len(plan.errors)} invalid rows; nothing was submitted. Fix them or pass --skip-invalid.")
    if not plan.job_count:
        fail(f"{file} has no valid rows to submit; nothing was submitted.")
    return plan, models


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
    max_credits: BudgetOpt = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Running tasks at once.")] = 100,
    rate: Annotated[str, typer.Option("--rate", help="Account create limit N/SECONDS.")] = "20/10",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and estimate only.")] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Submit valid rows even if some are not.")
    ] = False,
    allow_unknown_price: Annotated[
        bool, typer.Option("--allow-unknown-price", help="Submit rows with no known price.")
    ] = False,
    sandbox: SandboxOpt = False,
    public_url: PublicUrlOpt = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Validate every row, estimate, then submit at the account's pace; rerunning the same file resumes."""
    from kie.cli.client_cmds import output_folder
    from kie.cli.session import NO_KEY
    from kie.runner.plan import batch_id_for

    settings = settings_or_fail()
    budget = _budget(max_credits)
    budget = budget if budget is not None else settings.max_credits
    if not dry_run and not sandbox and not settings.api_key:
        fail(NO_KEY)
    plan, models = checked_plan(file, model, matrix, settings, allow_unknown_price, skip_invalid)
    if not json_:
        _print_plan(plan, settings)
    if dry_run:
        if json_:
            print_json(
                {
                    "jobs": plan.job_count,
                    "credits": plan.known_credits,
                    "by_model": plan.credits_by_model,
                    "unknown_price_rows": plan.unknown_price_rows,
                    "invalid": [e.line for e in plan.errors],
                }
            )
        return
    output = output_folder(output)
    _rate(rate)
    if budget is not None and plan.known_credits > budget and not json_:
        err_console.print(
            f"[yellow]The estimate ({fmt_credits(plan.known_credits)}) exceeds --max-credits "
            f"{fmt_credits(budget)}: submitting stops at the cap.[/]"
        )
    with session(sandbox, quiet=json_, settings=settings) as sess:
        ledger = open_ledger(sess.settings, store, sandbox=sess.is_sandbox)
        batch_id = batch_id_for(file)
        options = _options(
            output.resolve(),
            sess.settings,
            budget=budget,
            concurrency=concurrency,
            rate=rate,
            allow_unknown_price=allow_unknown_price,
            public_url=public_url,
        )
        saved = {
            "max_credits": budget,
            "concurrency": concurrency,
            "rate": rate,
            "allow_unknown_price": allow_unknown_price,
            "public_url": public_url,
            "model": None if matrix else (models[0] if models else None),
            "matrix_models": models if matrix else [],
        }
        planner = _planner(ledger, batch_id, file.resolve(), str(options.output_dir), saved, settings)
        result, interrupted = _run(ledger, batch_id, options, sess, json_, planner)
    code, steps = outcome(result, interrupted)
    _report(result, batch_id, options, sess, json_, code, steps)
    raise typer.Exit(code)


def _batch_or_fail(ledger: Ledger, batch_id: str) -> Record:
    batch = ledger.batch(batch_id)
    if batch is None:
        fail(f"No batch {batch_id!r} in {ledger.display_url}; `kie jobs list` shows known batches.")
    return batch


@batch_app.command("resume")
def batch_resume(
    batch_id: Annotated[str, typer.Argument(help="Batch id (shown by kie batch run).")],
    max_credits: BudgetOpt = None,
    sandbox: SandboxOpt = False,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url", help="Receiver URL for callbacks (default: the one the batch ran with)."
        ),
    ] = None,
    store: StoreOpt = None,
    queue: Annotated[
        bool,
        typer.Option("--queue", help="Only unpause it and return: `kie worker` processes carry it on."),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Continue a paused or interrupted batch from the ledger (after a top-up, a crash or Ctrl-C)."""
    settings = settings_or_fail()
    budget = _budget(max_credits)
    if queue:
        ledger = open_ledger(settings, store, sandbox=sandbox)
        batch = _batch_or_fail(ledger, batch_id)
        if batch["cancelled_at"] is not None:
            fail(f"Batch {batch_id} was cancelled and cannot be resumed; submit its file again instead.")
        if budget is not None:
            saved = {**dict(batch["options"] or {}), "max_credits": budget}
            ledger.add_batch(
                batch_id, source=batch["source"], output_dir=batch["output_dir"], options=saved, jobs=[]
            )
        ledger.set_paused(batch_id, None)
        if json_:
            print_json({"batch": batch_id, "paused": None, "queued": True})
        else:
            console.print(f"batch {batch_id} unpaused: `kie worker` processes on this ledger carry it on")
        return
    with session(sandbox, quiet=json_, settings=settings) as sess:
        ledger = open_ledger(sess.settings, store, sandbox=sess.is_sandbox)
        batch = _batch_or_fail(ledger, batch_id)
        saved = dict(batch["options"] or {})
        hook = public_url or saved.get("public_url")
        options = _options(
            Path(batch["output_dir"] or "kie-output"),
            sess.settings,
            budget=budget if budget is not None else saved.get("max_credits"),
            concurrency=int(saved.get("concurrency") or 100),
            rate=str(saved.get("rate") or "20/10"),
            allow_unknown_price=bool(saved.get("allow_unknown_price")),
            public_url=hook,
        )
        if budget is not None or public_url:
            ledger.add_batch(
                batch_id,
                source=batch["source"],
                output_dir=batch["output_dir"],
                options={**saved, "max_credits": options.max_credits, "public_url": hook},
                jobs=[],
            )
        planner = None
        if batch["planned_at"] is None and batch["source"]:
            source = Path(batch["source"])
            if source.is_file():
                planner = _planner(ledger, batch_id, source, batch["output_dir"], None, sess.settings)
            else:
                err_console.print(
                    f"[yellow]The batch file {source} is gone, so its rows not yet planned are left out; "
                    "put it back and resume again to plan them.[/]"
                )
        result, interrupted = _run(ledger, batch_id, options, sess, json_, planner)
    code, steps = outcome(result, interrupted)
    _report(result, batch_id, options, sess, json_, code, steps)
    raise typer.Exit(code)


@batch_app.command("status")
def batch_status(
    batch_id: Annotated[str, typer.Argument()],
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Look in the sandbox's ledger.")] = False,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Counts per state, credits and why a batch paused."""
    settings = settings_or_fail()
    ledger = open_ledger(settings, store, sandbox=sandbox)
    batch = _batch_or_fail(ledger, batch_id)
    counts = ledger.counts(batch_id)
    spent, flight = ledger.spend(batch_id)
    start, end = batch["balance_start"], batch["balance_end"]
    now = ledger.now()
    seen = [
        {
            "worker": w["id"],
            "host": w["host"],
            "state": w["state"],
            "heartbeat_age": round(now - w["heartbeat_at"], 1),
            "jobs_in_hand": w["in_hand"],
            "output_root": w["output_root"],
        }
        for w in ledger.workers(within=600.0)
        if batch_id in (w["batches"] or [])
    ]
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
                "planning_complete": batch["planned_at"] is not None,
                "source": batch["source"],
                "output_dir": batch["output_dir"],
                "priority": batch["priority"],
                "cancelled": batch["cancelled_at"] is not None,
                "workers": seen,
                **({"sandbox": True} if sandbox else {}),
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
    if batch["planned_at"] is None:
        console.print(f"  planning not complete: `kie batch resume {batch_id}` plans the rest of the file")
    if batch["cancelled_at"] is not None:
        console.print("  cancelled: nothing new is created; tasks already paid for are still saved")
    elif batch["paused_reason"]:
        console.print(f"  paused: {batch['paused_reason']} — continue with `kie batch resume {batch_id}`")
    for w in seen:
        console.print(
            f"  worker {w['host']} ({w['state']}): {w['jobs_in_hand']} jobs in hand, "
            f"last heartbeat {w['heartbeat_age']:.0f} s ago"
        )


@batch_app.command("retry-failed")
def batch_retry_failed(
    batch_id: Annotated[str, typer.Argument()],
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Use the sandbox's ledger.")] = False,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Queue failed generations again (failed tasks were not charged); run `kie batch resume` next."""
    from kie.store import FAILED, PENDING

    settings = settings_or_fail()
    ledger = open_ledger(settings, store, sandbox=sandbox)
    _batch_or_fail(ledger, batch_id)
    moved = sum(
        ledger.transition(
            j["id"], FAILED, PENDING, {"retry": True}, task_id=None, error_code=None, error_message=None
        )
        for j in ledger.jobs(batch_id=batch_id, states=[FAILED])
    )
    if json_:
        print_json({"batch": batch_id, "queued": moved, "next": f"kie batch resume {batch_id}"})
        return
    console.print(f"{moved} failed jobs queued again; run: kie batch resume {batch_id}")


JOB_KEYS = (
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


@jobs_app.command("list")
def jobs_list(
    state: Annotated[str | None, typer.Option("--state", help=f"One of {', '.join(STATES)}.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Only this batch.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.", min=1)] = 200,
    after: Annotated[
        str | None, typer.Option("--after", help="Start after this job id (the last one of a page).")
    ] = None,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Look in the sandbox's ledger.")] = False,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Jobs in the ledger, oldest first; page on with --after LAST_JOB_ID."""
    if state is not None and state not in STATES:
        fail(f"--state must be one of {', '.join(STATES)}, got {state!r}.")
    settings = settings_or_fail()
    ledger = open_ledger(settings, store, sandbox=sandbox)
    try:
        rows = ledger.jobs(batch_id=batch, states=[state] if state else None, limit=limit, after=after)
    except KieError as exc:
        fail(exc)
    if json_:
        print_json([{k: r[k] for k in JOB_KEYS} for r in rows])
        return
    emit_table(
        ("job", "batch", "row", "model", "state", "task", "credits"),
        (
            (
                r["id"],
                r["batch_id"] or "",
                r["row_key"] or "",
                r["model"],
                r["state"],
                r["task_id"] or "",
                fmt_credits(
                    r["actual_credits"] if r["actual_credits"] is not None else r["estimated_credits"]
                ),
            )
            for r in rows
        ),
        title=f"{len(rows)} jobs",
    )


@jobs_app.command("show")
def jobs_show(
    job: Annotated[str, typer.Argument(help="Job id (or prefix) or task id.")],
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Look in the sandbox's ledger.")] = False,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """One job: input, state history, files and errors."""
    settings = settings_or_fail()
    ledger = open_ledger(settings, store, sandbox=sandbox)
    row = ledger.find(job)
    if row is None:
        fail(f"No job matches {job!r}; `kie jobs list` shows them.")
    files = [dict(f) for f in ledger.files_of(row["id"])]
    history = [dict(e) for e in ledger.events_of(row["id"])]
    if json_:
        print_json({**dict(row), "files": files, "events": history})
        return
    console.print(f"job {row['id']} · {row['model']} · {row['state']} · task {row['task_id'] or '—'}")
    console.print(f"input: {json.dumps(row['input'])[:500]}", markup=False)
    for e in history:
        console.print(
            f"  {time.strftime('%H:%M:%S', time.localtime(e['at']))} {e['from_state'] or '·'} → "
            f"{e['to_state']}"
        )
    for f in files:
        console.print(f"  file {f['path']} ({f['size']} bytes, sha256 {f['sha256'][:12]}…)", markup=False)
    if row["error_message"]:
        console.print(f"  error: {row['error_message']}", markup=False)


@jobs_app.command("resolve")
def jobs_resolve(
    job: Annotated[str, typer.Argument(help="An unknown job's id (or prefix).")],
    resubmit: Annotated[bool, typer.Option("--resubmit", help="Submit it again (may pay twice).")] = False,
    abandon: Annotated[bool, typer.Option("--abandon", help="Give it up.")] = False,
    task_id: Annotated[
        str | None, typer.Option("--task-id", help="You found its task: attach it (checked with Kie first).")
    ] = None,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Use the sandbox's ledger.")] = False,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Decide what happens to a job whose create outcome was lost."""
    from kie.store import ABANDONED, PENDING, UNKNOWN

    if sum([resubmit, abandon, task_id is not None]) != 1:
        fail("Choose exactly one of --resubmit, --abandon or --task-id TASK.")
    settings = settings_or_fail()
    ledger = open_ledger(settings, store, sandbox=sandbox)
    row = ledger.find(job)
    if row is None:
        fail(f"No job matches {job!r}; `kie jobs list --state unknown` shows the jobs that need resolving.")
    if row["state"] != UNKNOWN:
        fail(f"Job {row['id']} is {row['state']}, not unknown; only unknown jobs need resolving.")
    at_risk = fmt_credits(row["estimated_credits"])
    if task_id is not None:
        _attach_checked(ledger, row, task_id.strip(), settings, sandbox)
        decision, message = (
            "attached",
            (
                f"Job {row['id']} is attached to task {task_id.strip()}; `kie batch resume "
                f"{row['batch_id']}` downloads it."
            ),
        )
    elif resubmit:
        ledger.transition(row["id"], UNKNOWN, PENDING, {"resolved": "resubmit"}, task_id=None)
        decision, message = (
            "queued",
            (
                f"Job {row['id']} queued again. If the lost create did reach Kie, you pay twice: "
                f"{at_risk} credits at risk. Run `kie batch resume {row['batch_id']}`."
            ),
        )
    else:
        ledger.transition(row["id"], UNKNOWN, ABANDONED, {"resolved": "abandon"})
        decision, message = (
            "abandoned",
            f"Job {row['id']} abandoned ({at_risk} credits may have been spent on it).",
        )
    if json_:
        print_json({"job": row["id"], "decision": decision, "task_id": task_id, "batch": row["batch_id"]})
    else:
        console.print(message)


def _attach_checked(ledger: Ledger, row: Record, task_id: str, settings: Settings, sandbox: bool) -> None:
    """Attach a task only once Kie confirms it exists, and only if no other job holds it."""
    from kie import catalog
    from kie.client import Kie

    if not task_id:
        fail("--task-id needs the id of the task you found on Kie.")
    with session(sandbox, quiet=True, settings=settings) as sess, Kie(settings=sess.settings) as client:
        try:
            client.get(task_id, catalog.get(row["model"]))
        except KieError as exc:
            fail(
                f"Kie could not confirm task {task_id} ({str(exc).rstrip('.')}); check the id and try again."
            )
    try:
        ledger.attach_task(row["id"], task_id, detail={"resolved": "task id given", "checked": True})
    except KieError as exc:
        fail(exc)


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
    app.add_typer(jobs_app, name="jobs")
