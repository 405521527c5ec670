"""`kie serve` (the callback receiver) and `kie webhook send-test` (check your own endpoint)."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Annotated

import typer

from kie.cli._common import console, fail, print_json, print_plain
from kie.cli.session import open_ledger, settings_or_fail

webhook_app = typer.Typer(help="Tools for Kie callbacks.", no_args_is_help=True)


def serve(
    host: Annotated[
        str, typer.Option(help="Interface to bind; loopback unless told otherwise.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    public_url: Annotated[
        str | None,
        typer.Option("--public-url", help="Where Kie reaches this receiver (tunnel or proxy URL)."),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for downloaded results.")] = Path(
        "kie-output"
    ),
    store: Annotated[
        str | None, typer.Option("--store", help="Ledger URL (default: SQLite in KIE_HOME).")
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print where callbacks go as one JSON line, then serve.")
    ] = False,
) -> None:
    """Receive Kie callbacks for jobs in the ledger; verify, re-fetch, record and download."""
    import uvicorn

    from kie.webhooks.receiver import CALLBACK_PATH, Receiver

    settings = settings_or_fail()
    if not settings.api_key:
        fail("kie serve needs KIE_API_KEY: callbacks are re-checked against the API before they count.")
    ledger = open_ledger(settings, store)
    receiver = Receiver(
        ledger=ledger, settings=settings, output_dir=output.resolve(), key=settings.webhook_key
    )
    shown = f"{(public_url or f'http://{host}:{port}').rstrip('/')}{CALLBACK_PATH}"
    if json_:
        print_plain(
            json.dumps(
                {"callbacks": shown, "signed": bool(settings.webhook_key), "store": ledger.display_url}
            )
        )
    else:
        console.print(f"kie serve: callbacks at {shown}")
        if not settings.webhook_key:
            console.print("[yellow]No KIE_WEBHOOK_KEY: signatures are not checked (tokens still are).[/]")
        if public_url:
            console.print(
                f"Run batches with --public-url {public_url} so each job gets its own callback URL."
            )
    uvicorn.run(
        receiver.app(),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        limit_max_requests=None,
        timeout_keep_alive=30,
    )


@webhook_app.command("send-test")
def send_test(
    url: Annotated[str, typer.Argument(help="Your callback endpoint.")],
    forged: Annotated[bool, typer.Option("--forged", help="Send a bad signature (must be refused).")] = False,
    task_id: Annotated[str | None, typer.Option("--task-id", help="Task id to put in the sample.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """POST a correctly signed sample callback (or a forged one); exit 0 only if the endpoint did the
    right thing: accepted the genuine one, refused the forged one."""
    import httpx

    from kie.webhooks.verify import sign

    settings = settings_or_fail()
    key = settings.webhook_key
    if not key:
        fail("Set KIE_WEBHOOK_KEY (the key from your Kie settings page) to sign the sample.")
    task = task_id or secrets.token_hex(16)
    timestamp = int(time.time())
    signature = sign("not-the-key" if forged else key, task, timestamp)
    body = {
        "code": 200,
        "msg": "Playground task completed successfully.",
        "data": {
            "taskId": task,
            "model": "nano-banana-pro",
            "state": "success",
            "param": json.dumps({"model": "nano-banana-pro", "input": json.dumps({"prompt": "test"})}),
            "resultJson": json.dumps({"resultUrls": ["https://tempfile.aiquickdraw.com/test/sample.png"]}),
            "costTime": 12,
            "completeTime": timestamp * 1000,
            "createTime": timestamp * 1000 - 12000,
            "creditsConsumed": 18,
        },
    }
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Signature": signature,
    }
    try:
        response = httpx.post(url, content=json.dumps(body), headers=headers, timeout=15)
    except httpx.HTTPError as exc:
        fail(f"Could not reach {url}: {exc.__class__.__name__}. Is the endpoint running?", code=1)
    accepted = 200 <= response.status_code < 300
    ok = accepted != forged
    if json_:
        print_json(
            {"url": url, "forged": forged, "status": response.status_code, "accepted": accepted, "ok": ok}
        )
    else:
        verdict = "accepted" if accepted else "refused"
        expected = "as it should" if ok else "which is WRONG"
        kind = "forged" if forged else "signed"
        console.print(f"{kind} sample {verdict} with HTTP {response.status_code}, {expected}.")
    raise typer.Exit(0 if ok else 1)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(webhook_app, name="webhook")
