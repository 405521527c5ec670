"""Commands that talk to Kie (or the sandbox): generate, task get, upload, credits, sandbox."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from kie.cli._common import (
    INTERRUPTED,
    KIE_FAILED,
    console,
    err_console,
    exit_code_for,
    fail,
    fmt_credits,
    fmt_usd,
    for_cli,
    is_pipe,
    parse_pairs,
    print_json,
    print_plain,
    read_json_file,
)
from kie.cli.session import SANDBOX_TIME_SCALE, Session, open_ledger, session, settings_or_fail
from kie.config import Settings
from kie.errors import KieError, SubmissionUnknownError, TaskFailedError
from kie.protocol.polling import PollPolicy
from kie.protocol.task import TaskState, TaskStatus

if TYPE_CHECKING:
    from kie.catalog.spec import ModelSpec
    from kie.client import Kie
    from kie.store import Ledger

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
InputOpt = typer.Option("-i", "--input", help="key=value, repeatable.", metavar="KEY=VALUE")
SandboxOpt = Annotated[
    bool, typer.Option("--sandbox", help="Use the built-in sandbox: no account, no credits, fake results.")
]


def client_for(sess: Session) -> Kie:
    from kie.client import Kie

    interval = 0.5 * sess.scale if sess.is_sandbox else 0.5
    return Kie(settings=sess.settings, poll=PollPolicy(scale=sess.scale), create_interval=interval)


def output_folder(path: Path, option: str = "-o") -> Path:
    """The results folder, made and proven writable before anything is paid for: a task whose files
    cannot be saved is money spent on nothing."""
    if path.exists() and not path.is_dir():
        fail(
            f"{option} {path} is an existing file, but {option} names a folder for the results; pass a "
            "folder (it is created when missing)."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".kie-write-check-"):
            pass
    except OSError as exc:
        fail(
            f"Cannot write results to {path} ({exc.strerror or exc}); choose a folder you can write to "
            f"with {option}."
        )
    return path


class StatusLine:
    """The live line on a terminal (state, elapsed time, polls); one line per change in a pipe."""

    def __init__(self, model: str, task_id: str, *, plain: bool) -> None:
        self.model, self.task_id = model, task_id
        self.started = time.monotonic()
        self.state = "submitted"
        self.polls = 0
        self.plain = plain

    def update(self, status: TaskStatus, polls: int) -> None:
        state = status.raw_state or status.state.value
        if self.plain and state != self.state:
            err_console.print(f"task {self.task_id}: {state} after {time.monotonic() - self.started:.1f}s")
        self.state, self.polls = state, polls

    def __rich__(self) -> Text:
        elapsed = time.monotonic() - self.started
        return Text(
            f"{self.model} · task {self.task_id} · {self.state} · {elapsed:5.1f}s · {self.polls} polls"
        )


def _list_fields(model: str) -> list[str]:
    """Fields that take several values, so `-i image_urls=a.png -i image_urls=b.png` makes a list."""
    from kie import catalog

    try:
        spec = catalog.get(model)
    except KieError as exc:
        fail(exc)
    return [name for name, field in spec.fields.items() if "array" in field.types]


def _inputs(
    model: str, prompt: str | None, pairs: list[str] | None, input_json: Path | None
) -> dict[str, Any]:
    values: dict[str, Any] = read_json_file(input_json) if input_json else {}
    values.update(parse_pairs(pairs, _list_fields(model)))
    if prompt is not None:
        values["prompt"] = prompt
    return values


def generate(
    model: Annotated[str, typer.Argument(help="Model id or alias, e.g. nano-banana-pro.")],
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="The prompt.")] = None,
    inputs: Annotated[list[str] | None, InputOpt] = None,
    input_json: Annotated[
        Path | None, typer.Option("--input-json", help="JSON file of input fields.")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for results.")] = Path("kie-output"),
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Submit and print the task id only.")] = False,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Validate, price, submit, wait and download: prompt to file on disk."""
    run_generation(
        model,
        _inputs(model, prompt, inputs, input_json),
        output,
        no_wait=no_wait,
        sandbox=sandbox,
        json_=json_,
    )


