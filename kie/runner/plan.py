"""From a batch file to validated, priced jobs, before anything is submitted.

Every row (and every pipeline step of it) is checked against the catalogue first; problems come back with
line numbers, all at once. A row's resume key is its `id`, else a hash of its content, so rerunning the
same file finds the same jobs in the ledger and pays for nothing twice.

Relative paths to local files are read against the batch file's folder, not the shell's, and kept absolute
in each job's input: a batch resumed from another folder still finds its files. The resume key is taken
from the row as written, so the same file keeps its keys wherever it is run from.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kie import catalog
from kie.catalog.spec import ModelSpec, PriceRule
from kie.errors import KieError
from kie.runner.batchfile import Row, RowError, read_batch
from kie.store import NewJob


@dataclass
class Plan:
    jobs: list[NewJob] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    unknown_price_rows: list[int] = field(default_factory=list)
    credits_by_model: dict[str, float] = field(default_factory=dict)
    rows_by_model: dict[str, int] = field(default_factory=dict)
    unknown_by_model: dict[str, int] = field(default_factory=dict)

    @property
    def known_credits(self) -> float:
        return sum(self.credits_by_model.values())


def batch_id_for(path: Path) -> str:
    """Stable per file location, so `kie batch run FILE` twice is one batch."""
    return "b-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]


def _matrix(rows: Sequence[Row], models: Sequence[str]) -> list[Row]:
    out = []
    for row in rows:
        for model in models:
            out.append(Row(row.line, model, dict(row.input), f"{row.key}@{model}", row.output, row.then))
    return out


def plan_batch(
    path: Path,
    *,
    default_model: str | None = None,
    matrix_models: Sequence[str] = (),
    overrides: Mapping[str, PriceRule] | None = None,
    allow_unknown_price: bool = False,
) -> Plan:
    """Every row's jobs, validated and priced; `kie batch run --dry-run` and `kie cost --file` both show
    this, so the two always agree."""
    parsed = read_batch(path, default_model=default_model)
    plan = Plan(errors=list(parsed.errors))
    rows = _matrix(parsed.rows, matrix_models) if matrix_models else parsed.rows
    base = path.resolve().parent
    for row in rows:
        try:
            jobs = _row_jobs(row, overrides or {}, base=base)
        except KieError as exc:
            plan.errors.append(RowError(row.line, str(exc)))
            continue
        unknown = [j for j in jobs if j.estimated_credits is None]
        if unknown and not allow_unknown_price:
            models = ", ".join(sorted({j.model for j in unknown}))
            plan.errors.append(
                RowError(
                    row.line,
                    f"has no known price ({models}); add a price in the config's [prices] table or pass "
                    "--allow-unknown-price",
                )
            )
            continue
        if unknown:
            plan.unknown_price_rows.append(row.line)
        plan.jobs.extend(jobs)
        for job in jobs:
            plan.rows_by_model[job.model] = plan.rows_by_model.get(job.model, 0) + 1
            plan.credits_by_model[job.model] = plan.credits_by_model.get(job.model, 0.0) + (
                job.estimated_credits or 0.0
            )
            if job.estimated_credits is None:
                plan.unknown_by_model[job.model] = plan.unknown_by_model.get(job.model, 0) + 1
    plan.errors.sort(key=lambda e: e.line)
    return plan


def _absolute(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or value.startswith(("http://", "https://", "data:")) or not value.strip():
        return value
    path = Path(value)
    with contextlib.suppress(RuntimeError):  # `~name` of an unknown user: left for validation to report
        path = path.expanduser()
    return str(path if path.is_absolute() else base / path)


def with_absolute_paths(spec: ModelSpec, values: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """`values` with relative local paths in media fields made absolute against `base`; URLs untouched."""
    out = dict(values)
    for name, field_spec in spec.fields.items():
        if field_spec.media is None or name not in out:
            continue
        value = out[name]
        out[name] = [_absolute(v, base) for v in value] if isinstance(value, list) else _absolute(value, base)
    return out


def _row_jobs(row: Row, overrides: Mapping[str, PriceRule], *, base: Path | None = None) -> list[NewJob]:
    """The row's first job and one job per pipeline step; steps get their source URL at run time."""
    folder = base or Path.cwd()
    spec = catalog.get(row.model)
    checked = catalog.validate(row.model, with_absolute_paths(spec, row.input, folder))
    est = catalog.estimate(checked.model, checked.input, overrides=overrides)
    jobs = [
        NewJob(
            checked.model.id,
            checked.input,
            row_key=row.key,
            row_line=row.line,
            output_name=row.output,
            estimated_credits=est.credits_each,
        )
    ]
    for index, step in enumerate(row.then, start=1):
        if not isinstance(step, Mapping) or not isinstance(step.get("model"), str):
            raise KieError(f"step {index} of `then` needs a `model`")
        spec = catalog.get(step["model"])
        source = step.get("from")
        if source is not None and not isinstance(source, str):
            raise KieError(
                f"step {index} of `then` has a `from` that is not a field name; give it as a string"
            )
        values = with_absolute_paths(
            spec, {k: v for k, v in step.items() if k not in ("model", "from")}, folder
        )
        target = source or next((n for n, f in spec.fields.items() if f.media == "image"), None)
        if target is None or target not in spec.fields:
            raise KieError(
                f"step {index} ({spec.id}) has no input field for the previous result; name one with `from`"
            )
        placeholder = {**values, target: "https://placeholder.invalid/previous-result.png"}
        step_checked = catalog.validate(spec, placeholder)
        step_est = catalog.estimate(spec, step_checked.input, overrides=overrides)
        jobs.append(
            NewJob(
                spec.id,
                {k: v for k, v in step_checked.input.items() if k != target},
                row_key=row.key,
                row_line=row.line,
                step=index,
                relation="pipeline-step",
                output_name=row.output,
                estimated_credits=step_est.credits_each,
                pending_input={"_from": target},
            )
        )
    return jobs
