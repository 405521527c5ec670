"""`kie cost` and `kie recommend`."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kie import catalog
from kie.catalog.pricing import Estimate
from kie.cli._common import (
    console,
    fail,
    fmt_credits,
    fmt_usd,
    parse_pairs,
    print_json,
    print_problem,
)
from kie.cli.models import estimate_json, price_text
from kie.config import Settings, load_settings
from kie.errors import KieError
from kie.runner.batchfile import read_batch

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _estimate_one(
    model: str, values: dict[str, Any], n: int, settings: Settings, *, require: bool = True
) -> Estimate:
    checked = catalog.validate(model, values, allow_local_files=False, require=require)
    return catalog.estimate(checked.model, checked.input, n=n, overrides=settings.price_overrides)


def cost(
    model: Annotated[str | None, typer.Argument(help="Model id or alias (omit with --file).")] = None,
    inputs: Annotated[list[str] | None, typer.Option("-i", "--input", help="key=value, repeatable.")] = None,
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="How many tasks.")] = 1,
    file: Annotated[Path | None, typer.Option("--file", help="Estimate a whole JSONL or CSV batch.")] = None,
    default_model: Annotated[
        str | None, typer.Option("--model", help="Model for rows that name none.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Credits and USD for one model (x N), or a per-model breakdown of a batch file."""
    settings = load_settings()
    if file is not None:
        _cost_file(file, default_model, settings, json_)
        return
    if model is None:
        fail("Name a model (kie cost MODEL) or a batch file (kie cost --file batch.jsonl).")
    try:
        est = _estimate_one(model, parse_pairs(inputs), count, settings, require=False)
    except KieError as exc:
        fail(str(exc))
    if json_:
        print_json(estimate_json(est, settings.usd_per_credit))
        return
    if not est.known:
        console.print(f"{est.model} x {count}: [yellow]price unknown[/] ({est.basis}).")
        console.print("Set a price in your config's \\[prices] table to budget for it.")
        return
    console.print(
        f"{est.model} x {count}: [bold]{fmt_credits(est.credits)} credits[/] "
        f"≈ {fmt_usd(est.usd(settings.usd_per_credit))}  ({est.basis}; source: {est.source})"
    )


def _cost_file(path: Path, default_model: str | None, settings: Settings, json_: bool) -> None:
    try:
        batch = read_batch(path, default_model=default_model)
    except KieError as exc:
        fail(str(exc))
    groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"rows": 0, "credits": 0.0, "unknown": 0})
    problems = [(e.line, e.message) for e in batch.errors]
    for row in batch.rows:
        try:
            est = _estimate_one(row.model, row.input, 1, settings)
        except KieError as exc:
            problems.append((row.line, str(exc)))
            continue
        group = groups[est.model]
        group["rows"] += 1
        if est.credits is None:
            group["unknown"] += 1
        else:
            group["credits"] += est.credits
    problems.sort()
    total_known = sum(g["credits"] for g in groups.values())
    unknown_rows = sum(g["unknown"] for g in groups.values())
    rate = settings.usd_per_credit
    if json_:
        print_json(
            {
                "file": str(path),
                "models": [
                    {
                        "model": m,
                        "rows": g["rows"],
                        "credits": g["credits"] if g["rows"] > g["unknown"] else None,
                        "unknown_rows": g["unknown"],
                        "usd": g["credits"] * rate,
                    }
                    for m, g in sorted(groups.items())
                ],
                "total_credits_known": total_known,
                "total_usd_known": total_known * rate,
                "unknown_rows": unknown_rows,
                "invalid_rows": [{"line": line, "error": msg} for line, msg in problems],
            }
        )
    else:
        table = Table(title=f"Cost estimate for {path.name}")
        for column, justify in (
            ("model", "left"),
            ("rows", "right"),
            ("credits", "right"),
            ("USD", "right"),
            ("unknown", "right"),
        ):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for model, g in sorted(groups.items()):
            known = g["rows"] - g["unknown"]
            table.add_row(
                model,
                str(g["rows"]),
                fmt_credits(g["credits"]) if known else "unknown",
                fmt_usd(g["credits"] * rate) if known else "unknown",
                str(g["unknown"]) if g["unknown"] else "",
            )
        table.add_section()
        table.add_row(
            "total",
            str(sum(g["rows"] for g in groups.values())),
            fmt_credits(total_known),
            fmt_usd(total_known * rate),
            str(unknown_rows) if unknown_rows else "",
        )
        console.print(table)
        if unknown_rows:
            console.print(
                f"[yellow]{unknown_rows} rows have no known price; the total covers only known prices.[/]"
            )
        for line, message in problems:
            print_problem(line, message)
    if problems:
        raise typer.Exit(1)


def recommend(
    use_case: Annotated[
        str, typer.Option("--use-case", help="budget, speed, quality, artistic, text, chinese or utility.")
    ],
    kind: Annotated[str | None, typer.Option(help="image, video or audio.")] = None,
    capability: Annotated[str | None, typer.Option(help="e.g. text-to-image, edit, upscale.")] = None,
    max_credits: Annotated[
        float | None, typer.Option("--max-credits", help="Only models at or under this price.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many to show.")] = 8,
    json_: JsonOpt = False,
) -> None:
    """A ranked list for a use case, with price and a one-line reason, plus the escalation ladder."""
    settings = load_settings()
    try:
        ranked = catalog.recommend(
            use_case,
            kind=kind,
            capability=capability,
            max_credits=max_credits,
            limit=limit,
            overrides=settings.price_overrides,
        )
    except KieError as exc:
        fail(str(exc))
    ladder = catalog.escalation(kind or "image")
    if json_:
        print_json(
            {
                "use_case": use_case,
                "why": catalog.load().use_cases[use_case].reason,
                "ranked": [
                    {
                        "model": r.model.id,
                        "score": r.score,
                        "credits": r.estimate.credits_each,
                        "reason": r.reason,
                    }
                    for r in ranked
                ],
                "escalation": [{"model": m.id, "credits": e.credits_each} for m, e in ladder],
            }
        )
        return
    if not ranked:
        fail("No active model fits those filters; loosen --max-credits or --capability.", code=1)
    table = Table(title=f"Recommended for {use_case}: {catalog.load().use_cases[use_case].reason}")
    for column in ("#", "model", "credits", "why"):
        table.add_column(column, overflow="fold")
    for index, rec in enumerate(ranked, start=1):
        table.add_row(str(index), rec.model.id, fmt_credits(rec.estimate.credits_each), rec.reason)
    console.print(table)
    if ladder and use_case != "utility":
        steps = " → ".join(
            f"{m.id} ({fmt_credits(e.credits_each) if e.known else price_text(m.price)})" for m, e in ladder
        )
        console.print(f"Escalation ladder (try cheap first, upgrade if it falls short): {steps}")