def run_generation(
    model: str, values: dict[str, Any], output: Path, *, no_wait: bool, sandbox: bool, json_: bool
) -> None:
    """One generation, recorded in the ledger like a batch job: intent before the create, task id right
    after, files and hashes when saved. Everything that can be checked is checked before the create."""
    from kie.client._base import callback_for, prepare
    from kie.protocol import flows
    from kie.runner.finish import finish
    from kie.store import FAILED, REJECTED, RUNNING, SUBMITTING, SUCCEEDED, UNKNOWN, NewJob

    settings = settings_or_fail()
    try:
        prep = prepare(model, values, {}, settings=settings)
    except KieError as exc:
        fail(for_cli(exc))
    output = output_folder(output)
    est = prep.estimate
    with (
        session(sandbox, quiet=json_, settings=settings) as sess,
        contextlib.closing(open_ledger(sess.settings, sandbox=sess.is_sandbox)) as ledger,
        client_for(sess) as client,
    ):
        if not json_:
            price = (
                f"{fmt_credits(est.credits)} credits ≈ {fmt_usd(est.usd(sess.settings.usd_per_credit))}"
                if est.known
                else f"price unknown ({est.basis})"
            )
            console.print(f"[bold]{prep.model.id}[/] · {price}")
            if prep.model.endpoint.requires_callback and not sess.settings.callback_url:
                err_console.print(
                    f"{prep.model.id} requires a callback URL: kie sends a placeholder and polls, so "
                    "callbacks will not reach you (set KIE_CALLBACK_URL to receive them)."
                )
        try:
            values = client.run(
                flows.upload_inputs(prep.model, prep.input, upload_path=client.config.upload_path)
            )
        except KieError as exc:
            fail(exc)
        (job_id,) = ledger.add_jobs(None, [NewJob(prep.model.id, values, estimated_credits=est.credits_each)])
        before = _balance(client)
        claimed = ledger.claim_for_submit(job_id, client.config.settings.timeouts.read + 30)
        assert claimed is not None
        try:
            created = client.run(flows.submit(prep.model, values, callback_for(client.config, prep.model)))
        except SubmissionUnknownError as exc:
            ledger.transition(job_id, SUBMITTING, UNKNOWN, {"error": str(exc)}, error_message=str(exc))
            fail(exc)
        except KieError as exc:
            ledger.transition(job_id, SUBMITTING, REJECTED, {"error": str(exc)}, error_message=str(exc))
            fail(exc)
        ledger.mark_running(claimed, created.task_id)
        if no_wait:
            if sess.is_sandbox and not json_:
                err_console.print(
                    "[yellow]The sandbox stops with this command, so this task ends here too.[/]"
                )
            _emit_submitted(sess, created.task_id, prep.model.id, json_)
            return
        plain = not err_console.is_terminal
        line = StatusLine(prep.model.id, created.task_id, plain=plain and not json_)
        fetch_later = f"kie task get {created.task_id} --model {prep.model.id} -o {output}"
        try:
            live = (
                contextlib.nullcontext()
                if json_ or plain
                else Live(line, console=err_console, transient=True)
            )
            with live:
                status = created.status or client.wait(created.task_id, prep.model, on_status=line.update)
            if status.state is TaskState.FAILED:
                raise flows.task_failed(status)
        except KeyboardInterrupt:
            err_console.print(
                f"Stopped waiting. Task {created.task_id} keeps running on Kie and is not lost; fetch it "
                f"later with: {fetch_later}"
            )
            raise typer.Exit(INTERRUPTED) from None
        except TaskFailedError as exc:
            ledger.transition(job_id, RUNNING, FAILED, error_code=exc.fail_code, error_message=exc.fail_msg)
            fail(exc)
        except KieError as exc:
            fail(f"{exc} It is not lost: fetch it later with `{fetch_later}`.", code=exit_code_for(exc))
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
        done = client.run(finish(ledger, job_id, status, output_dir=output, via="generate"))
        if done.error is not None:
            fail(
                f"Task {created.task_id} succeeded and is paid for, but its files could not be saved to "
                f"{output} ({str(done.error).rstrip('.')}); nothing is lost: fetch them with "
                f"`{fetch_later}`.",
                code=KIE_FAILED,
            )
        results = done.saved
    if json_:
        print_json(
            sess.tag(
                {
                    "job": job_id,
                    "task_id": created.task_id,
                    "model": prep.model.id,
                    "state": status.state.value,
                    "credits": credits if credits is not None else est.credits,
                    "files": [
                        {"path": str(r.path), "sha256": r.sha256, "size": r.size, "url": r.url}
                        for r in results
                    ],
                }
            )
        )
        return
    console.print(
        f"[green]Done[/] in {time.monotonic() - line.started:.1f}s with {line.polls} status checks:"
    )
    for result in results:
        console.print(f"  {result.path}  ({result.size:,} bytes, sha256 {result.sha256[:12]}…)")


