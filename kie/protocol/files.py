"""Saving results: predictable names, the right extension, and no half-written files.

A result is streamed into `<dir>/.<name>.<pid>-<random>.part`, hashed as it arrives, checked against the
announced length, then moved into place in one step, so a crash leaves either the whole file or nothing a
user could mistake for it, and two processes never share a partial file. Names come from our ids, never
from the server (`<id>-<n>.<ext>`), so a hostile or odd URL cannot write outside the output folder. An
existing result with other content is never silently replaced: it may be another job's paid result.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from kie.errors import DownloadError

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpg"),
    (b"GIF8", 0, "gif"),
    (b"RIFF", 0, "riff"),
    (b"ftyp", 4, "mp4"),
    (b"ID3", 0, "mp3"),
    (b"\xff\xfb", 0, "mp3"),
    (b"\xff\xf3", 0, "mp3"),
    (b"OggS", 0, "ogg"),
    (b"fLaC", 0, "flac"),
    (b"MThd", 0, "mid"),
    (b"%PDF", 0, "pdf"),
)
_CONTENT_TYPES = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
    "audio/midi": "mid",
    "audio/mp4": "m4a",
    "application/json": "json",
    "text/plain": "txt",
}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A sink's name may also carry `~`: the ledger's `claim_stem` marks a renamed stem with it (`x~2`), and
# `safe_stem` never produces one, so a renamed stem cannot meet a user's own name.
_SINK_SAFE = re.compile(r"[^A-Za-z0-9._~-]+")
STEM_LIMIT = 120


def sniff_extension(head: bytes, content_type: str | None, url: str | None = None) -> str:
    """Extension from the first bytes, then the content type, then the URL path, then `bin`."""
    for magic, offset, ext in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if ext == "riff":
                kind = head[8:12]
                return "webp" if kind == b"WEBP" else "wav" if kind == b"WAVE" else "bin"
            if ext == "mp4" and head[8:12] == b"qt  ":
                return "mov"
            return ext
    if content_type:
        base = content_type.split(";", 1)[0].strip().lower()
        if base in _CONTENT_TYPES:
            return _CONTENT_TYPES[base]
        guessed = mimetypes.guess_extension(base)
        if guessed:
            return guessed.lstrip(".")
    if url:
        suffix = Path(urlparse(url).path).suffix.lstrip(".").lower()
        if suffix and suffix.isalnum() and len(suffix) <= 5:
            return suffix
    return "bin"


def safe_stem(text: str) -> str:
    """A file-name stem from our own ids or a user's output name; never a path.

    A long name keeps its start plus a hash of the whole text, so two names that differ only after
    the cut do not end up sharing one file name."""
    return _clean(text, _SAFE, STEM_LIMIT)


def _clean(text: str, unsafe: re.Pattern[str], limit: int) -> str:
    stem = unsafe.sub("_", text).strip("._~") or "result"
    if len(stem) <= limit:
        return stem
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"{stem[: limit - len(digest) - 1]}_{digest}"


@dataclass(frozen=True)
class SavedFile:
    url: str
    path: Path
    size: int
    sha256: str
    content_type: str | None


class FileSink:
    """Receives a download's chunks and turns them into a verified file.

    Usage: `sink.start(content_type, length)`, `sink.write(chunk)` repeatedly, then `sink.finish()`.
    `abort()` removes the partial file. The destination's extension is chosen at `finish()` from the
    first bytes, so it is right even when the server's content type is wrong.
    """

    def __init__(self, directory: Path, stem: str, url: str) -> None:
        self.directory = directory
        self.stem = _clean(stem, _SINK_SAFE, 200)
        self.url = url
        self.content_type: str | None = None
        self.expected: int | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self._head = b""
        self._part: Path | None = None
        self._file: BinaryIO | None = None

    def start(self, content_type: str | None, length: int | None) -> None:
        """Begin (or begin again, after a failed attempt) a download into a fresh partial file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.abort()
        self.content_type = content_type
        self.expected = length
        self._hash = hashlib.sha256()
        self._size = 0
        self._head = b""
        self._part = self.directory / f".{self.stem}.{os.getpid()}-{secrets.token_hex(4)}.part"
        self._file = open(self._part, "xb")  # noqa: SIM115 - closed in finish/abort

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "start() first"
        if len(self._head) < 16:
            self._head += chunk[: 16 - len(self._head)]
        self._hash.update(chunk)
        self._size += len(chunk)
        self._file.write(chunk)

    def finish(self, *, overwrite: bool = False) -> SavedFile:
        """Move the verified file into place. An existing file with the same content is kept; one with
        different content is refused (`DownloadError`) unless `overwrite`, since it may be another
        job's result."""
        assert self._file is not None and self._part is not None, "start() first"
        part = self._part
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._part = None
        if self.expected is not None and self._size != self.expected:
            part.unlink(missing_ok=True)
            raise ValueError(f"download was truncated: got {self._size} of {self.expected} bytes")
        if self._size == 0:
            part.unlink(missing_ok=True)
            raise ValueError("download was empty")
        if looks_like_html(self._head):
            part.unlink(missing_ok=True)
            raise ValueError("the file host sent an HTML page instead of the file")
        ext = sniff_extension(self._head, self.content_type, self.url)
        final = self.directory / f"{self.stem}.{ext}"
        digest = self._hash.hexdigest()
        if overwrite:
            os.replace(part, final)
        elif not _place(part, final):
            part.unlink()
            if final.stat().st_size != self._size or _sha256_of(final) != digest:
                raise DownloadError(
                    f"File {final} already exists with different content; move it aside or choose "
                    "another output folder, then retry.",
                    url=self.url,
                )
        return SavedFile(self.url, final, self._size, digest, self.content_type)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._part is not None:
            self._part.unlink(missing_ok=True)
            self._part = None


def looks_like_html(head: bytes) -> bool:
    """An error page where a result was due: a CDN or proxy answering 200 with HTML. Kie's results are
    media, text or JSON files, never HTML, so such a body is refused and fetched again."""
    start = head.lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _place(part: Path, final: Path) -> bool:
    """Move `part` to `final` unless `final` exists; False when it did. A hard link makes the check and
    the move one atomic step, where a check followed by a rename could clobber a file made in between."""
    try:
        os.link(part, final)
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system: check, then rename
        if final.exists():
            return False
        os.replace(part, final)
        return True
    part.unlink()
    return True


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
