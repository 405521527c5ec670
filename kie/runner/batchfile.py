"""Reading batch files: JSONL (one object per row) or CSV (columns become fields).

A row names its `model` (or inherits the batch default), optionally an `id` (the resume key) and an
`output` name; every other key is an input field. Rows are checked against the catalogue here, all of
them, before anything is submitted, and each problem keeps its line number.

Whatever a file holds, reading it never raises for one bad row: text that is not UTF-8, JSON nested past
the stack, numbers or characters the ledger cannot store, and oversized lines all become `RowError`s, so
a dry run reports every problem the real run would meet.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kie.catalog.validate import INT64_MAX, unstorable
from kie.errors import ValidationError

RESERVED = ("id", "model", "output", "then")
MAX_ROW_BYTES = 1024 * 1024
# Far above MAX_ROW_BYTES so an oversized cell is read and reported as its own row's problem; only a
# cell past this makes the csv module give up on the rest of the file.
_CSV_FIELD_LIMIT = 16 * MAX_ROW_BYTES


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


class _NotJson(ValueError):
    """NaN and Infinity: Python's json reads them, but they are not JSON and no store accepts them."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(name)


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


def _json_problem(text: str) -> tuple[Any, str | None]:
    """The parsed value, or why the text is not one JSON value kie can keep."""
    try:
        return _loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON ({exc.msg} at column {exc.colno})"
    except _NotJson as exc:
        return None, f"is not valid JSON ({exc} is not a JSON number); write the number or a string"
    except ValueError:  # Python refuses integers of more than 4,300 digits
        return None, f"has a number with thousands of digits; the limit is {INT64_MAX}"
    except RecursionError:
        return None, "is nested too deeply to read; flatten it"


def _parse_csv_value(text: str) -> Any:
    stripped = text.strip()
    if stripped == "":
        return None
    if (
        stripped[0] in "[{"
        or stripped in ("true", "false")
        or stripped.lstrip("-").replace(".", "", 1).isdigit()
    ):
        value, problem = _json_problem(stripped)
        return text if problem is not None else value
    return text


def _broken_text(text: str) -> bool:
    """Text decoded with `surrogateescape` carries the bytes that were not UTF-8 as lone surrogates."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _jsonl_lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """Each line as bytes, or None for a line over MAX_ROW_BYTES (skipped without holding it in memory)."""
    number = 0
    while True:
        chunk = handle.readline(MAX_ROW_BYTES + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > MAX_ROW_BYTES and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):
                chunk = handle.readline(MAX_ROW_BYTES)
            yield number, None
            continue
        yield number, chunk


def _jsonl_rows(handle: IO[bytes]) -> Iterator[tuple[int, Any]]:
    for number, chunk in _jsonl_lines(handle):
        if chunk is None:
            yield number, RowError(number, "is longer than 1 MiB; shorten it or give large content as a URL")
            continue
        try:
            text = chunk.decode("utf-8").strip()
        except UnicodeDecodeError:
            yield number, RowError(number, "is not UTF-8 text; save the file as UTF-8")
            continue
        if number == 1:
            text = text.lstrip("\ufeff")
        if not text or text.startswith("#"):
            continue
        value, problem = _json_problem(text)
        yield number, RowError(number, problem) if problem is not None else value


def _csv_rows(handle: IO[bytes]) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problem = (
                f"has a cell of more than {_CSV_FIELD_LIMIT // MAX_ROW_BYTES} MiB, far over the 1 MiB limit"
                if "field larger" in str(exc)
                else f"is not valid CSV ({exc})"
            )
            yield start, RowError(start, f"{problem}, so the rest of the file was not read; fix it first")
            return
        if not cells:
            continue
        if header is None:
            header = [name.strip() for name in cells]
            if any(_broken_text(name) for name in header):
                yield start, RowError(start, "is not UTF-8 text; save the file as UTF-8")
                return
            continue
        if any(_broken_text(cell) for cell in cells):
            yield start, RowError(start, "is not UTF-8 text; save the file as UTF-8")
        elif len(cells) > len(header):
            yield (
                start,
                RowError(
                    start,
                    f"has {len(cells)} cells but the header has {len(header)} columns; quote cells that "
                    "contain commas",
                ),
            )
        elif any(len(cell) > MAX_ROW_BYTES for cell in cells):
            yield start, RowError(start, "has a cell longer than 1 MiB; shorten it or give it as a URL")
        else:
            yield (
                start,
                {name: _csv_cell(name, cell) for name, cell in zip(header, cells, strict=False) if name},
            )


def _csv_cell(name: str, cell: str) -> Any:
    """Reserved columns other than `then` stay text: an `id` of 007 or an `output` of 12 is a name."""
    if name in RESERVED and name != "then":
        return cell.strip() or None
    return _parse_csv_value(cell)


def _raw_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as handle:
        if path.suffix.lower() == ".csv":
            yield from _csv_rows(handle)
        else:
            yield from _jsonl_rows(handle)


def _steps(then: Any) -> tuple[tuple[dict[str, Any], ...], str | None]:
    """The row's pipeline steps, or why `then` is not a step or a list of steps."""
    if then is None:
        return (), None
    steps = [then] if isinstance(then, dict) else then
    if not isinstance(steps, list):
        return (), (
            f'`then` must be a step or a list of steps such as [{{"model": "recraft/crisp-upscale"}}], '
            f"got {type(then).__name__} {repr(then)[:40]}"
        )
    for index, step in enumerate(steps):
        where = f"`then[{index}]`"
        if not isinstance(step, dict):
            return (), f'{where} must be an object such as {{"model": "recraft/crisp-upscale"}}'
        if not isinstance(step.get("model"), str) or not step["model"].strip():
            return (), f"{where} needs a `model`; name the model that takes the previous result"
        if "from" in step and not isinstance(step["from"], str):
            return (), f"{where} has a `from` that is not a field name; give the input field as a string"
    return tuple(steps), None