def _balance(client: Kie) -> float | None:
    """The account balance, or None when it cannot be read (it is a measurement, never a blocker)."""
    try:
        return client.credits()
    except KieError:
        return None


def _emit_submitted(sess: Session, task_id: str, model: str, json_: bool) -> None:
    if json_:
        print_json(sess.tag({"task_id": task_id, "model": model, "state": "submitted"}))
    else:
        console.print(f"Submitted task {task_id}. Fetch it with: kie task get {task_id} --model {model}")


task_app = typer.Typer(help="Work with one task by id.", no_args_is_help=True)


def _model_of(task_id: str, model: str | None, settings: Settings, sandbox: bool) -> ModelSpec | None:
    """The task's model: as given, else as the ledger recorded it (Market when neither knows)."""
    from kie import catalog

    try:
        if model:
            return catalog.get(model)
        with contextlib.closing(open_ledger(settings, sandbox=sandbox)) as ledger:
            job = ledger.find(task_id)
        return catalog.get(job["model"]) if job is not None else None
    except KieError as exc:
        fail(exc)


@task_app.command("get")
def task_get(
    task_id: Annotated[str, typer.Argument(help="The Kie task id.")],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model of the task (found in the ledger when kie created it)."),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for results.")] = Path("kie-output"),
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait if it is still running.")] = True,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Fetch a task's status and download its results, whatever created it."""
    settings = settings_or_fail()
    output = output_folder(output)
    with session(sandbox, quiet=json_, settings=settings) as sess:
        spec = _model_of(task_id, model, sess.settings, sess.is_sandbox)
        with (
            client_for(sess) as client,
            contextlib.closing(open_ledger(sess.settings, sandbox=sess.is_sandbox)) as ledger,
        ):
            try:
                status = client.get(task_id, spec)
                if not status.done and wait:
                    status = client.wait(task_id, spec, poll_now=True)
                results = _save_task(ledger, client, status, output)
            except KieError as exc:
                fail(exc)
            except OSError as exc:
                fail(
                    f"Cannot save task {task_id}'s files to {output} ({exc.strerror or exc}); choose a "
                    "folder you can write to with -o."
                )
    if json_:
        print_json(
            sess.tag(
                {
                    "task_id": status.task_id,
                    "model": status.model,
                    "state": status.state.value,
                    "fail_code": status.fail_code,
                    "fail_msg": status.fail_msg,
                    "files": results,
                }
            )
        )
        return
    console.print(
        f"task {status.task_id} ({status.model or (spec.id if spec else 'model unknown')}): "
        f"{status.state.value}"
    )
    if status.fail_msg:
        console.print(f"  failed: {status.fail_msg} (failCode {status.fail_code})")
    for result in results:
        console.print(f"  saved {result['path']}", markup=False)
    if status.state is TaskState.FAILED:
        raise typer.Exit(KIE_FAILED)


def _save_task(ledger: Ledger, client: Kie, status: TaskStatus, output: Path) -> list[dict[str, Any]]:
    """A task kie created ends on the one path every job takes (ledger, its own file names, its
    batch's folder and manifest); any other task is simply downloaded into `output`."""
    from kie.runner.finish import finish

    job = ledger.find(status.task_id)
    if job is None or job["task_id"] != status.task_id:
        if status.state is not TaskState.SUCCEEDED:
            return []
        return [{"path": str(r.path), "sha256": r.sha256} for r in client.download(status, output)]
    if status.state.terminal:
        done = client.run(finish(ledger, job["id"], status, output_dir=output, via="task get"))
        if done.error is not None:
            raise done.error
    return [{"path": f["path"], "sha256": f["sha256"]} for f in ledger.files_of(job["id"])]


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
    from kie import catalog

    spec = _model_of(task_id, model, settings_or_fail(), sandbox)
    rules = catalog.load().followups.get(operation, {})
    if spec is None:
        fail(
            f"Which model made task {task_id}? Pass --model (one of the families that support "
            f"{operation}: {', '.join(sorted(rules))})."
        )
    rule = rules.get(spec.family)
    if rule is None:
        fail(f"{spec.id} has no {operation}; {operation} exists for {', '.join(sorted(rules))} tasks.")
    values = parse_pairs(pairs, _list_fields(rule.model))
    values[rule.task_field] = task_id
    if index is not None:
        if rule.index_field is None:
            fail(f"{rule.model} takes no --index.")
        values[rule.index_field] = index
    if prompt is not None:
        values["prompt"] = prompt
    run_generation(rule.model, values, output, no_wait=False, sandbox=sandbox, json_=json_)


