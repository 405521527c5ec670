"""A ledger seeded through the Ledger API the way the runner fills it: every job state, a 3 × 2
`--matrix` batch, and small real media made here (PNG by Pillow, MP4 by the sandbox's encoder, WAV by
the standard library)."""

from __future__ import annotations

import hashlib
import io
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from kie.sandbox.media import render_image, render_video
from kie.store import (
    ABANDONED,
    DONE,
    FAILED,
    PENDING,
    REJECTED,
    RUNNING,
    SUBMITTING,
    SUCCEEDED,
    UNKNOWN,
    Ledger,
    NewJob,
)

IMAGE_MODEL = "google/nano-banana"  # 4 credits a run, on the image escalation ladder
OTHER_MODEL = "bytedance/seedream-v4-text-to-image"
VIDEO_MODEL = "veo3_fast"
AUDIO_MODEL = "suno/V4"
MATRIX_MODELS = (OTHER_MODEL, IMAGE_MODEL)
MATRIX_PROMPTS = ("a lighthouse at dawn", "a koi pond in rain", "a neon alley at night")


@dataclass
class Seeded:
    ledger: Ledger
    media: Path
    by_state: dict[str, str] = field(default_factory=dict)  # state -> one job id in it
    done_images: list[str] = field(default_factory=list)
    matrix_batch: str = "b-matrix-demo"
    matrix_jobs: list[str] = field(default_factory=list)
    video_job: str = ""
    audio_job: str = ""
    fox_job: str = ""
    total: int = 0


