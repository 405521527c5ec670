"""Gallery benchmark: page times on a 100,000-job ledger, deep against first, and the thumbnail cache.

The ledger is filled directly (set-based inserts of finished jobs, a file row each pointing at one of
a few hundred real PNGs), not by 100,000 generations. It then reports, median of several runs:

- the first page of the grid and a page deep into it (half way, and near the end), by keyset as the
  gallery does, and by OFFSET for comparison (what keyset saves);
- the same pages over HTTP through a live gallery (query, template and the guard);
- a prompt search (the first one also builds the SQLite full-text index);
- the thumbnail cache: every card's thumbnail for the first pages fetched, then fetched again (a
  reload), with the hit rate and the cold and warm times per thumbnail.

    .venv/bin/python -m benchmarks.gallery                    # SQLite, 100,000 jobs
    .venv/bin/python -m benchmarks.gallery --jobs 20000 --postgres
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

POSTGRES = os.environ.get("KIE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORDS = [
    "fox",
    "lighthouse",
    "koi",
    "neon",
    "alley",
    "dawn",
    "rain",
    "snow",
    "harbour",
    "desert",
    "forest",
    "city",
    "robot",
    "portrait",
    "cat",
]
MODELS = ["google/nano-banana", "bytedance/seedream-v4-text-to-image", "flux-kontext-pro", "gpt-4o-image"]


def median_ms(run: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def fill(ledger: Any, media: Path, count: int, images: int) -> None:
    from PIL import Image
    from sqlalchemy import insert

    from kie.store.schema import files, jobs

    media.mkdir(parents=True, exist_ok=True)
    pictures = []
    for n in range(images):
        image = Image.new("RGB", (768, 768), ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        path = media / f"img-{n}.png"
        path.write_bytes(buffer.getvalue())
        pictures.append((str(path), len(buffer.getvalue()), hashlib.sha256(buffer.getvalue()).hexdigest()))
    start = time.time() - 60 * 86400
    chunk = 5000
    for base in range(0, count, chunk):
        job_rows, file_rows = [], []
        for n in range(base, min(count, base + chunk)):
            job_id = uuid.uuid4().hex
            prompt = f"{WORDS[n % len(WORDS)]} {WORDS[(n * 7) % len(WORDS)]} study {n}"
            stamp = start + n * (60 * 86400 / count)
            job_rows.append(
                {
                    "id": job_id,
                    "model": MODELS[n % len(MODELS)],
                    "input": {"prompt": prompt},
                    "input_hash": job_id * 2,
                    "prompt": prompt,
                    "state": "done",
                    "callback_token": secrets.token_urlsafe(12),
                    "claim_seq": 1,
                    "step": 0,
                    "polls": 0,
                    "estimated_credits": 4.0,
                    "actual_credits": 4.0,
                    "cost_time": 7.5,
                    "created_at": stamp,
                    "submitted_at": stamp,
                    "completed_at": stamp + 8,
                    "downloaded_at": stamp + 9,
                }
            )
            path, size, sha = pictures[n % images]
            file_rows.append(
                {
                    "job_id": job_id,
                    "idx": 1,
                    "url": "https://tempfile.example/x.png",
                    "path": f"{path}",
                    "size": size,
                    "sha256": sha,
                    "content_type": "image/png",
                }
            )
        with ledger.engine.begin() as c:
            c.execute(insert(jobs), job_rows)
            c.execute(insert(files), file_rows)
    if ledger.engine.dialect.name == "postgresql":
        with ledger.engine.begin() as c:
            c.exec_driver_sql("ANALYZE kie_jobs")
            c.exec_driver_sql("ANALYZE kie_files")


def run(url: str, label: str, count: int, root: Path, repeat: int) -> None:
    import httpx
    from sqlalchemy import select

    from kie.gallery.queries import PAGE, Filters, Gallery, encode_cursor
    from kie.gallery.server import GalleryServer
    from kie.store import Ledger
    from kie.store.schema import jobs

    ledger = Ledger(url)
    started = time.perf_counter()
    fill(ledger, root / "media", count, images=300)
    print(f"\n{label}: {count:,} jobs written in {time.perf_counter() - started:.1f} s")
    gallery = Gallery(ledger, root / "index")

    def cursor_at(position: int) -> str:
        query = (
            select(jobs.c.id, jobs.c.created_at)
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
            .offset(position)
            .limit(1)
        )
        with ledger.engine.connect() as c:
            row = c.execute(query).mappings().one()
        return encode_cursor(row)

    def offset_page(position: int) -> None:
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).offset(position).limit(PAGE)
        with ledger.engine.connect() as c:
            c.execute(query).all()

    depths = [("first page", 0), ("half way", count // 2), ("near the end", count - PAGE - 1)]
    print(f"  page of {PAGE} cards           keyset ms   OFFSET ms")
    for name, position in depths:
        cursor = None if position == 0 else cursor_at(position)
        keyset = median_ms(lambda cursor=cursor: gallery.page(Filters(), cursor), repeat)
        offset = median_ms(lambda position=position: offset_page(position), repeat)
        print(f"  {name:<26} {keyset:9.2f}   {offset:9.2f}")
    first = time.perf_counter()
    hits = gallery.count(Filters(q="harbour"))
    build = (time.perf_counter() - first) * 1000
    search = median_ms(lambda: gallery.page(Filters(q="harbour")), repeat)
    print(
        f"  search 'harbour': {hits:,} hits (counted up to 10,001); first search {build:.0f} ms "
        f"(on SQLite it builds the index), then {search:.2f} ms a page"
    )
    filtered = median_ms(lambda: gallery.page(Filters(model=MODELS[1], min_credits=1)), repeat)
    print(f"  filtered page (model and credits): {filtered:.2f} ms")
    gallery.close()

    with (
        GalleryServer(
            ledger, home=root / "home", settings=None, output_dir=root / "out", max_credits=None
        ) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as http,
    ):
        http.get(f"/?token={server.guard.token}")
        deep = cursor_at(count - PAGE - 1)
        grid = median_ms(lambda: http.get("/").raise_for_status(), repeat)
        deep_ms = median_ms(lambda: http.get("/cards", params={"cursor": deep}).raise_for_status(), repeat)
        print(
            f"  over HTTP: first page (whole grid page) {grid:.1f} ms, deep /cards fragment {deep_ms:.1f} ms"
        )
        shas: list[str] = []
        cursor = None
        inner = Gallery(ledger, root / "index")
        for _ in range(5):
            page = inner.page(Filters(), cursor)
            shas += [card.files[0]["sha256"] for card in page.cards]
            cursor = page.cursor
        inner.close()
        thumbs = server.thumbs
        cold_start = time.perf_counter()
        for sha in shas:
            http.get(f"/thumbs/{sha}/320.webp").raise_for_status()
        cold = (time.perf_counter() - cold_start) * 1000 / len(shas)
        hits = thumbs.hits
        warm_start = time.perf_counter()
        for sha in shas:
            http.get(f"/thumbs/{sha}/320.webp").raise_for_status()
        warm = (time.perf_counter() - warm_start) * 1000 / len(shas)
        print(
            f"  thumbnails: {len(shas)} cards on 5 pages ({len(set(shas))} distinct images) viewed, then "
            f"reloaded: hit rate {thumbs.hit_rate:.0%} overall ({thumbs.hits} hits, {thumbs.misses} misses); "
            f"first view {hits / len(shas):.0%} (repeated images), "
            f"reload {(thumbs.hits - hits) / len(shas):.0%}; "
            f"{cold:.1f} ms a thumbnail on first view, {warm:.1f} ms cached"
        )
    ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--postgres", action="store_true", help=f"also run on PostgreSQL ({POSTGRES})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        run(f"sqlite:///{root / 'ledger.db'}", "SQLite", args.jobs, root / "sqlite", args.repeat)
        if args.postgres:
            import sqlalchemy

            schema = "kie_bench_" + secrets.token_hex(4)
            admin = sqlalchemy.create_engine(POSTGRES)
            with admin.begin() as c:
                c.exec_driver_sql(f"CREATE SCHEMA {schema}")
            separator = "&" if "?" in POSTGRES else "?"
            try:
                run(
                    f"{POSTGRES}{separator}options=-csearch_path%3D{schema}",
                    "PostgreSQL",
                    args.jobs,
                    root / "pg",
                    args.repeat,
                )
            finally:
                with admin.begin() as c:
                    c.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
                admin.dispose()


if __name__ == "__main__":
    main()