def _register_follow_ups() -> None:
    # Each command looks up its own operation here: a default argument would show up as an option.
    operation_of: dict[Any, str] = {}
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
            inputs: Annotated[list[str] | None, InputOpt] = None,
            model: Annotated[str | None, typer.Option("--model", help="Model of the original task.")] = None,
            output: Annotated[Path, typer.Option("-o", "--output", help="Folder for results.")] = Path(
                "kie-output"
            ),
            sandbox: SandboxOpt = False,
            json_: JsonOpt = False,
        ) -> None:
            _follow_up(operation_of[command], task_id, model, index, prompt, inputs, output, sandbox, json_)

        command.__doc__ = helptext
        operation_of[command] = operation
        task_app.command(operation)(command)


_register_follow_ups()


def upload(
    file: Annotated[Path, typer.Argument(help="Local file to upload.")],
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Upload a file; print the URL to use as a model input (kept about 3 days by Kie)."""
    try:
        with file.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        fail(f"Cannot read {file} ({exc.strerror or exc}); check the path and its permissions.")
    with session(sandbox, quiet=json_) as sess, client_for(sess) as client:
        try:
            uploaded = client.upload(file)
        except KieError as exc:
            fail(exc)
    if json_:
        print_json(sess.tag(dict(uploaded.__dict__)))
    else:
        print_plain(uploaded.download_url)


def credits(sandbox: SandboxOpt = False, json_: JsonOpt = False) -> None:
    """Your remaining Kie.ai credits."""
    with session(sandbox, quiet=json_) as sess, client_for(sess) as client:
        try:
            balance = client.credits()
        except KieError as exc:
            fail(exc)
        usd = balance * sess.settings.usd_per_credit
    if json_:
        print_json(sess.tag({"credits": balance, "usd": usd}))
    elif is_pipe():
        print_plain(f"{balance:g}")
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
    seed: Annotated[
        int, typer.Option(help="Seed for timings and faults: the same seed and batch meet the same faults.")
    ] = 0,
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults",
            help="Fault rates as NAME=RATE pairs, e.g. 'create.429=0.02,download.truncate=0.02'.",
        ),
    ] = None,
    recordinfo_fields: Annotated[
        str | None,
        typer.Option(
            "--recordinfo-fields",
            help="'2026-09' adds the newer documented fields (updateTime, progress, creditsConsumed, …).",
        ),
    ] = None,
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
    json_: Annotated[
        bool, typer.Option("--json", help="Print the URL, key and settings as one JSON line, then serve.")
    ] = False,
) -> None:
    """Run a local Kie.ai: same paths, shapes and quirks, no account, no credits."""
    from kie.sandbox.faults import parse_plan
    from kie.sandbox.recorded import RECORDINFO_FIELD_SETS
    from kie.sandbox.server import SandboxServer, sample_key, serve_forever
    from kie.sandbox.state import SandboxConfig

    if time_scale <= 0:
        fail("--time-scale must be greater than 0; 1 is real time, 0.1 makes a 30 s image take 3 s.")
    try:
        parse_plan(faults)
    except KieError as exc:
        fail(exc)
    if recordinfo_fields is not None and recordinfo_fields not in RECORDINFO_FIELD_SETS:
        fail(
            f"--recordinfo-fields must be {' or '.join(RECORDINFO_FIELD_SETS)}, not {recordinfo_fields!r}; "
            "leave it out for the recorded shapes."
        )
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
        faults=faults,
        recordinfo_fields=recordinfo_fields,
    )
    try:
        server = SandboxServer(config, host=host, port=port)
    except OSError as exc:
        fail(f"Cannot listen on {host}:{port}: {exc.strerror}. Choose another --port.")
    exports = {
        "KIE_BASE_URL": server.url,
        "KIE_UPLOAD_BASE_URL": server.url,
        "KIE_API_KEY": keys[0],
        "KIE_POLL_SCALE": f"{time_scale:g}",
    }
    if json_:
        print_plain(json.dumps({"url": server.url, "api_key": keys[0], "sandbox": True, "exports": exports}))
        sys.stdout.flush()
    else:
        console.print(f"kie sandbox listening on {server.url}  (Ctrl-C to stop)")
        if not api_key:
            console.print(f"sample API key: {keys[0]}")
        console.print("export " + " ".join(f"{k}={v}" for k, v in exports.items()))
    serve_forever(server)
    if not json_:
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
