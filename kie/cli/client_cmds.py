"""Commands that talk to Kie (or the sandbox): generate, task get, upload, credits, sandbox."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from kie import catalog
from kie.catalog.spec import ModelSpec
from kie.cli._common import (
    console,
    err_console,
    fail,
    fmt_credits,
    fmt_usd,
    parse_pairs,
    poll_scale,
    print_json,
    read_json_file,
)
from kie.client import Kie
from kie.client._base import callback_for, prepare
from kie.config import Settings, load_settings
from kie.errors import KieError, SubmissionUnknownError, TaskFailedError
from kie.protocol import flows
from kie.protocol.polling import PollPolicy
from kie.protocol.task import TaskState, TaskStatus
from kie.sandbox.server import SandboxServer
from kie.sandbox.state import SandboxConfig
from kie.store import DONE, FAILED, REJECTED, RUNNING, SUBMITTING, SUCCEEDED, UNKNOWN, Ledger, NewJob
from kie.store.ledger import default_store_url

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
        client = Kie(settings=settings, poll=PollPolicy(scale=poll_scale()))
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
    run_generation(
        model, _inputs(prompt, inputs, input_json), output, no_wait=no_wait, sandbox=sandbox, json_=json_
    )


def run_generation(
    model: str, values: dict[str, Any], output: Path, *, no_wait: bool, sandbox: bool, json_: bool
) -> None:
    """One generation, recorded in the ledger like a batch job: intent before the create, task id right
    after, files and hashes when saved. The sandbox gets a throwaway ledger of its own."""
    try:
        prep = prepare(model, values, {}, settings=load_settings())
    except KieError as exc:
        fail(str(exc))
    est = prep.estimate
    with connect(sandbox, quiet=json_) as conn, _ledger_for(conn) as ledger:
        if not json_:
            price = (
                f"{fmt_credits(est.credits)} credits ≈ {fmt_usd(est.usd(conn.settings.usd_per_credit))}"
                if est.known
                else f"price unknown ({est.basis})"
            )
            console.print(f"[bold]{prep.model.id}[/] · {price}")
            if prep.model.endpoint.requires_callback and not conn.settings.callback_url:
                err_console.print(
                    f"{prep.model.id} requires a callback URL: kie sends a placeholder and polls, so "
                    "callbacks will not reach you (set KIE_CALLBACK_URL to receive them)."
                )
        client = conn.client
        try:
            values = client.run(
                flows.upload_inputs(prep.model, prep.input, upload_path=client.config.upload_path)
            )
        except KieError as exc:
            fail(str(exc), code=1)
        (job_id,) = ledger.add_jobs(None, [NewJob(prep.model.id, values, estimated_credits=est.credits_each)])
        before = _balance(client)
        claimed = ledger.claim_for_submit(job_id, client.config.settings.timeouts.read + 30)
        assert claimed is not None
        try:
            created = client.run(flows.submit(prep.model, values, callback_for(client.config, prep.model)))
        except SubmissionUnknownError as exc:
            ledger.transition(job_id, SUBMITTING, UNKNOWN, {"error": str(exc)}, error_message=str(exc))
            fail(str(exc), code=1)
        except KieError as exc:
            ledger.transition(job_id, SUBMITTING, REJECTED, {"error": str(exc)}, error_message=str(exc))
            fail(str(exc))
        ledger.mark_running(claimed, created.task_id)
        if no_wait:
            if conn.sandbox is not None and not json_:
                err_console.print(
                    "[yellow]The sandbox stops with this command, so this task ends here too.[/]"
                )
            _emit_submitted(created.task_id, prep.model.id, json_)
            return
        line = StatusLine(prep.model.id, created.task_id)
        try:
            live = contextlib.nullcontext() if json_ else Live(line, console=err_console, transient=True)
            with live:
                status = created.status or client.wait(created.task_id, prep.model, on_status=line.update)
            if status.state is TaskState.FAILED:
                raise flows.task_failed(status)
            credits, source = status.credits_consumed, "kie"
            if credits is None:  # the product APIs report no credits: the balance delta is the measure
                after = _balance(client)
                if before is not None and after is not None and before >= after:
                    credits, source = before - after, "balance delta"
            ledger.transition(
                job_id,
                RUNNING,
                SUCCEEDED,
                {"credits_from": source} if credits is not None else None,
                result_urls=list(status.result_urls),
                cost_time=status.cost_time,
                actual_credits=credits,
            )
            results = client.download(status, output)
        except KeyboardInterrupt:
            err_console.print(
                f"Stopped waiting. Task {created.task_id} keeps running on Kie and is not lost; fetch it "
                f"later with: kie task get {created.task_id} --model {prep.model.id} -o {output}"
            )
            raise typer.Exit(130) from None
        except TaskFailedError as exc:
            ledger.transition(job_id, RUNNING, FAILED, error_code=exc.fail_code, error_message=exc.fail_msg)
            fail(str(exc), code=1)
        except KieError as exc:
            fail(str(exc), code=1)
        ledger.record_files(
            job_id,
            [
                {
                    "url": r.url,
                    "path": str(r.path),
                    "size": r.size,
                    "sha256": r.sha256,
                    "content_type": r.content_type,
                }
                for r in results
            ],
        )
        ledger.transition(job_id, SUCCEEDED, DONE, downloaded_at=time.time())
    if json_:
        print_json(
            {
                "job": job_id,
                "task_id": created.task_id,
                "model": prep.model.id,
                "state": status.state.value,
                "credits": credits if credits is not None else est.credits,
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


@contextlib.contextmanager
def _ledger_for(conn: Connection) -> Iterator[Ledger]:
    if conn.sandbox is None:
        settings = conn.settings
        ledger = Ledger(settings.store_url or default_store_url(settings.home))
        yield ledger
        ledger.close()
        return
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(f"sqlite:///{Path(tmp) / 'sandbox-ledger.db'}")
        yield ledger
        ledger.close()


def _balance(client: Kie) -> float | None:
    """The account balance, or None when it cannot be read (it is a measurement, never a blocker)."""
    try:
        return client.credits()
    except KieError:
        return None


def _emit_submitted(task_id: str, model: str, json_: bool) -> None:
    if json_:
        print_json({"task_id": task_id, "model": model, "state": "submitted"})
    else:
        console.print(f"Submitted task {task_id}. Fetch it with: kie task get {task_id} --model {model}")


task_app = typer.Typer(help="Work with one task by id.", no_args_is_help=True)


def _model_of(task_id: str, model: str | None, settings: Settings) -> ModelSpec | None:
    """The task's model: as given, else as the ledger recorded it (Market when neither knows)."""
    try:
        if model:
            return catalog.get(model)
        with contextlib.closing(Ledger(settings.store_url or default_store_url(settings.home))) as ledger:
            job = ledger.find(task_id)
        return catalog.get(job["model"]) if job is not None else None
    except KieError as exc:
        fail(str(exc))


