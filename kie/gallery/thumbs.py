"""Thumbnails made by Pillow on first view and cached by the source's sha256, plus media facts.

The cache key is the content hash, not the path: a result moved or copied keeps its thumbnail, and two
jobs with the same bytes share one. A thumbnail is written to a temporary name and renamed into place,
so a reader never sees half a file and two requests racing for the same one are harmless.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WIDTHS = (160, 320, 640, 1280)
_SHA = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(value: str) -> bool:
    return bool(_SHA.match(value))


@dataclass(frozen=True)
class MediaInfo:
    kind: str  # image, video, audio or other
    width: int | None = None
    height: int | None = None
    duration: float | None = None


def kind_of(content_type: str | None, path: str) -> str:
    mime = (content_type or "").split(";")[0].strip().lower()
    suffix = Path(path).suffix.lower()
    if mime.startswith("image/") or suffix in (".png", ".jpg", ".jpeg", ".webp", ".gif"):
        return "image"
    if mime.startswith("video/") or suffix in (".mp4", ".mov", ".webm"):
        return "video"
    if mime.startswith("audio/") or suffix in (".mp3", ".wav", ".m4a", ".ogg", ".flac"):
        return "audio"
    return "other"


class Thumbnailer:
    """Thumbnails under `folder`, with hit and miss counts (the benchmark reports the hit rate)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._facts: dict[str, MediaInfo] = {}

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def path_for(self, sha256: str, width: int) -> Path:
        return self.folder / sha256[:2] / f"{sha256}-{width}.webp"

    def thumbnail(self, sha256: str, source: Path, width: int) -> Path | None:
        """The cached thumbnail of an image, made now if missing; None when the source is not an image
        Pillow can read (the page then shows the original or a media player instead)."""
        if not is_sha256(sha256) or width not in WIDTHS:
            return None
        target = self.path_for(sha256, width)
        if target.is_file():
            with self._lock:
                self.hits += 1
            return target
        with self._lock:
            self.misses += 1
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(source) as image:
                image.draft("RGB", (width, width))
                image.thumbnail((width, width * 4))
                if image.mode not in ("RGB", "RGBA"):
                    image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
                target.parent.mkdir(parents=True, exist_ok=True)
                handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".thumb-", suffix=".webp")
                try:
                    with os.fdopen(handle, "wb") as out:
                        image.save(out, "WEBP", quality=80, method=4)
                    os.replace(temporary, target)
                except BaseException:
                    Path(temporary).unlink(missing_ok=True)
                    raise
        except (OSError, UnidentifiedImageError, ValueError):
            return None
        return target

    def info(self, sha256: str, source: Path, content_type: str | None) -> MediaInfo:
        """Dimensions or duration of a result, read once per hash (cheaply: headers only)."""
        known = self._facts.get(sha256)
        if known is not None:
            return known
        kind = kind_of(content_type, str(source))
        facts = MediaInfo(kind)
        try:
            if kind == "image":
                from PIL import Image

                with Image.open(source) as image:
                    facts = MediaInfo(kind, image.width, image.height)
            elif kind == "video":
                facts = MediaInfo(kind, *_mp4_facts(source))
            elif kind == "audio" and source.suffix.lower() == ".wav":
                with wave.open(str(source), "rb") as sound:
                    facts = MediaInfo(kind, duration=sound.getnframes() / float(sound.getframerate() or 1))
        except (OSError, EOFError, ValueError, struct.error, wave.Error):
            facts = MediaInfo(kind)
        except Exception as exc:  # Pillow's own decoder errors
            if type(exc).__name__ != "UnidentifiedImageError":
                raise
            facts = MediaInfo(kind)
        self._facts[sha256] = facts
        return facts


def _mp4_facts(source: Path) -> tuple[int | None, int | None, float | None]:
    """Width, height and duration from an MP4's `moov` box (`mvhd` and the first video `tkhd`)."""
    with source.open("rb") as handle:
        data = _find_box(handle, b"moov", os.path.getsize(source))
    if data is None:
        return None, None, None
    duration = None
    width = height = None
    mvhd = _child(data, b"mvhd")
    if mvhd is not None:
        version = mvhd[0]
        if version == 1:
            scale, length = struct.unpack(">IQ", mvhd[20:32])
        else:
            scale, length = struct.unpack(">II", mvhd[12:20])
        duration = length / scale if scale else None
    for trak in _children(data, b"trak"):
        tkhd = _child(trak, b"tkhd")
        if tkhd is None:
            continue
        w, h = struct.unpack(">II", tkhd[-8:])
        if w and h:
            width, height = w >> 16, h >> 16
            break
    return width, height, duration


def _find_box(handle: Any, kind: bytes, size: int) -> bytes | None:
    offset = 0
    while offset + 8 <= size:
        handle.seek(offset)
        header = handle.read(16)
        if len(header) < 8:
            return None
        length, name = struct.unpack(">I4s", header[:8])
        skip = 8
        if length == 1:
            length = struct.unpack(">Q", header[8:16])[0]
            skip = 16
        elif length == 0:
            length = size - offset
        if length < skip:
            return None
        if name == kind:
            if length > 64 * 1024 * 1024:
                return None
            handle.seek(offset + skip)
            return bytes(handle.read(length - skip))
        offset += length
    return None


def _children(data: bytes, kind: bytes) -> list[bytes]:
    found = []
    offset = 0
    while offset + 8 <= len(data):
        length, name = struct.unpack(">I4s", data[offset : offset + 8])
        if length < 8:
            break
        if name == kind:
            found.append(data[offset + 8 : offset + length])
        offset += length
    return found


def _child(data: bytes, kind: bytes) -> bytes | None:
    found = _children(data, kind)
    return found[0] if found else None
