"""File names and saving: long names stay distinct, partial files are private, results are never clobbered."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kie.errors import DownloadError
from kie.protocol.files import STEM_LIMIT, FileSink, safe_stem

PNG = b"\x89PNG\r\n\x1a\n"


def save(directory: Path, stem: str, body: bytes, *, overwrite: bool = False) -> Path:
    sink = FileSink(directory, stem, "http://h/x")
    sink.start("image/png", len(body))
    sink.write(body)
    return sink.finish(overwrite=overwrite).path


def test_long_names_that_share_a_start_stay_distinct() -> None:
    first, second = "p" * 200 + "-cat", "p" * 200 + "-dog"
    assert safe_stem(first) != safe_stem(second)
    assert len(safe_stem(first)) == STEM_LIMIT and safe_stem(first).startswith("p" * 100)
    assert safe_stem(safe_stem(first)) == safe_stem(first)  # stable when applied again
    assert safe_stem("short-name_1.v2") == "short-name_1.v2"


def test_safe_stem_never_produces_the_rename_marker() -> None:
    assert safe_stem("x~2") == "x_2" and "~" not in safe_stem("~~~a~")


def test_a_renamed_stem_keeps_its_marker_on_disk(tmp_path: Path) -> None:
    assert save(tmp_path, "x~2-1", PNG + b"a").name == "x~2-1.png"


def test_partial_files_are_per_process_and_per_download(tmp_path: Path) -> None:
    one, two = FileSink(tmp_path, "same-1", "u"), FileSink(tmp_path, "same-1", "u")
    one.start(None, None)
    two.start(None, None)
    parts = sorted(p.name for p in tmp_path.iterdir())
    assert len(parts) == 2 and all(p.startswith(f".same-1.{os.getpid()}-") for p in parts)
    assert all(p.endswith(".part") for p in parts)
    one.write(PNG + b"one")
    two.write(PNG + b"two")
    assert one.finish().path.read_bytes() == PNG + b"one"
    two.abort()
    assert [p.name for p in tmp_path.iterdir()] == ["same-1.png"]


def test_a_retried_download_starts_a_fresh_partial_file(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, "r-1", "u")
    sink.start(None, None)
    sink.write(b"half of a first try")
    sink.start(None, None)  # the client retries with the same sink
    sink.write(PNG + b"whole")
    saved = sink.finish()
    assert saved.path.read_bytes() == PNG + b"whole" and saved.size == len(PNG) + 5
    assert [p.name for p in tmp_path.iterdir()] == ["r-1.png"]


def test_an_existing_result_is_kept_when_equal_and_refused_when_different(tmp_path: Path) -> None:
    path = save(tmp_path, "r-1", PNG + b"first")
    assert save(tmp_path, "r-1", PNG + b"first") == path  # the same bytes again: fine
    with pytest.raises(DownloadError) as caught:
        save(tmp_path, "r-1", PNG + b"other")
    message = str(caught.value)
    assert str(path) in message and message.endswith("then retry.") and "\n" not in message
    assert path.read_bytes() == PNG + b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["r-1.png"]  # no partial file left behind
    assert save(tmp_path, "r-1", PNG + b"other", overwrite=True).read_bytes() == PNG + b"other"