def _output_problem(output: Any) -> str | None:
    if output is None:
        return None
    if not isinstance(output, str) or not output.strip():
        return "`output` must be a non-empty file name such as cat-01; give a string or leave it out"
    if "/" in output or "\\" in output or ".." in output:
        return f"`output` must be a plain file name without /, \\ or .., got {output!r}; drop the folder part"
    return None


def _row_id(raw: dict[str, Any]) -> tuple[str | None, str | None]:
    value = raw.get("id")
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        return None, "`id` must be a non-empty string or an integer; give each row a unique name or number"
    return str(value), None


def read_batch(path: Path, *, default_model: str | None = None) -> ParsedBatch:
    """Parse every row; syntax and structure problems become `RowError`s, never exceptions.

    Only a file that cannot be read, or holds no rows at all, raises (`ValidationError`, a `KieError`)."""
    batch = ParsedBatch()
    for item in iter_batch(path, default_model=default_model):
        if isinstance(item, RowError):
            batch.errors.append(item)
        else:
            batch.rows.append(item)
    return batch


def iter_batch(path: Path, *, default_model: str | None = None) -> Iterator[Row | RowError]:
    """`read_batch` as a stream, in file order: a huge file is never held in memory (only the ids
    seen so far, to report a repeated one). Raises as `read_batch` does, when the stream ends."""
    seen_ids: dict[str, int] = {}
    any_row = False
    try:
        for line, raw in _raw_rows(path):
            any_row = True
            yield _parsed_row(line, raw, default_model, seen_ids)
    except OSError as exc:
        raise ValidationError(f"Cannot read batch file {path}: {exc.strerror}; check the path.") from exc
    if not any_row:
        how = (
            "a header line and one row per task"
            if path.suffix.lower() == ".csv"
            else "one JSON object per line"
        )
        raise ValidationError(f"{path} has no rows; add {how}.")


def _parsed_row(line: int, raw: Any, default_model: str | None, seen_ids: dict[str, int]) -> Row | RowError:
    problem = _row_problem(raw)
    if problem is not None:
        return RowError(line, problem)
    model = raw.get("model") or default_model
    if not model:
        return RowError(line, "has no `model`; add one or pass --model")
    if not isinstance(model, str):
        return RowError(line, "`model` must be a model id such as nano-banana-pro")
    then, then_problem = _steps(raw.get("then"))
    row_id, id_problem = _row_id(raw)
    problem = then_problem or id_problem or _output_problem(raw.get("output"))
    if problem is not None:
        return RowError(line, problem)
    nested = raw.get("input")
    values = (
        dict(nested)
        if isinstance(nested, dict)
        else {k: v for k, v in raw.items() if k not in RESERVED and v is not None}
    )
    if row_id is not None:
        if row_id in seen_ids:
            return RowError(line, f"repeats id {row_id!r} from line {seen_ids[row_id]}")
        seen_ids[row_id] = line
    return Row(line, model, values, row_id, raw.get("output"), then)


def _row_problem(raw: Any) -> str | None:
    """Why a parsed line cannot be a row at all: its syntax, its shape, or a value no store can keep."""
    if isinstance(raw, RowError):
        return raw.message
    if not isinstance(raw, dict):
        return "must be a JSON object"
    bad = unstorable(raw)
    if bad is None:
        return None
    where, problem = bad
    return f"`{where}` {problem}" if where else problem
