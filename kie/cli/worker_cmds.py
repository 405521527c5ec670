"""`kie worker` and the commands that steer batches from any machine: `kie batch submit|pause|cancel`.

`kie batch run` is "submit, then work it here". For a run bigger than one machine should carry, or one
that must outlive any one machine, submit the batch to a shared ledger (PostgreSQL) and start
`kie worker` processes wherever they should run; they share the account's limits through the ledger.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from kie.cli._common import INTERRUPTED, OK, console, err_console, fail, fmt_credits, print_json
from kie.cli.batch_cmds import (
    BudgetOpt,
    JsonOpt,
    PublicUrlOpt,
    SandboxOpt,
    StoreOpt,
    _batch_or_fail,
    _budget,
    _client,
    _event_line,
    _rate,
    _window,
    batch_app,
    checked_plan,
)
from kie.cli.session import open_ledger, session, settings_or_fail


@batch_app.command("submit")
def batch_submit(
    file: Annotated[Path, typer.Argument(help="JSONL (one object per row) or CSV (columns are fields).")],
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Default model; repeat with --matrix.")
    ] = None,
    matrix: Annotated[bool, typer.Option("--matrix", help="Run every row against every --model.")] = False,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for results (workers may use --output-root).")
    ] = Path("kie-output"),
    max_credits: BudgetOpt = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher runs first; default 0.")] = 0,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Queue valid rows even if some are not.")
    ] = False,
    allow_unknown_price: Annotated[
        bool, typer.Option("--allow-unknown-price", help="Queue rows with no known price.")
    ] = False,
    public_url: PublicUrlOpt = None,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Queue in the sandbox's ledger (for `kie worker --sandbox`).")
    ] = False,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Validate, price and queue a batch in the ledger, then return: `kie worker` processes run it."""
    from kie.cli.client_cmds import output_folder
    from kie.runner.plan import batch_id_for, plan_into

    settings = settings_or_fail()
    budget = _budget(max_credits)
    budget = budget if budget is not None else settings.max_credits
    plan, models = checked_plan(file, model, matrix, settings, allow_unknown_price, skip_invalid)
    output = output_folder(output).resolve()
    ledger = open_ledger(settings, store, sandbox=sandbox)
    batch_id = batch_id_for(file)
    default_model = None if matrix else (models[0] if models else None)
    saved: dict[str, Any] = {
        "max_credits": budget,
        "allow_unknown_price": allow_unknown_price,
        "public_url": public_url,
        "model": default_model,
        "matrix_models": models if matrix else [],
    }
    added = plan_into(
        ledger,
        batch_id,
        file.resolve(),
        source=str(file.resolve()),
        output_dir=str(output),
        options=saved,
        default_model=default_model,
        matrix_models=models if matrix else (),
        overrides=settings.price_overrides,
        allow_unknown_price=allow_unknown_price,
    )
    ledger.set_priority(batch_id, priority)
    counts = ledger.counts(batch_id)
    answer = {
        "batch": batch_id,
        "jobs": sum(counts.values()),
        "new_jobs": added,
        "estimate": plan.known_credits,
        "unknown_price_rows": plan.unknown_price_rows,
        "max_credits": budget,
        "priority": priority,
        "store": ledger.display_url,
    }
    if json_:
        print_json({**answer, **({"sandbox": True} if sandbox else {})})
        return
    budget_text = "no budget" if budget is None else f"budget {fmt_credits(budget)}"
    console.print(
        f"batch {batch_id} queued: {answer['jobs']} jobs ({added} new), estimate "
        f"{fmt_credits(plan.known_credits)} credits, {budget_text}, priority {priority}"
    )
    console.print(
        f"next: kie worker (on any machine using {ledger.display_url}); kie batch status {batch_id}"
    )


