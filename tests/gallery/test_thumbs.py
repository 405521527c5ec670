"""Thumbnails cached by sha256, and media facts read from headers."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from kie.gallery.thumbs import Thumbnailer
from kie.sandbox.media import render_video
from tests.gallery.seed import png, wav


def test_a_thumbnail_is_made_once_per_hash_and_width(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    data = png(source, (10, 200, 30), (800, 400))
    sha = hashlib.sha256(data).hexdigest()
    thumbs = Thumbnailer(tmp_path / "cache")
    made = thumbs.thumbnail(sha, source, 320)
    assert made is not None and made.parent.name == sha[:2]
    with Image.open(made) as image:
        assert image.format == "WEBP" and image.size == (320, 160)
    stamp = made.stat().st_mtime_ns
    copy = tmp_path / "moved.png"
    copy.write_bytes(data)
    assert thumbs.thumbnail(sha, copy, 320) == made and made.stat().st_mtime_ns == stamp
    assert (thumbs.hits, thumbs.misses) == (1, 1) and thumbs.hit_rate == 0.5
    assert thumbs.thumbnail(sha, source, 640) not in (None, made)
    assert thumbs.thumbnail(sha, source, 333) is None
    assert thumbs.thumbnail("../../etc", source, 320) is None
    assert list((tmp_path / "cache").rglob(".thumb-*")) == []


def test_what_is_not_an_image_gets_no_thumbnail_and_its_facts_from_headers(tmp_path: Path) -> None:
    thumbs = Thumbnailer(tmp_path / "cache")
    clip = tmp_path / "c.mp4"
    clip.write_bytes(render_video(b"seed", (64, 48), "clip", 2.0, fps=2))
    sha = hashlib.sha256(clip.read_bytes()).hexdigest()
    assert thumbs.thumbnail(sha, clip, 320) is None
    facts = thumbs.info(sha, clip, "video/mp4")
    assert (facts.kind, facts.width, facts.height) == ("video", 64, 48)
    assert facts.duration is not None and abs(facts.duration - 2.0) < 0.6
    sound = tmp_path / "s.wav"
    wav(sound, seconds=0.75)
    facts = thumbs.info("b" * 64, sound, "audio/wav")
    assert facts.kind == "audio" and facts.duration is not None and abs(facts.duration - 0.75) < 0.01
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert thumbs.info("c" * 64, broken, "image/png").width is None
    assert thumbs.thumbnail("c" * 64, broken, 320) is None
