"""Every bad line of a batch file is a `RowError` with its line number; reading never raises for one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kie.errors import KieError, ValidationError
from kie.runner.batchfile import ParsedBatch, read_batch

MODEL = "bytedance/seedream-v4-text-to-image"
GOOD = json.dumps({"model": MODEL, "prompt": "a fox"})


def jsonl(tmp_path: Path, *lines: str | bytes) -> Path:
    path = tmp_path / "batch.jsonl"
    path.write_bytes(b"\n".join(line.encode() if isinstance(line, str) else line for line in lines) + b"\n")
    return path


def errors_of(batch: ParsedBatch) -> dict[int, str]:
    return {error.line: error.message for error in batch.errors}


def row(**fields: object) -> str:
    return json.dumps({"model": MODEL, "prompt": "a fox", **fields})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (row(then=5), "`then` must be a step or a list of steps"),
        (row(then=[{"model": "recraft/crisp-upscale"}, 1]), "`then[1]` must be an object"),
        (row(then=[{"from": "image"}]), "`then[0]` needs a `model`"),
        (row(then={"model": "recraft/crisp-upscale", "from": 3}), "`then[0]` has a `from` that is not"),
        (row(output=5), "`output` must be a non-empty file name"),
        (row(output="  "), "`output` must be a non-empty file name"),
        (row(output="shots/cat"), "`output` must be a plain file name"),
        (row(output="..\\cat"), "`output` must be a plain file name"),
        (row(output="cat..png"), "`output` must be a plain file name"),
        (row(id=[1]), "`id` must be a non-empty string or an integer"),
        (row(id=True), "`id` must be a non-empty string or an integer"),
        (row(id=""), "`id` must be a non-empty string or an integer"),
        (row(model=7), "`model` must be a model id"),
        (row(seed=int("9" * 400)), "`seed` is too large; the limit is 9223372036854775807"),
        (row(meta={"deep": [int("1" * 400)]}), "`meta.deep[0]` is too large"),
        ('{"model": "m", "seed": ' + "7" * 5000 + "}", "has a number with thousands of digits"),
        ("[" * 100_000 + "]" * 100_000, "is nested too deeply to read"),
        (row(meta=json.loads("[" * 80 + "]" * 80)), "is nested more than 64 levels deep"),
        (row(prompt="a\x00b"), "`prompt` contains a NUL character"),
        ('{"model": "m", "guidance": NaN}', "NaN is not a JSON number"),
        ('{"model": "m", "prompt": "\\udc80"}', "`prompt` contains a broken character"),
        ("[1, 2]", "must be a JSON object"),
        ("{nope", "is not valid JSON"),
        (json.dumps({"prompt": "x"}), "has no `model`"),
    ],
)
def test_each_bad_row_is_a_row_error_on_its_line(tmp_path: Path, line: str, expected: str) -> None:
    batch = read_batch(jsonl(tmp_path, GOOD, "# a comment", line, GOOD))
    assert list(errors_of(batch)) == [3] and expected in errors_of(batch)[3]
    assert [r.line for r in batch.rows] == [1, 4]


def test_a_line_over_one_mib_and_a_line_that_is_not_utf8(tmp_path: Path) -> None:
    huge = row(prompt="x" * (1024 * 1024 + 10))
    batch = read_batch(jsonl(tmp_path, huge, b'{"model": "m", "prompt": "caf\xe9"}', GOOD))
    assert errors_of(batch) == {
        1: "is longer than 1 MiB; shorten it or give large content as a URL",
        2: "is not UTF-8 text; save the file as UTF-8",
    }
    assert [r.line for r in batch.rows] == [3]


def test_good_fields_are_kept(tmp_path: Path) -> None:
    steps = [{"model": "recraft/crisp-upscale"}]
    batch = read_batch(jsonl(tmp_path, "\ufeff" + row(id=12, output="fox-1", then=steps)))
    (parsed,) = batch.rows
    assert (parsed.id, parsed.output, parsed.then, parsed.input) == (
        "12",
        "fox-1",
        tuple(steps),
        {"prompt": "a fox"},
    )
    single = read_batch(jsonl(tmp_path, row(then={"model": "recraft/crisp-upscale"}))).rows[0]
    assert single.then == ({"model": "recraft/crisp-upscale"},)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   \n# another\n"])
def test_a_file_without_rows_is_one_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(text)
    with pytest.raises(ValidationError, match=r"empty\.jsonl has no rows; add one JSON object per line\.$"):
        read_batch(path)


def test_a_csv_with_only_a_header_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("model,prompt\n")
    with pytest.raises(KieError, match="has no rows"):
        read_batch(path)


def test_csv_cells_large_and_too_large(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    big = "y" * (200 * 1024)
    too_big = "z" * (1024 * 1024 + 1)
    path.write_text(f"model,prompt\n{MODEL},{big}\n{MODEL},{too_big}\n{MODEL},after\n")
    batch = read_batch(path)
    assert [r.input["prompt"] for r in batch.rows] == [big, "after"]
    assert errors_of(batch) == {3: "has a cell longer than 1 MiB; shorten it or give it as a URL"}


def test_a_csv_cell_beyond_what_csv_reads_stops_with_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(f"model,prompt\n{MODEL},first\n{MODEL},{'z' * (17 * 1024 * 1024)}\n")
    batch = read_batch(path)
    assert [r.input["prompt"] for r in batch.rows] == ["first"]
    (error,) = batch.errors
    assert error.line == 3 and "far over the 1 MiB limit" in error.message


def test_csv_rows_are_checked_like_jsonl_rows(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes(
        b"id,model,prompt,output,then\n"
        b"007," + MODEL.encode() + b',"a fox, running",12,\n'
        b"2," + MODEL.encode() + b",caf\xe9,x,\n"
        b"3," + MODEL.encode() + b",a fox, running,x,\n"
        b"4," + MODEL.encode() + b",x,a/b,\n"
        b"5," + MODEL.encode() + b',x,y,"[1]"\n'
        b"6," + MODEL.encode() + b",x,y," + b"9" * 400 + b"\n"
        b"7," + MODEL.encode() + b',"two\nlines",y,\n'
        b"8," + MODEL.encode() + b",nul \x00 here,y,\n"
    )
    batch = read_batch(path)
    assert [(r.line, r.id, r.output) for r in batch.rows] == [(2, "007", "12"), (8, "7", "y")]
    assert batch.rows[1].input["prompt"] == "two\nlines"
    errors = errors_of(batch)
    assert errors[3] == "is not UTF-8 text; save the file as UTF-8"
    assert "has 6 cells but the header has 5 columns" in errors[4]
    assert "`output` must be a plain file name" in errors[5]
    assert "`then[0]` must be an object" in errors[6]
    assert "`then` is too large; the limit is 9223372036854775807" in errors[7]
    assert "`prompt` contains a NUL character" in errors[10]
    assert sorted(errors) == [3, 4, 5, 6, 7, 10]
