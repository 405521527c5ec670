"""Reading batch files: JSONL (one object per row) or CSV (columns become fields).

A row names its `model` (or inherits the batch default), optionally an `id` (the resume key) and an
`output` name; every other key is an input field. Rows are checked against the catalogue here, all of
them, before anything is submitted, and each problem keeps its line number.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kie.errors import KieError

RESERVED = ("id", "model", "output", "then")


@dataclass(frozen=True)
class Row:
    line: int
    model: str
    input: dict[str, Any]
    id: str | None = None
    output: str | None = None
    then: tuple[dict[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """The resume key: the row's `id`, or a hash of its content (model, input and steps)."""
        if self.id:
            return self.id
        canonical = json.dumps(
            {"model": self.model, "input": self.input, "then": list(self.then)},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return "h-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RowError:
    line: int
    message: str


@dataclass
class ParsedBatch:
    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _parse_csv_value(text: str) -> Any:
    stripped = text.strip()
    if stripped == "":
        return None
    if (
        stripped[0] in "[{"
        or stripped in ("true", "false")
        or stripped.lstrip("-").replace(".", "", 1).isdigit()
    ):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    return text


def _raw_rows(path: Path) -> Iterator[tuple[int, Any]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            for index, record in enumerate(csv.DictReader(handle), start=2):
                yield index, {k: _parse_csv_value(v or "") for k, v in record.items() if k}
        return
    with path.open(encoding="utf-8") as handle:
        for index, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                yield index, json.loads(text)
            except json.JSONDecodeError as exc:
                yield index, RowError(index, f"is not valid JSON ({exc.msg} at column {exc.colno})")


def read_batch(path: Path, *, default_model: str | None = None) -> ParsedBatch:
    """Parse every row; syntax and structure problems become `RowError`s, never exceptions."""
    batch = ParsedBatch()
    try:
        rows = list(_raw_rows(path))
    except OSError as exc:
        raise KieError(f"Cannot read batch file {path}: {exc.strerror}. Check the path.") from exc
    seen_ids: dict[str, int] = {}
    for line, raw in rows:
        if isinstance(raw, RowError):
            batch.errors.append(raw)
            continue
        if not isinstance(raw, dict):
            batch.errors.append(RowError(line, "must be a JSON object"))
            continue
        model = raw.get("model") or default_model
        if not model:
            batch.errors.append(RowError(line, "has no `model`; add one or pass --model"))
            continue
        nested = raw.get("input")
        values = (
            dict(nested)
            if isinstance(nested, dict)
            else {k: v for k, v in raw.items() if k not in RESERVED and v is not None}
        )
        then = raw.get("then") or ()
        if isinstance(then, dict):
            then = (then,)
        row_id = None if raw.get("id") is None else str(raw["id"])
        if row_id is not None:
            if row_id in seen_ids:
                batch.errors.append(RowError(line, f"repeats id {row_id!r} from line {seen_ids[row_id]}"))
                continue
            seen_ids[row_id] = line
        batch.rows.append(Row(line, str(model), values, row_id, raw.get("output"), tuple(then)))
    return batch