def png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (96, 64), label: str = "") -> bytes:
    """A small real PNG: the sandbox's renderer when labelled (what a result looks like), else a pattern."""
    if label:
        image = render_image(hashlib.sha256(bytes(colour) + label.encode()).digest(), size, label)
    else:
        image = Image.new("RGB", size, colour)
        for x in range(0, size[0], 8):
            for y in range(0, size[1], 8):
                if (x + y) % 16 == 0:
                    image.putpixel((x, y), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> bytes:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x10" * int(seconds * rate))
    return path.read_bytes()


def _file(path: Path, data: bytes, content_type: str) -> dict[str, object]:
    return {
        "url": f"https://tempfile.example/{path.name}",
        "path": str(path),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": content_type,
    }


def finish_done(
    ledger: Ledger, job_id: str, saved: list[dict[str, object]], *, credits: float, cost_time: float
) -> None:
    """pending → submitting → running → succeeded → done, as the runner records it."""
    claimed = ledger.claim_for_submit(job_id, 60)
    assert claimed is not None
    running = ledger.mark_running(claimed, f"task-{job_id[:12]}")
    assert running is not None
    now = time.time()
    assert ledger.transition(
        job_id,
        RUNNING,
        SUCCEEDED,
        result_urls=[item["url"] for item in saved],
        cost_time=cost_time,
        actual_credits=credits,
        completed_at=now,
    )
    ledger.record_files(job_id, saved)
    assert ledger.transition(job_id, SUCCEEDED, DONE, downloaded_at=now)


def seed(ledger: Ledger, media: Path, *, fillers: int = 20) -> Seeded:
    media.mkdir(parents=True, exist_ok=True)
    out = Seeded(ledger, media)
    # Fillers first (oldest): done images, enough for more than one page.
    for n in range(fillers):
        (job_id,) = ledger.add_jobs(
            None, [NewJob(OTHER_MODEL, {"prompt": f"filler study number {n}"}, estimated_credits=5.0)]
        )
        data = png(media / f"filler-{n}.png", (20 + n * 9 % 200, 90, 160), (160, 160), f"study {n}")
        finish_done(
            ledger,
            job_id,
            [_file(media / f"filler-{n}.png", data, "image/png")],
            credits=5.0,
            cost_time=3.0 + n,
        )
        out.done_images.append(job_id)
    # The 3 × 2 matrix batch.
    ledger.add_batch(
        out.matrix_batch,
        source=None,
        output_dir=str(media),
        options={"matrix_models": list(MATRIX_MODELS)},
        jobs=[
            NewJob(
                model,
                {"prompt": prompt},
                row_key=f"{line}@{model}",
                row_line=line,
                estimated_credits=4.0 if model == IMAGE_MODEL else 5.0,
            )
            for line, prompt in enumerate(MATRIX_PROMPTS, start=1)
            for model in MATRIX_MODELS
        ],
    )
    for job in ledger.jobs(batch_id=out.matrix_batch):
        name = f"matrix-{job['row_line']}-{job['model'].replace('/', '_')}.png"
        colour = (200, 40 * job["row_line"], 60 if job["model"] == IMAGE_MODEL else 200)
        data = png(media / name, colour, (256, 256), f"{job['model']} · {job['prompt']}")
        credits = 4.0 if job["model"] == IMAGE_MODEL else 5.0
        finish_done(
            ledger,
            job["id"],
            [_file(media / name, data, "image/png")],
            credits=credits,
            cost_time=10.0 * job["row_line"],
        )
        out.matrix_jobs.append(job["id"])
    # A video and a song.
    (out.video_job,) = ledger.add_jobs(
        None, [NewJob(VIDEO_MODEL, {"prompt": "waves on a pier"}, estimated_credits=60.0)]
    )
    clip = render_video(b"seed-video", (64, 48), "waves", 1.0, fps=2)
    (media / "waves.mp4").write_bytes(clip)
    finish_done(
        ledger, out.video_job, [_file(media / "waves.mp4", clip, "video/mp4")], credits=60.0, cost_time=42.0
    )
    (out.audio_job,) = ledger.add_jobs(
        None, [NewJob(AUDIO_MODEL, {"prompt": "a calm piano loop"}, estimated_credits=12.0)]
    )
    sound = wav(media / "piano.wav")
    finish_done(
        ledger, out.audio_job, [_file(media / "piano.wav", sound, "audio/wav")], credits=12.0, cost_time=20.0
    )
    # Every other state, one job each; the newest is the fox with two outputs.
    states = {}
    for state in (PENDING, SUBMITTING, RUNNING, SUCCEEDED, FAILED, REJECTED, UNKNOWN, ABANDONED):
        (job_id,) = ledger.add_jobs(
            None, [NewJob(IMAGE_MODEL, {"prompt": f"a study in state {state}"}, estimated_credits=4.0)]
        )
        states[state] = job_id
        if state == PENDING:
            continue
        claimed = ledger.claim_for_submit(job_id, 60)
        assert claimed is not None
        if state == SUBMITTING:
            continue
        if state in (REJECTED,):
            assert ledger.transition(
                job_id, SUBMITTING, REJECTED, error_message="Kie refused the input (422)"
            )
            continue
        if state in (UNKNOWN, ABANDONED):
            assert ledger.transition(
                job_id, SUBMITTING, UNKNOWN, error_message="the create may have reached Kie"
            )
            if state == ABANDONED:
                assert ledger.transition(job_id, UNKNOWN, ABANDONED)
            continue
        assert ledger.mark_running(claimed, f"task-{job_id[:12]}") is not None
        if state == FAILED:
            assert ledger.transition(
                job_id, RUNNING, FAILED, error_code="500", error_message="generation failed"
            )
        elif state == SUCCEEDED:
            assert ledger.transition(
                job_id, RUNNING, SUCCEEDED, actual_credits=4.0, cost_time=8.0, result_urls=[]
            )
    (out.fox_job,) = ledger.add_jobs(
        None,
        [
            NewJob(
                IMAGE_MODEL,
                {"prompt": "a red fox in fresh snow", "aspect_ratio": "1:1"},
                estimated_credits=4.0,
            )
        ],
    )
    one = png(media / "fox-1.png", (210, 80, 20))
    two = png(media / "fox-2.png", (190, 70, 30), (64, 96))
    finish_done(
        ledger,
        out.fox_job,
        [_file(media / "fox-1.png", one, "image/png"), _file(media / "fox-2.png", two, "image/png")],
        credits=4.0,
        cost_time=6.5,
    )
    states[DONE] = out.fox_job
    out.by_state = states
    out.total = fillers + len(out.matrix_jobs) + 2 + len(states)
    return out
