"""`kie cost` and `kie recommend`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kie.cli._common import (
    SECTION,
    USER_ERROR,
    console,
    emit_table,
    err_console,
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

if TYPE_CHECKING:
    from kie.catalog.pricing import Estimate

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _estimate_one(
    model: str, values: dict[str, Any], n: int, settings: Settings, *, require: bool = True
) -> Estimate:
    from kie import catalog

    checked = catalog.validate(model, values, allow_local_files=False, require=require)
    return catalog.estimate(checked.model, checked.input, n=n, overrides=settings.price_overrides)


def cost(
    model: Annotated[str | None, typer.Argument(help="Model id or alias (omit with --file).")] = None,
    inputs: Annotated[
        list[str] | None, typer.Option("-i", "--input", help="key=value, repeatable.", metavar="KEY=VALUE")
    ] = None,
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
    # The catalogue's evidence trail is for maintainers (`kie models show --sources`); a user only needs
    # to know when their own override set the price.
    own = "; your price override" if est.source == "your price override" else ""
    console.print(
        f"{est.model} x {count}: [bold]{fmt_credits(est.credits)} credits[/] "
        f"≈ {fmt_usd(est.usd(settings.usd_per_credit))}  ({est.basis}{own})"
    )


def _cost_file(path: Path, default_model: str | None, settings: Settings, json_: bool) -> None:
    """The batch's plan, as `kie batch run --dry-run` makes it: every pipeline step is a priced job."""
    from kie.runner.plan import plan_batch

    try:
        plan = plan_batch(
            path,
            default_model=default_model,
            overrides=settings.price_overrides,
            allow_unknown_price=True,
        )
    except KieError as exc:
        fail(exc)
    rate = settings.usd_per_credit
    models: list[dict[str, Any]] = [
        {
            "model": model,
            "rows": jobs,
            "jobs": jobs,
            "credits": plan.credits_by_model[model] if jobs > plan.unknown_by_model.get(model, 0) else None,
            "unknown_rows": plan.unknown_by_model.get(model, 0),
            "usd": plan.credits_by_model[model] * rate,
        }
        for model, jobs in sorted(plan.rows_by_model.items())
    ]
    unknown_rows = len(plan.unknown_price_rows)
    if json_:
        print_json(
            {
                "file": str(path),
                "models": models,
                "jobs": len(plan.jobs),
                "total_credits_known": plan.known_credits,
                "total_usd_known": plan.known_credits * rate,
                "unknown_rows": unknown_rows,
                "invalid_rows": [{"line": e.line, "error": e.message} for e in plan.errors],
            }
        )
    else:
        rows: list[tuple[Any, ...]] = [
            (
                entry["model"],
                entry["jobs"],
                fmt_credits(entry["credits"]) if entry["credits"] is not None else "unknown",
                fmt_usd(entry["usd"]) if entry["credits"] is not None else "unknown",
                entry["unknown_rows"] or "",
            )
            for entry in models
        ]
        rows += [
            SECTION,
            (
                "total",
                len(plan.jobs),
                fmt_credits(plan.known_credits),
                fmt_usd(plan.known_credits * rate),
                unknown_rows or "",
            ),
        ]
        emit_table(
            ("model", "jobs", "credits", "USD", "unknown"),
            rows,
            title=f"Cost estimate for {path.name}",
            justify={"jobs": "right", "credits": "right", "USD": "right", "unknown": "right"},
        )
        if unknown_rows:
            err_console.print(
                f"[yellow]{unknown_rows} rows have no known price; the total covers only known prices.[/]"
            )
        for error in plan.errors:
            print_problem(error.line, error.message)
    if plan.errors:
        raise typer.Exit(USER_ERROR)


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
    from kie import catalog

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
    emit_table(
        ("#", "model", "credits", "why"),
        (
            (index, rec.model.id, fmt_credits(rec.estimate.credits_each), rec.reason)
            for index, rec in enumerate(ranked, start=1)
        ),
        title=f"Recommended for {use_case}: {catalog.load().use_cases[use_case].reason}",
    )
    if ladder and use_case != "utility":
        steps = " → ".join(
            f"{m.id} ({fmt_credits(e.credits_each) if e.known else price_text(m.price)})" for m, e in ladder
        )
        console.print(f"Escalation ladder (try cheap first, upgrade if it falls short): {steps}")
