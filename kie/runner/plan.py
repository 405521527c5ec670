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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kie import catalog
from kie.catalog.spec import ModelSpec, PriceRule
from kie.errors import KieError
from kie.runner.batchfile import Row, RowError, iter_batch
from kie.store import Ledger, NewJob

CHUNK = 1000  # jobs planned, and committed, at a time


@dataclass
class Plan:
    jobs: list[NewJob] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    unknown_price_rows: list[int] = field(default_factory=list)
    credits_by_model: dict[str, float] = field(default_factory=dict)
    rows_by_model: dict[str, int] = field(default_factory=dict)
    unknown_by_model: dict[str, int] = field(default_factory=dict)
    # How many jobs the plan holds, also when it was made without keeping them (`keep_jobs=False`).
    job_count: int = 0

    @property
    def known_credits(self) -> float:
        return sum(self.credits_by_model.values())

    def add(self, chunk: Plan) -> None:
        """Fold a chunk's jobs, errors and totals into this plan."""
        self.jobs.extend(chunk.jobs)
        self.errors.extend(chunk.errors)
        self.unknown_price_rows.extend(chunk.unknown_price_rows)
        self.job_count += chunk.job_count
        for model, credits in chunk.credits_by_model.items():
            self.credits_by_model[model] = self.credits_by_model.get(model, 0.0) + credits
        for model, count in chunk.rows_by_model.items():
            self.rows_by_model[model] = self.rows_by_model.get(model, 0) + count
        for model, count in chunk.unknown_by_model.items():
            self.unknown_by_model[model] = self.unknown_by_model.get(model, 0) + count


def batch_id_for(path: Path) -> str:
    """Stable per file location, so `kie batch run FILE` twice is one batch."""
    return "b-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]


def _matrix(row: Row, models: Sequence[str]) -> Iterator[Row]:
    for model in models:
        yield Row(row.line, model, dict(row.input), f"{row.key}@{model}", row.output, row.then)


def plan_batch(
    path: Path,
    *,
    default_model: str | None = None,
    matrix_models: Sequence[str] = (),
    overrides: Mapping[str, PriceRule] | None = None,
    allow_unknown_price: bool = False,
    keep_jobs: bool = True,
) -> Plan:
    """Every row's jobs, validated and priced; `kie batch run --dry-run` and `kie cost --file` both show
    this, so the two always agree. With `keep_jobs=False` only the totals and errors are kept: the
    fast pass over a huge file that finds every problem before anything is written or sent."""
    plan = Plan()
    for chunk in plan_chunks(
        path,
        default_model=default_model,
        matrix_models=matrix_models,
        overrides=overrides,
        allow_unknown_price=allow_unknown_price,
    ):
        if not keep_jobs:
            chunk.jobs = []
        plan.add(chunk)
    plan.errors.sort(key=lambda e: e.line)
    return plan


def plan_chunks(
    path: Path,
    *,
    default_model: str | None = None,
    matrix_models: Sequence[str] = (),
    overrides: Mapping[str, PriceRule] | None = None,
    allow_unknown_price: bool = False,
    chunk: int = CHUNK,
) -> Iterator[Plan]:
    """The plan in file order, a chunk of about `chunk` jobs at a time (with the errors of its rows),
    so planning a huge file holds one chunk in memory, never the whole file."""
    base = path.resolve().parent
    current = Plan()
    for item in iter_batch(path, default_model=default_model):
        if isinstance(item, RowError):
            current.errors.append(item)
            continue
        for row in _matrix(item, matrix_models) if matrix_models else (item,):
            _plan_row(current, row, overrides or {}, base, allow_unknown_price)
        if current.job_count >= chunk:
            yield current
            current = Plan()
    if current.job_count or current.errors:
        yield current


def _plan_row(
    plan: Plan, row: Row, overrides: Mapping[str, PriceRule], base: Path, allow_unknown_price: bool
) -> None:
    try:
        jobs = _row_jobs(row, overrides, base=base)
    except KieError as exc:
        plan.errors.append(RowError(row.line, str(exc)))
        return
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
        return
    if unknown:
        plan.unknown_price_rows.append(row.line)
    plan.jobs.extend(jobs)
    plan.job_count += len(jobs)
    for job in jobs:
        plan.rows_by_model[job.model] = plan.rows_by_model.get(job.model, 0) + 1
        plan.credits_by_model[job.model] = plan.credits_by_model.get(job.model, 0.0) + (
            job.estimated_credits or 0.0
        )
        if job.estimated_credits is None:
            plan.unknown_by_model[job.model] = plan.unknown_by_model.get(job.model, 0) + 1


def plan_into(
    ledger: Ledger,
    batch_id: str,
    path: Path,
    *,
    source: str | None,
    output_dir: str | None,
    options: dict[str, Any] | None,
    default_model: str | None = None,
    matrix_models: Sequence[str] = (),
    overrides: Mapping[str, PriceRule] | None = None,
    allow_unknown_price: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Plan the file into the ledger a chunk at a time, each chunk its own transaction (rows already
    there are skipped, so this also carries on a planning that was cut short), then mark the batch
    planned. Invalid rows are skipped: the caller has reported them. `on_chunk` hears how many jobs
    each committed chunk added; `stop` is asked between chunks. Returns the jobs added."""
    added = 0
    first = True
    for chunk in plan_chunks(
        path,
        default_model=default_model,
        matrix_models=matrix_models,
        overrides=overrides,
        allow_unknown_price=allow_unknown_price,
    ):
        if stop is not None and stop():
            return added
        new = ledger.add_jobs_chunked(
            batch_id,
            chunk.jobs,
            source=source,
            output_dir=output_dir,
            options=options if first else None,
            chunk=max(1, len(chunk.jobs)),
            planning=first,
        )
        first = False
        added += new
        if on_chunk is not None:
            on_chunk(new)
    ledger.mark_planned(batch_id)
    return added


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
