"""Inputs that would fail only after a credit is spent are refused by `catalog.validate`."""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import pytest
from PIL import Image

from kie import catalog
from kie.catalog.validate import sniff_media
from kie.errors import ValidationError

IMAGE_MODEL = "nano-banana-pro"  # `image_input`: a list of images
LIP_SYNC = "volcengine/video-to-video-lip-sync"  # `video_url` (video) and `audio_url` (audio)
SEEDED = "qwen/text-to-image"  # `seed`: an integer with no range in the catalogue


def png(path: Path) -> Path:
    Image.new("RGB", (8, 8), "red").save(path, "PNG")
    return path


def problem(model: str, values: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as caught:
        catalog.validate(model, values)
    message = str(caught.value)
    assert message.endswith(".") and not message.endswith("..") and "Traceback" not in message
    return message


def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buffer, fmt)
    return buffer.getvalue()


def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 80)
    return buffer.getvalue()


def ftyp(brand: bytes, *compatible: bytes) -> bytes:
    body = brand + b"\x00\x00\x02\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00" * 16


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (image_bytes("PNG"), "image"),
        (image_bytes("JPEG"), "image"),
        (image_bytes("GIF"), "image"),
        (image_bytes("WEBP"), "image"),
        (image_bytes("BMP"), "image"),
        (image_bytes("TIFF"), "image"),
        (ftyp(b"heic", b"mif1", b"heic"), "image"),
        (ftyp(b"avif", b"mif1"), "image"),
        (ftyp(b"isom", b"iso2", b"avc1", b"mp41"), "video"),
        (ftyp(b"qt  ", b"qt  "), "video"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", "video"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "video"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio"),
        (b"\xff\xfb\x90\x64\x00\x00", "audio"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "audio"),
        (wav_bytes(), "audio"),
        (b"OggS\x00\x02\x00\x00", "audio"),
        (b"fLaC\x00\x00\x00\x22", "audio"),
        (ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio"),
        (ftyp(b"mp42", b"isom", b"M4A "), "audio"),
        (b"hi", None),
        (b"BMW is a car\n", None),
        (b"%PDF-1.7\n", None),
    ],
)
def test_sniff_media_knows_the_formats_kie_takes(head: bytes, kind: str | None) -> None:
    assert sniff_media(head[:64]) == kind


def test_a_real_png_passes_and_urls_are_not_opened(tmp_path: Path) -> None:
    picture = png(tmp_path / "ref.png")
    checked = catalog.validate(
        IMAGE_MODEL, {"prompt": "edit", "image_input": [str(picture), "https://example.com/a.png"]}
    )
    assert checked.input["image_input"] == [str(picture), "https://example.com/a.png"]