@batch_app.command("pause")
def batch_pause(
    batch_id: Annotated[str, typer.Argument()],
    sandbox: SandboxOpt = False,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Stop a batch's creates on every machine; tasks already at Kie are still watched and saved."""
    ledger = open_ledger(settings_or_fail(), store, sandbox=sandbox)
    batch = _batch_or_fail(ledger, batch_id)
    if batch["cancelled_at"] is not None:
        fail(f"Batch {batch_id} is cancelled; there is nothing to pause.")
    ledger.set_paused(batch_id, "paused by the user")
    if json_:
        print_json({"batch": batch_id, "paused": True})
        return
    console.print(f"batch {batch_id} paused; continue with: kie batch resume {batch_id} --queue")


@batch_app.command("cancel")
def batch_cancel(
    batch_id: Annotated[str, typer.Argument()],
    sandbox: SandboxOpt = False,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Cancel a batch: rows not yet sent are abandoned; tasks already paid for are still saved."""
    ledger = open_ledger(settings_or_fail(), store, sandbox=sandbox)
    _batch_or_fail(ledger, batch_id)
    abandoned = ledger.cancel_batch(batch_id)
    if json_:
        print_json({"batch": batch_id, "cancelled": True, "abandoned": abandoned})
        return
    console.print(f"batch {batch_id} cancelled: {abandoned} rows not sent were abandoned")


def worker(
    store: StoreOpt = None,
    output_root: Annotated[
        Path | None,
        typer.Option("--output-root", help="Save every batch under DIR/<batch id> (a shared disk)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Tasks this worker holds at once.")
    ] = 100,
    batch: Annotated[
        list[str] | None, typer.Option("--batch", help="Only these batches (repeat); default all.")
    ] = None,
    rate: Annotated[
        str, typer.Option("--rate", help="The account's create limit N/SECONDS, shared by all workers.")
    ] = "20/10",
    drain_timeout: Annotated[
        float, typer.Option("--drain-timeout", min=0, help="Seconds SIGTERM leaves running work to finish.")
    ] = 30.0,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit once no batch has work left (default: keep waiting).")
    ] = False,
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Work the sandbox ledger's batches on the built-in sandbox."),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Work every queued batch in the ledger, alongside any number of other workers on any machine."""
    from kie.runner.worker import Worker, WorkerOptions

    settings = settings_or_fail()
    interval = _rate(rate)
    with session(sandbox, quiet=json_, settings=settings) as sess:
        ledger = open_ledger(sess.settings, store, sandbox=sess.is_sandbox)
        options = WorkerOptions(
            output_root=output_root.resolve() if output_root else None,
            concurrency=concurrency,
            batch_ids=tuple(batch or ()),
            create_interval=interval,
            create_window=_window(rate),
            deadline=sess.settings.timeouts.task_deadline,
            unreachable_timeout=sess.settings.timeouts.unreachable,
            drain_timeout=drain_timeout,
            until_idle=until_idle,
        )

        def hear(kind: str, data: Mapping[str, Any]) -> None:
            if json_:
                print_json({"event": kind, **data})
            elif kind in ("batch_started", "batch_ended", "batch_error", "draining", "heartbeat_failed"):
                err_console.print(_worker_line(kind, data))
            elif kind in ("rejected", "unknown", "failed", "download_failed", "stopping", "unreachable"):
                err_console.print(_event_line(kind, data))

        async def main() -> bool:
            with _client(sess) as client:
                async with client:
                    runner = Worker(ledger, client, options, hear)
                    loop = asyncio.get_running_loop()
                    for sig in (signal.SIGTERM, signal.SIGINT):
                        loop.add_signal_handler(sig, runner.drain)
                    err_console.print(f"worker {ledger.owner} on {ledger.display_url}")
                    result = await runner.run()
                    return result.drained

        drained = asyncio.run(main())
    raise typer.Exit(INTERRUPTED if drained else OK)


def _worker_line(kind: str, data: Mapping[str, Any]) -> str:
    if kind == "batch_started":
        return f"working batch {data['batch']} (priority {data['priority']})"
    if kind == "batch_ended":
        counts = ", ".join(f"{n} {s}" for s, n in sorted(dict(data["counts"]).items()))
        return f"batch {data['batch']} finished here: {counts}"
    if kind == "batch_error":
        return f"batch {data['batch']} stopped on {data['error']}; taking it up again shortly"
    if kind == "draining":
        return f"draining: no new creates; running work has {data['timeout']:.0f} s, then is handed back"
    return f"heartbeat failed ({data['error']}); retrying"


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
