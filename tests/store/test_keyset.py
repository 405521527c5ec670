"""Reading a batch page by page from the last row seen: every job once, in row order."""

from __future__ import annotations

from kie.store import Ledger, NewJob


def test_pages_return_every_job_exactly_once_in_order(store_url: str) -> None:
    ledger = Ledger(store_url)
    ledger.ensure_batch("b", source=None, output_dir=None, options={})
    for part in range(3):  # three chunks, each with its own created_at, some without a line number
        ledger.add_jobs(
            "b",
            [
                NewJob(
                    "z-image",
                    {"prompt": f"p{part}-{n}"},
                    row_key=f"k{part}-{n}",
                    row_line=None if n % 5 == 0 else n,
                )
                for n in range(23)
            ]
            + [NewJob("z-image", {"prompt": f"s{part}"}, row_key=f"k{part}-1", row_line=1, step=1)],
        )
    expected = [job["id"] for job in ledger.jobs(batch_id="b")]
    paged = [job["id"] for job, _files in ledger.iter_jobs(batch_id="b", page=7)]
    assert len(expected) == 3 * 24
    assert paged == expected
    only = [job["id"] for job, _files in ledger.iter_jobs(batch_id="b", states=["pending"], page=1)]
    assert only == expected

    # `kie jobs list --after`: pages from the last job shown cover the list once, in order.
    pages: list[str] = []
    after: str | None = None
    while True:
        page = [job["id"] for job in ledger.jobs(batch_id="b", limit=10, after=after)]
        if not page:
            break
        pages += page
        after = page[-1]
    assert pages == expected


def test_listing_after_an_unknown_job_says_which_id_to_pass(store_url: str) -> None:
    import pytest

    from kie.errors import ValidationError

    ledger = Ledger(store_url)
    with pytest.raises(ValidationError, match="No job 'nope'"):
        ledger.jobs(after="nope")
