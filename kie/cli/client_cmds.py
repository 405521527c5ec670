"""Commands that talk to Kie (or the sandbox): generate, task get, upload, credits, sandbox."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from kie import catalog
from kie.cli._common import (
    console,
    err_console,
    fail,
    fmt_credits,
    fmt_usd,
    parse_pairs,
    print_json,
    read_json_file,
)
from kie.client import Kie
from kie.client._base import prepare
from kie.config import Settings, load_settings
from kie.errors import KieError, TaskFailedError
from kie.protocol.polling import PollPolicy
from kie.protocol.task import TaskStatus
from kie.sandbox.server import SandboxServer
from kie.sandbox.state import SandboxConfig

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SANDBOX_TIME_SCALE = 0.1


@dataclass
class Connection:
    client: Kie
    sandbox: SandboxServer | None
    settings: Settings


@contextlib.contextmanager
def connect(
    use_sandbox: bool, *, quiet: bool = False, time_scale: float = SANDBOX_TIME_SCALE
) -> Iterator[Connection]:
    """A client for the real API, or for an in-process sandbox when asked or when no key is set."""
    settings = load_settings()
    sandbox: SandboxServer | None = None
    if use_sandbox or not settings.api_key:
        sandbox = SandboxServer(SandboxConfig(time_scale=time_scale)).start()
        if not quiet:
            reason = "--sandbox" if use_sandbox else "No KIE_API_KEY is set"
            err_console.print(
                f"[cyan]{reason}: using the built-in sandbox at {sandbox.url} — no account, no credits. "
                "Set KIE_API_KEY to use Kie.ai.[/]"
            )
        settings = settings.with_(api_key=sandbox.api_key, base_url=sandbox.url, upload_base_url=sandbox.url)
        poll = PollPolicy(scale=time_scale)
        client = Kie(settings=settings, poll=poll, create_interval=0.5 * time_scale)
    else:
        client = Kie(settings=settings)
    try:
        yield Connection(client, sandbox, settings)
    finally:
        client.close()
        if sandbox is not None:
            sandbox.stop()


class StatusLine:
    """The live Rich line: state, elapsed time, polls."""

    def __init__(self, model: str, task_id: str) -> None:
        self.model, self.task_id = model, task_id
        self.started = time.monotonic()
        self.state = "submitted"
        self.polls = 0

    def update(self, status: TaskStatus, polls: int) -> None:
        self.state = status.raw_state or status.state.value
        self.polls = polls

    def __rich__(self) -> Text:
        elapsed = time.monotonic() - self.started
        return Text(
            f"{self.model} · task {self.task_id} · {self.state} · {elapsed:5.1f}s · {self.polls} polls"
        )


def _inputs(prompt: str | None, pairs: list[str] | None, input_json: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = read_json_file(input_json) if input_json else {}
    values.update(parse_pairs(pairs))
    if prompt is not None:
        values["prompt"] = prompt
    return values


def generate(
    model: Annotated[str, typer.Argument(help="Model id or alias, e.g. nano-banana-pro.")],
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="The prompt.")] = None,
    inputs: Annotated[list[str] | None, typer.Option("-i", "--input", help="key=value, repeatable.")] = None,
    input_json: Annotated[
        Path | None, typer.Option("--input-json", help="JSON file of input fields.")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for results.")] = Path("kie-output"),
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Submit and print the task id only.")] = False,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Use the built-in local sandbox.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Validate, price, submit, wait and download: prompt to file on disk."""
    values = _inputs(prompt, inputs, input_json)
    try:
        prep = prepare(model, values, {}, settings=load_settings())
    except KieError as exc:
        fail(str(exc))
    est = prep.estimate
    with connect(sandbox, quiet=json_) as conn:
        if not json_:
            price = (
                f"{fmt_credits(est.credits)} credits ≈ {fmt_usd(est.usd(conn.settings.usd_per_credit))}"
                if est.known
                else f"price unknown ({est.basis})"
            )
            console.print(f"[bold]{prep.model.id}[/] · {price}")
        try:
            sub = conn.client.submit(prep.model, prep.input)
        except KieError as exc:
            fail(str(exc))
        if no_wait:
            if conn.sandbox is not None and not json_:
                err_console.print(
                    "[yellow]The sandbox stops with this command, so this task ends here too.[/]"
                )
            _emit_submitted(sub.task_id, sub.model, json_)
            return
        line = StatusLine(sub.model, sub.task_id)
        try:
            live = contextlib.nullcontext() if json_ else Live(line, console=err_console, transient=True)
            with live:
                status = conn.client.wait(sub.task_id, prep.model, on_status=line.update)
            results = conn.client.download(status, output)
        except KeyboardInterrupt:
            err_console.print(
                f"Stopped waiting. Task {sub.task_id} keeps running on Kie and is not lost; fetch it later "
                f"with: kie task get {sub.task_id} --model {sub.model} -o {output}"
            )
            raise typer.Exit(130) from None
        except TaskFailedError as exc:
            fail(str(exc), code=1)
        except KieError as exc:
            fail(str(exc), code=1)
    if json_:
        print_json(
            {
                "task_id": sub.task_id,
                "model": sub.model,
                "state": status.state.value,
                "credits": status.credits_consumed if status.credits_consumed is not None else est.credits,
                "files": [
                    {"path": str(r.path), "sha256": r.sha256, "size": r.size, "url": r.url} for r in results
                ],
            }
        )
        return
    console.print(
        f"[green]Done[/] in {time.monotonic() - line.started:.1f}s with {line.polls} status checks:"
    )
    for result in results:
        console.print(f"  {result.path}  ({result.size:,} bytes, sha256 {result.sha256[:12]}…)")


