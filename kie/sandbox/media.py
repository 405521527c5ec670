"""Real result files for the sandbox, made on demand and deterministic from (model, input, index).

Images have the requested aspect ratio and resolution class and look different per prompt and model.
Videos are valid MP4 files (an MJPEG track in an ISO-BMFF container: no encoder needed); MP3 audio
is a stream of valid silent MPEG-1 Layer III frames with an ID3 title; WAV is a real tone. That is
enough for any downstream tool to open, probe and hash the results like Kie's.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import struct
import wave
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageDraw, ImageFont

RESOLUTION_SIDE = {
    "512p": 512,
    "480p": 854,
    "580p": 1024,
    "720p": 1280,
    "768p": 1366,
    "1080p": 1920,
    "1k": 1024,
    "1.5k": 1536,
    "2k": 2048,
    "4k": 4096,
}
NAMED_SIZES = {
    "square": (1, 1),
    "square_hd": (1, 1),
    "portrait_4_3": (3, 4),
    "portrait_3_2": (2, 3),
    "portrait_16_9": (9, 16),
    "landscape_4_3": (4, 3),
    "landscape_3_2": (3, 2),
    "landscape_16_9": (16, 9),
    "landscape_21_9": (21, 9),
    "portrait": (9, 16),
    "landscape": (16, 9),
}
CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
    "mid": "audio/midi",
}


def seed_of(model: str, values: Mapping[str, Any], index: int) -> bytes:
    canonical = json.dumps({"m": model, "v": values, "i": index}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).digest()


def aspect_of(values: Mapping[str, Any]) -> tuple[int, int]:
    for key in ("aspect_ratio", "aspectRatio", "image_size", "size", "ratio"):
        raw = values.get(key)
        if not isinstance(raw, str):
            continue
        if raw in NAMED_SIZES:
            return NAMED_SIZES[raw]
        match = re.fullmatch(r"(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)", raw)
        if match:
            w, h = float(match.group(1)), float(match.group(2))
            if w > 0 and h > 0:
                return int(w * 100), int(h * 100)
    return (1, 1)


def long_side(values: Mapping[str, Any], default: int) -> int:
    for key in ("resolution", "image_resolution", "quality", "mode", "output_resolution"):
        raw = values.get(key)
        if isinstance(raw, (str, int)) and str(raw).lower() in RESOLUTION_SIDE:
            return RESOLUTION_SIDE[str(raw).lower()]
    return default


def image_size(values: Mapping[str, Any], *, default_side: int, max_side: int | None) -> tuple[int, int]:
    w_ratio, h_ratio = aspect_of(values)
    side = long_side(values, default_side)
    if max_side:
        side = min(side, max_side)
    if w_ratio >= h_ratio:
        return side, max(16, round(side * h_ratio / w_ratio))
    return max(16, round(side * w_ratio / h_ratio)), side


def render_image(seed: bytes, size: tuple[int, int], label: str) -> Image.Image:
    """A gradient with shapes whose colours and layout come from the seed: visibly per prompt."""
    width, height = size
    c1 = tuple(seed[0:3])
    c2 = tuple(seed[3:6])
    base = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", size, c1), Image.new("RGB", size, c2), base)
    draw = ImageDraw.Draw(image)
    for n in range(6):
        chunk = seed[6 + n * 4 : 10 + n * 4]
        x, y = chunk[0] / 255 * width, chunk[1] / 255 * height
        r = (0.05 + chunk[2] / 255 * 0.2) * min(width, height)
        colour = (chunk[3], chunk[0], chunk[2])
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    font = ImageFont.load_default(size=max(10, min(width, height) // 24))
    draw.text((max(4, width // 40), max(4, height // 40)), label[:60], fill=(255, 255, 255), font=font)
    return image


def encode_image(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    pil_format = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}.get(fmt, "PNG")
    image.save(buffer, format=pil_format, **({"quality": 85} if pil_format == "JPEG" else {}))
    return buffer.getvalue()


# -- MP4 (ISO-BMFF) with an MJPEG track ---------------------------------------------------------
def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def mp4_from_jpegs(frames: list[bytes], width: int, height: int, fps: int) -> bytes:
    """A minimal valid MP4: ftyp, moov (one 'jpeg' video track), mdat holding the frames."""
    timescale = 1000
    sample_delta = timescale // fps
    duration = sample_delta * len(frames)
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2mp41")
    mvhd = _full(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, timescale, duration),
        struct.pack(">IH", 0x10000, 0x100),
        b"\0" * 10,
        _MATRIX,
        b"\0" * 24,
        struct.pack(">I", 2),
    )
    tkhd = _full(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII", 0, 0, 1, 0, duration),
        b"\0" * 8,
        struct.pack(">HHHH", 0, 0, 0, 0),
        _MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = _full(
        b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, timescale, duration), struct.pack(">HH", 0x55C4, 0)
    )
    hdlr = _full(b"hdlr", 0, 0, b"\0" * 4, b"vide", b"\0" * 12, b"VideoHandler\0")
    vmhd = _full(b"vmhd", 0, 1, b"\0" * 8)
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
    entry = (
        b"\0" * 6
        + struct.pack(">H", 1)
        + b"\0" * 16
        + struct.pack(">HH", width, height)
        + struct.pack(">II", 0x480000, 0x480000)
        + b"\0" * 4
        + struct.pack(">H", 1)
        + bytes([4])
        + b"jpeg".ljust(31, b"\0")
        + struct.pack(">Hh", 24, -1)
    )
    stsd = _full(b"stsd", 0, 0, struct.pack(">I", 1), _box(b"jpeg", entry))
    stts = _full(b"stts", 0, 0, struct.pack(">III", 1, len(frames), sample_delta))
    stsc = _full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(frames), 1))
    stsz = _full(
        b"stsz", 0, 0, struct.pack(">II", 0, len(frames)), b"".join(struct.pack(">I", len(f)) for f in frames)
    )

    def build_moov(chunk_offset: int) -> bytes:
        stco = _full(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset))
        stbl = _box(b"stbl", stsd, stts, stsc, stsz, stco)
        minf = _box(b"minf", vmhd, dinf, stbl)
        mdia = _box(b"mdia", mdhd, hdlr, minf)
        return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))

    moov_size = len(build_moov(0))
    mdat_payload = b"".join(frames)
    offset = len(ftyp) + moov_size + 8
    return ftyp + build_moov(offset) + struct.pack(">I", 8 + len(mdat_payload)) + b"mdat" + mdat_payload


def render_video(seed: bytes, size: tuple[int, int], label: str, seconds: float, fps: int = 4) -> bytes:
    width, height = size
    frames = []
    count = max(2, min(int(seconds * fps), 48))
    for n in range(count):
        image = render_image(hashlib.sha256(seed + bytes([n])).digest(), size, f"{label} {n + 1}/{count}")
        frames.append(encode_image(image, "jpg"))
    return mp4_from_jpegs(frames, width, height, fps)


# -- audio ----------------------------------------------------------------------------------------
def _id3(title: str) -> bytes:
    text = b"\x03" + title.encode("utf-8")[:200]
    frame = b"TIT2" + struct.pack(">I", len(text)) + b"\0\0" + text
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def render_mp3(title: str, seconds: float) -> bytes:
    """Valid MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: silent frames (417 bytes, 1152 samples each)."""
    header = bytes([0xFF, 0xFB, 0x90, 0x64])
    frame = header + b"\0" * (417 - 4)
    count = max(1, int(seconds * 44100 / 1152))
    return _id3(title) + frame * count


def render_wav(seed: bytes, seconds: float, rate: int = 16000) -> bytes:
    freq = 220 + seed[0] * 2
    samples = int(seconds * rate)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * t / rate))) for t in range(samples)
            )
        )
    return buffer.getvalue()


def duration_of(values: Mapping[str, Any], default: float) -> float:
    for key in ("duration", "duration_seconds", "n_frames"):
        raw = values.get(key)
        try:
            seconds = float(raw) if raw is not None else 0.0
        except (TypeError, ValueError):
            continue
        if seconds > 0:
            return seconds
    return default


def render(
    model: str,
    media: str,
    fmt: str,
    values: Mapping[str, Any],
    index: int,
    *,
    max_image_side: int | None = None,
) -> tuple[bytes, str]:
    """Bytes and content type for result `index` of a task."""
    seed = seed_of(model, values, index)
    prompt = str(values.get("prompt") or values.get("text") or model)
    label = f"{model} · {prompt}"
    fmt = fmt.lower()
    if media == "image" or fmt in ("png", "jpg", "jpeg", "webp"):
        size = image_size(values, default_side=1024, max_side=max_image_side)
        return encode_image(render_image(seed, size, label), fmt), CONTENT_TYPES.get(fmt, "image/png")
    if media == "video" or fmt in ("mp4", "mov"):
        size = image_size(values, default_side=1280, max_side=min(max_image_side or 640, 640))
        seconds = duration_of(values, 5.0)
        return render_video(seed, size, label, seconds), CONTENT_TYPES["mp4"]
    if fmt == "wav":
        return render_wav(seed, min(duration_of(values, 3.0), 10.0)), CONTENT_TYPES["wav"]
    if media == "audio" or fmt == "mp3":
        return render_mp3(f"{label} #{index + 1}", min(duration_of(values, 8.0), 240.0)), CONTENT_TYPES["mp3"]
    text = (
        json.dumps({"model": model, "input": dict(values), "index": index}, default=str)
        if fmt == "json"
        else label
    )
    return text.encode(), CONTENT_TYPES.get(fmt, "text/plain; charset=utf-8")
