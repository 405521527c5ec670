"""Small pieces every command shares: parsing `-i key=value`, printing tables and JSON, exit codes.

Exit codes are one table for every command (the README repeats it):

    0    everything asked for is done
    1    Kie.ai or the network failed
    2    the user's input or setup is wrong (nothing was spent because of it)
    3    a batch ended with rows failed, rejected, unknown or paused (budget, 402, stopped)
    130  interrupted (Ctrl-C)

When stdout is not a terminal (a pipe, a file, `$(...)`), output is for scripts: tables become
tab-separated lines with a header, never wrapped, and nothing is decorated.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from kie.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConfigurationError,
    InsufficientCreditsError,
    KieError,
    ValidationError,
)

OK, KIE_FAILED, USER_ERROR, BATCH_INCOMPLETE, INTERRUPTED = 0, 1, 2, 3, 130

# Rich wraps at 80 columns when it cannot see a terminal, which split ids and URLs in pipes.
console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
err_console = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())


def one_sentence(message: str) -> str:
    """Messages are assembled from parts that may end in a full stop already (Kie's `msg`, an
    exception's text): end with exactly one."""
    text = re.sub(r"\.(\s*\.)+", ".", message.strip())
    return text if text.endswith((".", "?", "!", "…")) else text + "."


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an error, by the table above: the user's side (input, key, budget, credits)
    is 2, Kie's or the network's side is 1."""
    if isinstance(
        exc,
        (
            ConfigurationError,
            ValidationError,
            AuthenticationError,
            BudgetExceededError,
            InsufficientCreditsError,
        ),
    ):
        return USER_ERROR
    return KIE_FAILED


def fail(message: str | BaseException, code: int | None = None) -> NoReturn:
    """End the command with one clear sentence and no traceback."""
    if code is None:
        code = exit_code_for(message) if isinstance(message, BaseException) else USER_ERROR
    err_console.print(
        f"[bold red]Error:[/] {escape(one_sentence(str(message)))}", markup=True, soft_wrap=True
    )
    raise typer.Exit(code)


def for_cli(exc: KieError) -> KieError:
    """A validation error phrased for the terminal: the prompt is given with `--prompt`, not as an
    input field, so say so where it is the field at fault."""
    if not isinstance(exc, ValidationError) or exc.model is None:
        return exc
    if not any(issue.field == "prompt" for issue in exc.issues):
        return exc
    issues = [
        replace(issue, problem=f"{issue.problem} (give it with --prompt)")
        if issue.field == "prompt"
        else issue
        for issue in exc.issues
    ]
    return ValidationError.from_issues(exc.model, issues)


def is_pipe() -> bool:
    return not sys.stdout.isatty()


def emit_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    caption: str | None = None,
    justify: Mapping[str, str] | None = None,
) -> None:
    """A Rich table on a terminal; tab-separated lines (header first) in a pipe, so `grep`, `cut` and
    `awk` see whole ids."""
    if is_pipe():
        out = sys.stdout
        out.write("\t".join(columns) + "\n")
        for row in rows:
            if row is not SECTION:
                out.write("\t".join(_cell(v) for v in row) + "\n")
        return
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for column in columns:
        table.add_column(column, justify=(justify or {}).get(column, "left"), overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        if row is SECTION:
            table.add_section()
            continue
        table.add_row(*(escape(_cell(v)) for v in row))
    console.print(table)


# A row marker for `emit_table`: a separator line on a terminal, nothing in a pipe.
SECTION: tuple[Any, ...] = ("-- section --",)


def _cell(value: Any) -> str:
    return "" if value is None else str(value).replace("\t", " ").replace("\n", " ")


def print_problem(line: int, message: str) -> None:
    """One invalid batch row, markup-safe (messages quote things like `[prices]`)."""
    err_console.print(f"[red]line {line}:[/] {escape(message)}", soft_wrap=True)


def parse_value(text: str) -> Any:
    """`5` → 5, `true` → True, `[1,2]` → list, anything else stays a string (URLs, prompts)."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def parse_pairs(pairs: Iterable[str] | None, list_fields: Iterable[str] | None = None) -> dict[str, Any]:
    """Turn repeated `-i key=value` into a dict.

    A key given twice is collected into a list only for `list_fields` (several images for
    `image_urls`); for any other key the repeat is a mistake, and silently keeping one value or
    sending a list would both be a paid surprise."""
    lists = set(list_fields or ())
    values: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            fail(f"-i expects key=value, got {pair!r}; for example -i aspect_ratio=16:9.")
        value = parse_value(raw)
        if key not in values:
            values[key] = [value] if key in lists and not isinstance(value, list) else value
        elif key in lists:
            values[key] = [*values[key], *(value if isinstance(value, list) else [value])]
        else:
            fail(f"-i {key} is given more than once ({values[key]!r} and {value!r}); give it once.")
    return values


def read_json_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"Cannot read {path}: {exc.strerror}. Check the path and try again.")
    except json.JSONDecodeError as exc:
        fail(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}). Fix the file and try again.")
    if not isinstance(data, dict):
        fail(f"{path} must contain a JSON object of input fields.")
    return data


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def print_plain(text: str) -> None:
    """A bare value for `$(...)`: no markup, no wrapping, one line."""
    sys.stdout.write(text + "\n")


def fmt_credits(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if not float(value).is_integer() else f"{int(value):,}"


def fmt_usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}".rstrip("0").rstrip(".")


def poll_scale() -> float:
    """`KIE_POLL_SCALE`: poll on the time scale of a time-scaled sandbox (`kie sandbox --time-scale`)."""
    from kie.client._base import env_poll_scale

    try:
        return env_poll_scale()
    except ConfigurationError as exc:
        fail(exc)
