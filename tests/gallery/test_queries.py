"""The gallery's reads on SQLite and PostgreSQL: keyset pages, filters, full-text search, the matrix
and spend."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from kie.errors import ValidationError
from kie.gallery.marks import set_marks
from kie.gallery.queries import Filters, Gallery, decode_cursor
from kie.store import Ledger, NewJob
from tests.gallery.seed import MATRIX_MODELS, Seeded, seed


@pytest.fixture
def seeded_store(store_url: str, tmp_path: Path) -> Iterator[tuple[Seeded, Gallery]]:
    ledger = Ledger(store_url)
    seeded = seed(ledger, tmp_path / "media", fillers=7)
    gallery = Gallery(ledger, tmp_path / "index")
    yield seeded, gallery
    gallery.close()
    ledger.close()


def walk(gallery: Gallery, filters: Filters, size: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(100):
        page = gallery.page(filters, cursor, size)
        assert len(page.cards) <= size
        ids += [card.job["id"] for card in page.cards]
        if page.cursor is None:
            return ids
        cursor = page.cursor
    raise AssertionError("pages never ended")


def test_keyset_pages_cover_every_job_once_newest_first(seeded_store: tuple[Seeded, Gallery]) -> None:
    seeded, gallery = seeded_store
    everything = [job["id"] for job in seeded.ledger.jobs()]
    for size in (1, 4, 5, 100):
        ids = walk(gallery, Filters(), size)
        assert sorted(ids) == sorted(everything) and len(ids) == len(set(ids))
    stamps = {job["id"]: (job["created_at"], job["id"]) for job in seeded.ledger.jobs()}
    ids = walk(gallery, Filters(), 4)
    assert [stamps[i] for i in ids] == sorted(stamps.values(), reverse=True)


def test_a_page_is_stable_when_jobs_arrive_meanwhile(seeded_store: tuple[Seeded, Gallery]) -> None:
    seeded, gallery = seeded_store
    first = gallery.page(Filters(), None, 5)
    seeded.ledger.add_jobs(None, [NewJob("google/nano-banana", {"prompt": "arrived later"})])
    rest = walk_from(gallery, first.cursor)
    older = [job["id"] for job in seeded.ledger.jobs() if job["prompt"] != "arrived later"]
    assert sorted([c.job["id"] for c in first.cards] + rest) == sorted(older)


def walk_from(gallery: Gallery, cursor: str | None) -> list[str]:
    ids: list[str] = []
    while cursor is not None:
        page = gallery.page(Filters(), cursor, 5)
        ids += [card.job["id"] for card in page.cards]
        cursor = page.cursor
    return ids


def test_filters_narrow_the_grid(seeded_store: tuple[Seeded, Gallery]) -> None:
    seeded, gallery = seeded_store

    def ids(**params: str) -> set[str]:
        return set(walk(gallery, Filters.parse(params), 50))

    assert ids(state="failed") == {seeded.by_state["failed"]}
    assert ids(state="unknown") == {seeded.by_state["unknown"]}
    assert ids(media="video") == {seeded.video_job}
    assert ids(media="audio") == {seeded.audio_job}
    assert ids(batch=seeded.matrix_batch) == set(seeded.matrix_jobs)
    assert ids(batch=seeded.matrix_batch, model=MATRIX_MODELS[0]) == {
        job["id"]
        for job in seeded.ledger.jobs(batch_id=seeded.matrix_batch)
        if job["model"] == MATRIX_MODELS[0]
    }
    assert ids(min_credits="50") == {seeded.video_job}
    assert seeded.video_job not in ids(max_credits="20")
    today = dt.date.today()
    assert len(ids(since=str(today - dt.timedelta(days=1)))) == len(seeded.ledger.jobs())
    assert ids(until=str(today - dt.timedelta(days=1))) == set()
    set_marks(seeded.ledger, seeded.fox_job, starred=True)
    assert ids(starred="1") == {seeded.fox_job}
    set_marks(seeded.ledger, seeded.audio_job, archived=True)
    assert seeded.audio_job not in ids()
    assert ids(archived="1") == {seeded.audio_job}
    assert gallery.count(Filters.parse({"state": "failed"})) == 1


def test_search_finds_prompts_by_words_and_prefixes(seeded_store: tuple[Seeded, Gallery]) -> None:
    seeded, gallery = seeded_store

    def found(q: str) -> set[str]:
        return set(walk(gallery, Filters(q=q), 50))

    assert found("fox snow") == {seeded.fox_job}
    assert found("FOX") == {seeded.fox_job}
    assert found("lightho") == {j["id"] for j in seeded.ledger.jobs() if "lighthouse" in (j["prompt"] or "")}
    assert found("fox piano") == set()
    assert found('" OR 1=1 --') == set(walk(gallery, Filters(q="or 1 1"), 50))
    (later,) = seeded.ledger.add_jobs(None, [NewJob("google/nano-banana", {"prompt": "a zebra crossing"})])
    assert found("zebra") == {later}


def test_bad_filters_are_one_sentence_naming_the_field() -> None:
    for params, field in (
        ({"state": "finished"}, "state"),
        ({"media": "pdf"}, "media"),
        ({"since": "yesterday"}, "since"),
        ({"min_credits": "-3"}, "min_credits"),
    ):
        with pytest.raises(ValidationError) as caught:
            Filters.parse(params)
        message = str(caught.value)
        assert field in message and message.endswith(".") and "\n" not in message
    with pytest.raises(ValidationError, match="cursor"):
        decode_cursor("not-a-cursor")
    assert Filters.parse({"state": "done", "q": "fox", "model": ""}).query() == "state=done&q=fox"


def test_the_matrix_and_spend(seeded_store: tuple[Seeded, Gallery]) -> None:
    seeded, gallery = seeded_store
    matrix = gallery.matrix(seeded.matrix_batch)
    assert matrix is not None
    assert matrix["columns"] == list(MATRIX_MODELS)
    assert len(matrix["rows"]) == 3 and all(len(cells) == 2 for cells in matrix["grid"].values())
    assert [t["credits"] for t in matrix["row_totals"].values()] == [9.0, 9.0, 9.0]
    assert [matrix["column_totals"][m]["credits"] for m in MATRIX_MODELS] == [15.0, 12.0]
    assert matrix["total"]["credits"] == 27.0
    spend = gallery.spend()
    by_model = {row["key"]: row for row in spend["model"]}
    # Committed jobs only: pending, failed, rejected and abandoned ones cost nothing.
    assert by_model["veo3_fast"]["charged"] == 60.0
    nano = by_model["google/nano-banana"]
    assert nano["jobs"] == 3 + 1 + 4  # matrix cells, the fox, then submitting, running, succeeded, unknown
    assert nano["charged"] == 3 * 4.0 + 4.0 + 4.0
    assert sum(row["jobs"] for row in spend["day"]) == sum(row["jobs"] for row in spend["model"])
    assert [row["key"] for row in spend["batch"]] == [seeded.matrix_batch]
