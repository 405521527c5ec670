"""Small pieces every command shares: parsing `-i key=value`, printing JSON, reporting errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command with one clear sentence and no traceback."""
    err_console.print(f"[bold red]Error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def print_problem(line: int, message: str) -> None:
    """One invalid batch row, markup-safe (messages quote things like `[prices]`)."""
    err_console.print(f"[red]line {line}:[/] {escape(message)}", soft_wrap=True)


def parse_value(text: str) -> Any:
    """`5` → 5, `true` → True, `[1,2]` → list, anything else stays a string (URLs, prompts)."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def parse_pairs(pairs: Iterable[str] | None) -> dict[str, Any]:
    """Turn repeated `-i key=value` into a dict; a key given twice becomes a list (several images)."""
    values: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            fail(f"-i expects key=value, got {pair!r}; for example -i aspect_ratio=16:9.")
        value = parse_value(raw)
        if key in values:
            existing = values[key]
            values[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            values[key] = value
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


def fmt_credits(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if not float(value).is_integer() else f"{int(value):,}"


def fmt_usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}".rstrip("0").rstrip(".")


def poll_scale() -> float:
    """`KIE_POLL_SCALE`: poll on the time scale of a time-scaled sandbox (`kie sandbox --time-scale`)."""
    raw = os.environ.get("KIE_POLL_SCALE", "").strip()
    try:
        scale = float(raw) if raw else 1.0
    except ValueError:
        scale = -1.0
    if not scale > 0:
        fail(f"KIE_POLL_SCALE must be a positive number such as 0.01, not {raw!r}; unset it for real time.")
    return scale