def _emit_submitted(task_id: str, model: str, json_: bool) -> None:
    if json_:
        print_json({"task_id": task_id, "model": model, "state": "submitted"})
    else:
        console.print(f"Submitted task {task_id}. Fetch it with: kie task get {task_id} --model {model}")


task_app = typer.Typer(help="Work with one task by id.", no_args_is_help=True)


@task_app.command("get")
def task_get(
    task_id: Annotated[str, typer.Argument(help="The Kie task id.")],
    model: Annotated[
        str | None, typer.Option("--model", help="Model of the task (needed for non-Market families).")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for results.")] = Path("kie-output"),
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait if it is still running.")] = True,
    json_: JsonOpt = False,
) -> None:
    """Fetch a task's status and download its results, whatever created it."""
    try:
        spec = catalog.get(model) if model else None
    except KieError as exc:
        fail(str(exc))
    settings = load_settings()
    if not settings.api_key:
        fail("kie task get needs KIE_API_KEY: a task id belongs to a Kie.ai account.")
    with Kie(settings=settings) as client:
        try:
            status = client.get(task_id, spec)
            if not status.done and wait:
                status = client.wait(task_id, spec, poll_now=True)
            results = client.download(status, output) if status.state.value == "succeeded" else []
        except KieError as exc:
            fail(str(exc), code=1)
    if json_:
        print_json(
            {
                "task_id": status.task_id,
                "model": status.model,
                "state": status.state.value,
                "fail_code": status.fail_code,
                "fail_msg": status.fail_msg,
                "files": [{"path": str(r.path), "sha256": r.sha256} for r in results],
            }
        )
        return
    console.print(f"task {status.task_id} ({status.model or 'model unknown'}): {status.state.value}")
    if status.fail_msg:
        console.print(f"  failed: {status.fail_msg} (failCode {status.fail_code})")
    for result in results:
        console.print(f"  saved {result.path}")


def upload(
    file: Annotated[Path, typer.Argument(help="Local file to upload.")],
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Upload to the built-in sandbox.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Upload a file; print the URL to use as a model input (kept about 3 days by Kie)."""
    if not file.is_file():
        fail(f"{file} is not a readable file; check the path.")
    with connect(sandbox, quiet=json_) as conn:
        try:
            uploaded = conn.client.upload(file)
        except KieError as exc:
            fail(str(exc), code=1)
    if json_:
        print_json(uploaded.__dict__)
    else:
        console.print(uploaded.download_url)


def credits(
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Ask the built-in sandbox.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Your remaining Kie.ai credits."""
    with connect(sandbox, quiet=json_) as conn:
        try:
            balance = conn.client.credits()
        except KieError as exc:
            fail(str(exc), code=1)
        usd = balance * conn.settings.usd_per_credit
    if json_:
        print_json({"credits": balance, "usd": usd})
    else:
        console.print(f"{fmt_credits(balance)} credits ≈ {fmt_usd(usd)}")


def sandbox_cmd(
    host: Annotated[str, typer.Option(help="Interface to bind; loopback by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8765,
    api_key: Annotated[list[str] | None, typer.Option("--api-key", help="Accepted key, repeatable.")] = None,
    credits_: Annotated[float, typer.Option("--credits", help="Starting balance.")] = 100_000.0,
    time_scale: Annotated[
        float,
        typer.Option("--time-scale", help="Factor on every generation, retry and expiry time (1 = real)."),
    ] = SANDBOX_TIME_SCALE,
    strict_http: Annotated[
        bool, typer.Option("--strict-http", help="Also set HTTP status codes on errors.")
    ] = False,
    webhook_key: Annotated[
        str | None, typer.Option("--webhook-key", help="Sign callbacks with this HMAC key.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for timings and random faults.")] = 0,
    rate_limit: Annotated[
        str, typer.Option("--rate-limit", help="Creates per window as N/SECONDS, or 'off'.")
    ] = "20/10",
    status_rate_limit: Annotated[
        str, typer.Option("--status-rate-limit", help="Status reads per window as N/SECONDS, or 'off'.")
    ] = "10/1",
    max_running: Annotated[
        int, typer.Option("--max-running", min=1, help="Concurrently running tasks.")
    ] = 100,
    max_image_side: Annotated[
        int | None, typer.Option("--max-image-side", min=16, help="Cap result image size (faster).")
    ] = None,
) -> None:
    """Run a local Kie.ai: same paths, shapes and quirks, no account, no credits."""
    from kie.sandbox.server import sample_key, serve_forever

    if time_scale <= 0:
        fail("--time-scale must be greater than 0; 1 is real time, 0.1 makes a 30 s image take 3 s.")
    keys = tuple(api_key or ()) or (sample_key(),)
    config = SandboxConfig(
        api_keys=keys,
        credits=credits_,
        time_scale=time_scale,
        strict_http=strict_http,
        webhook_key=webhook_key,
        seed=seed,
        rate_limit=_limit("--rate-limit", rate_limit),
        status_rate_limit=_limit("--status-rate-limit", status_rate_limit),
        max_running=max_running,
        max_image_side=max_image_side,
    )
    try:
        server = SandboxServer(config, host=host, port=port)
    except OSError as exc:
        fail(f"Cannot listen on {host}:{port}: {exc.strerror}. Choose another --port.")
    console.print(f"kie sandbox listening on {server.url}  (Ctrl-C to stop)")
    if not api_key:
        console.print(f"sample API key: {keys[0]}")
    console.print(f"export KIE_BASE_URL={server.url} KIE_UPLOAD_BASE_URL={server.url} KIE_API_KEY={keys[0]}")
    serve_forever(server)
    console.print("sandbox stopped")


def _limit(option: str, text: str) -> tuple[int, float] | None:
    if text.strip().lower() == "off":
        return None
    count, _, window = text.partition("/")
    try:
        parsed = (int(count), float(window))
    except ValueError:
        fail(f"{option} must look like 20/10 (20 per 10 seconds) or 'off', got {text!r}.")
    if parsed[0] < 1 or parsed[1] <= 0:
        fail(f"{option} needs a positive count and window, got {text!r}.")
    return parsed


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.add_typer(task_app, name="task")
    app.command("upload")(upload)
    app.command("credits")(credits)
    app.command("sandbox")(sandbox_cmd)