@task_app.command("get")
def task_get(
    task_id: Annotated[str, typer.Argument(help="The Kie task id.")],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model of the task (found in the ledger when kie created it)."),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for results.")] = Path("kie-output"),
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait if it is still running.")] = True,
    json_: JsonOpt = False,
) -> None:
    """Fetch a task's status and download its results, whatever created it."""
    settings = load_settings()
    if not settings.api_key:
        fail("kie task get needs KIE_API_KEY: a task id belongs to a Kie.ai account.")
    spec = _model_of(task_id, model, settings)
    with Kie(settings=settings) as client:
        try:
            status = client.get(task_id, spec)
            if not status.done and wait:
                status = client.wait(task_id, spec, poll_now=True)
            results = client.download(status, output) if status.state is TaskState.SUCCEEDED else []
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
    console.print(
        f"task {status.task_id} ({status.model or (spec.id if spec else 'model unknown')}): "
        f"{status.state.value}"
    )
    if status.fail_msg:
        console.print(f"  failed: {status.fail_msg} (failCode {status.fail_code})")
    for result in results:
        console.print(f"  saved {result.path}")


def _follow_up(
    operation: str,
    task_id: str,
    model: str | None,
    index: int | None,
    prompt: str | None,
    pairs: list[str] | None,
    output: Path,
    sandbox: bool,
    json_: bool,
) -> None:
    """Run `operation` on a finished task through the catalogue model that performs it."""
    spec = _model_of(task_id, model, load_settings())
    rules = catalog.load().followups.get(operation, {})
    if spec is None:
        fail(
            f"Which model made task {task_id}? Pass --model (one of the families that support "
            f"{operation}: {', '.join(sorted(rules))})."
        )
    rule = rules.get(spec.family)
    if rule is None:
        fail(f"{spec.id} has no {operation}; {operation} exists for {', '.join(sorted(rules))} tasks.")
    values = parse_pairs(pairs)
    values[rule.task_field] = task_id
    if index is not None:
        if rule.index_field is None:
            fail(f"{rule.model} takes no --index.")
        values[rule.index_field] = index
    if prompt is not None:
        values["prompt"] = prompt
    run_generation(rule.model, values, output, no_wait=False, sandbox=sandbox, json_=json_)


def _register_follow_ups() -> None:
    for operation, helptext in (
        ("upscale", "Upscale one image of a finished task (Midjourney, Grok Imagine)."),
        ("vary", "Make variations of one image of a finished Midjourney task."),
        ("extend", "Extend a finished video (Veo, Runway, Grok Imagine)."),
        ("1080p", "Fetch the 1080p version of a finished Veo video."),
        ("4k", "Upgrade a finished Veo video to 4K."),
    ):

        def command(
            task_id: Annotated[str, typer.Argument(help="The finished task's id.")],
            index: Annotated[
                int | None, typer.Option("--index", help="Which output (as the model counts).")
            ] = None,
            prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="Prompt, for extend.")] = None,
            inputs: Annotated[
                list[str] | None, typer.Option("-i", "--input", help="key=value, repeatable.")
            ] = None,
            model: Annotated[str | None, typer.Option("--model", help="Model of the original task.")] = None,
            output: Annotated[Path, typer.Option("-o", "--output", help="Folder for results.")] = Path(
                "kie-output"
            ),
            sandbox: Annotated[bool, typer.Option("--sandbox", help="Use the built-in sandbox.")] = False,
            json_: JsonOpt = False,
            _operation: str = operation,
        ) -> None:
            _follow_up(_operation, task_id, model, index, prompt, inputs, output, sandbox, json_)

        command.__doc__ = helptext
        task_app.command(operation)(command)


_register_follow_ups()


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