def test_a_text_file_given_as_an_image_is_named_with_what_it_looks_like(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    message = problem(IMAGE_MODEL, {"prompt": "edit", "image_input": [str(notes)]})
    assert (
        "`image_input[0]` is not an image file: notes.txt looks like text; give a PNG, JPEG or WEBP image"
        in message
    )


def test_an_image_given_as_the_video_and_a_video_as_the_audio(tmp_path: Path) -> None:
    picture = png(tmp_path / "clip.mp4")  # the extension lies; the bytes do not
    movie = tmp_path / "voice.mp3"
    movie.write_bytes(ftyp(b"isom", b"iso2", b"avc1"))
    message = problem(LIP_SYNC, {"mode": "lite", "video_url": str(picture), "audio_url": str(movie)})
    assert "`video_url` is not a video file: clip.mp4 looks like an image; give an MP4" in message
    assert "`audio_url` is not an audio file: voice.mp3 looks like a video; give an MP3" in message


def test_right_kinds_in_video_and_audio_fields_pass(tmp_path: Path) -> None:
    movie = tmp_path / "clip.mp4"
    movie.write_bytes(ftyp(b"isom", b"iso2", b"avc1"))
    voice = tmp_path / "voice.wav"
    voice.write_bytes(wav_bytes())
    checked = catalog.validate(LIP_SYNC, {"mode": "lite", "video_url": str(movie), "audio_url": str(voice)})
    assert checked.input["video_url"] == str(movie)


def test_bytes_are_sniffed_like_files() -> None:
    catalog.validate(IMAGE_MODEL, {"prompt": "edit", "image_input": [image_bytes("JPEG")]})
    message = problem(IMAGE_MODEL, {"prompt": "edit", "image_input": [b"hello"]})
    assert "`image_input[0]` is not an image file: the data looks like text" in message
    assert "`image_input[0]` is empty" in problem(IMAGE_MODEL, {"prompt": "edit", "image_input": [b""]})


def test_missing_empty_and_folder_paths(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    message = problem(
        IMAGE_MODEL,
        {"prompt": "edit", "image_input": [str(tmp_path / "gone.png"), str(empty), str(tmp_path)]},
    )
    assert "`image_input[0]` is neither an http(s) URL nor an existing local file" in message
    assert "`image_input[1]` is empty: empty.png has no content" in message
    assert "`image_input[2]` is a folder, not a file" in message


def test_a_path_too_long_for_the_file_system_is_an_issue_not_a_crash() -> None:
    message = problem(IMAGE_MODEL, {"prompt": "edit", "image_input": ["x" * 5000]})
    assert "neither an http(s) URL nor an existing local file" in message and "x" * 200 not in message


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="root reads any file whatever its mode, so chmod 000 cannot make one unreadable",
)
def test_an_unreadable_file_is_the_fields_problem(tmp_path: Path) -> None:
    secret = png(tmp_path / "secret.png")
    secret.chmod(0)
    try:
        message = problem(IMAGE_MODEL, {"prompt": "edit", "image_input": [str(secret)]})
    finally:
        secret.chmod(0o600)
    assert "`image_input[0]` cannot be read (permission denied)" in message


def test_local_files_are_not_opened_when_they_are_not_allowed(tmp_path: Path) -> None:
    checked = catalog.validate(
        IMAGE_MODEL, {"prompt": "x", "image_input": [str(tmp_path / "gone.png")]}, allow_local_files=False
    )
    assert checked.input["image_input"] == [str(tmp_path / "gone.png")]


def test_empty_or_blank_prompt(tmp_path: Path) -> None:
    assert "`prompt` is empty; write what to generate" in problem(IMAGE_MODEL, {"prompt": "  \n"})
    assert "`prompt` is empty; write what to generate" in problem(IMAGE_MODEL, {"prompt": ""})
    checked = catalog.validate(SEEDED, {"prompt": "fox", "negative_prompt": ""})
    assert checked.input["negative_prompt"] == ""  # optional text may be empty on purpose
    assert "`taskId` is empty; give a value" in problem(
        "midjourney/upscale", {"taskId": " ", "imageIndex": 1}
    )


def test_nul_characters_are_refused_anywhere_in_the_input() -> None:
    message = problem(IMAGE_MODEL, {"prompt": "a\x00b"})
    assert "`prompt` contains a NUL character" in message
    with pytest.raises(ValidationError) as caught:
        catalog.validate(
            IMAGE_MODEL, {"prompt": "fine", "extra": {"tags": ["ok", "x\x00"]}}, allow_unknown=True
        )
    assert [issue.field for issue in caught.value.issues] == ["extra.tags[1]"]


def test_integers_beyond_64_bits() -> None:
    limit = 2**63 - 1
    assert catalog.validate(SEEDED, {"prompt": "fox", "seed": limit}).input["seed"] == limit
    message = problem(SEEDED, {"prompt": "fox", "seed": limit + 1})
    assert "`seed` is too large; the limit is 9223372036854775807" in message
    assert "`seed` is too large" in problem(SEEDED, {"prompt": "fox", "seed": 10**400})
    assert "`seed` is too large" in problem(SEEDED, {"prompt": "fox", "seed": "99999999999999999999"})
    assert "`seed` is too small; the limit is -9223372036854775808" in problem(
        SEEDED, {"prompt": "fox", "seed": -(2**63) - 1}
    )


def test_a_catalogue_range_is_still_reported_first() -> None:
    message = problem("midjourney/txt2img", {"prompt": "fox", "speed": "fast", "variety": 10**30})
    assert "`variety` must be at most 100" in message


def test_a_missing_required_enum_lists_its_values() -> None:
    # Midjourney's `speed`, the old example, is optional now, as Kie's API lists it (issue 14).
    message = problem("gpt-4o-image", {"prompt": "fox"})
    assert "`size` is required; one of 1:1, 3:2, 2:3" in message
    assert "`prompt` is required; add it to the input" in problem("midjourney/txt2img", {"speed": "fast"})
