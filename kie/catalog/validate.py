"""Checks an input against a model before a credit is spent.

The rules follow what Kie really accepts, not only what its docs say: numeric strings are accepted for
number fields (Kie coerces them; Appendix C shows `"6"` stored as `6`), and a number given for a
string enum such as Kling's `duration` ("5") is converted, because the conversion is unambiguous and the
wrong JSON type is the most common paid 422. Everything else that is wrong is reported at once, field by
field, in one sentence.

Local files are opened and their first bytes sniffed here, and strings or numbers the job store cannot
hold (NUL characters, integers beyond 64 bits) are refused here, because each of these otherwise fails
only after a batch has started paying.
"""

from __future__ import annotations

import difflib
import math
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kie.catalog.spec import FieldSpec, FieldType, ModelSpec
from kie.errors import Issue, ValidationError

# Values the user gives that stand for a local file to upload. `str` is only taken as a path when it
# is not a URL; the check happens here so a missing file is reported before any spend.
LocalFile = (Path, bytes, bytearray)

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MAX_DEPTH = 64
_HEAD_BYTES = 64

_ASK = {
    "image": "give a PNG, JPEG or WEBP image",
    "video": "give an MP4, MOV or WEBM video",
    "audio": "give an MP3, WAV or M4A audio file",
}
_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}


def _iso_media(head: bytes) -> str:
    """An ISO base media file (MP4, MOV, HEIC, M4A) by its `ftyp` brands: major first, then compatible."""
    size = int.from_bytes(head[:4], "big")
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    if brands[0] in _IMAGE_BRANDS:
        return "image"
    if brands[0] in _AUDIO_BRANDS or (
        any(b in _AUDIO_BRANDS for b in brands) and not any(b.startswith(b"M4V") for b in brands)
    ):
        return "audio"
    return "video"


def sniff_media(head: bytes) -> str | None:
    """The media kind ("image", "video" or "audio") the first bytes of a file announce, else None.

    Extensions lie and Kie fetches whatever it is given, so a text file sent as an image is a paid
    failure; the signatures are the ones the formats Kie's models take begin with.
    """
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")):
        return "image"
    if head.startswith(b"BM") and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":
        return "image"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": "image", b"WAVE": "audio", b"AVI ": "video"}.get(head[8:12])
    if head[4:8] == b"ftyp":
        return _iso_media(head)
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free") or head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video"
    if head.startswith((b"ID3", b"OggS", b"fLaC")):
        return "audio"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "audio"  # an MP3 frame or an AAC ADTS header
    return None


def _looks_like(head: bytes) -> str:
    """What a file that is not the expected media seems to be instead, as the end of a sentence."""
    kind = sniff_media(head)
    if kind is not None:
        return {"image": "looks like an image", "video": "looks like a video", "audio": "looks like audio"}[
            kind
        ]
    if head.startswith(b"%PDF"):
        return "looks like a PDF document"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # the head may end inside a multi-byte character
        text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else ""
    if text and all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return "looks like text"
    return "is in no image, video or audio format kie knows"


def unstorable(value: Any, root: str = "") -> tuple[str, str] | None:
    """The first part of a JSON-like value the job store or Kie cannot hold, as (path, problem).

    PostgreSQL refuses NUL characters and lone surrogates in text, Kie's numbers are 64-bit, and NaN is
    not JSON; the walk is iterative so a deeply nested value cannot exhaust the stack while being checked.
    """
    stack: list[tuple[str, Any, int]] = [(root, value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return path, f"is nested more than {MAX_DEPTH} levels deep; flatten it"
        if isinstance(item, str):
            if "\x00" in item:
                return path, "contains a NUL character, which cannot be stored; remove it"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return path, "contains a broken character (a lone surrogate); remove it"
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if item > INT64_MAX:
                return path, f"is too large; the limit is {INT64_MAX}"
            if item < INT64_MIN:
                return path, f"is too small; the limit is {INT64_MIN}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, "is not a finite number; give a real number"
        elif isinstance(item, Mapping):
            for key, child in reversed(list(item.items())):
                name = str(key).replace("\x00", "\\0")
                if "\x00" in str(key):
                    return path, f"has a key with a NUL character ({name!r}); remove it"
                stack.append((f"{path}.{name}" if path else name, child, depth + 1))
        elif isinstance(item, (list, tuple)):
            for index in reversed(range(len(item))):
                stack.append((f"{path}[{index}]", item[index], depth + 1))
    return None


@dataclass(frozen=True)
class ValidatedInput:
    """A checked input, types normalised; `passthrough` lists unchecked extra keys.

    `input` is what is sent: the fields the user set, plus the documented default of every field the
    price depends on (so Kie charges what was estimated) and of every field Kie requires. Other
    defaults are left to Kie, which applies its own: a copy of a default that drifted from the docs
    would otherwise silently override Kie's. `effective` is the input with every documented default,
    the one the checks and the price were computed on; `defaulted` names the defaults applied there.
    """

    model: ModelSpec
    input: dict[str, Any]
    defaulted: tuple[str, ...] = ()
    passthrough: tuple[str, ...] = ()
    effective: dict[str, Any] | None = None

    @property
    def model_id(self) -> str:
        return self.model.id

    @property
    def checked(self) -> dict[str, Any]:
        return dict(self.effective if self.effective is not None else self.input)


def price_fields(model: ModelSpec) -> frozenset[str]:
    """The input fields a model's price depends on (implied endpoint fields excluded)."""
    rule = model.price
    if rule is None:
        return frozenset()
    named = {*rule.by, *([rule.units_field] if rule.units_field else [])}
    return frozenset(n for n in named if n in model.fields and n not in model.endpoint.fixed)


def wire_defaults(model: ModelSpec) -> frozenset[str]:
    """Fields whose documented default goes on the wire when the user leaves them out."""
    required = {name for name, spec in model.fields.items() if spec.required}
    return price_fields(model) | frozenset(required)


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://", "data:"))


def _ratio_form(text: str) -> str:
    return re.sub(r"[\s\-x/_×]+", ":", text.strip().lower())


def suggest(value: str, choices: list[str]) -> str | None:
    """A near match for a typo: first by aspect-ratio-like normalisation (`16-9`), then by spelling."""
    norm = _ratio_form(value)
    for choice in choices:
        if _ratio_form(choice) == norm:
            return choice
    lowered = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def _fmt_allowed(values: tuple[Any, ...]) -> str:
    shown = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
    return ", ".join(shown)


class _Checker:
    def __init__(self, allow_local_files: bool) -> None:
        self.allow_local_files = allow_local_files
        self.issues: list[Issue] = []

    def fail(self, name: str, problem: str, suggestion: str | None = None) -> None:
        self.issues.append(Issue(name, problem, suggestion))

    def coerce_scalar(self, name: str, spec: FieldSpec, kind: FieldType, value: Any) -> tuple[bool, Any]:
        """Return (ok, converted) for one candidate type; no issue is recorded here."""
        if kind == "string":
            if isinstance(value, str):
                return True, value
            if isinstance(value, LocalFile) and spec.media is not None:
                return True, value
            if isinstance(value, int) and not isinstance(value, bool):
                return True, str(value)
            if isinstance(value, float):
                return True, str(int(value)) if value.is_integer() else str(value)
            return False, value
        if kind in ("integer", "number"):
            if isinstance(value, bool):
                return False, value
            if isinstance(value, str):
                try:
                    value = float(value.strip())
                except ValueError:
                    return False, value
            if isinstance(value, int):  # exact, and beyond a float's range: `_limits` judges its size
                return True, value
            if isinstance(value, float):
                if not math.isfinite(value):
                    return False, value
                if kind == "integer":
                    if float(value).is_integer():
                        return True, int(value)
                    return False, value
                return True, int(value) if float(value).is_integer() else float(value)
            return False, value
        if kind == "boolean":
            if isinstance(value, bool):
                return True, value
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return True, value.strip().lower() == "true"
            return False, value
        if kind == "object":
            return isinstance(value, Mapping), value
        if kind == "array":
            if isinstance(value, (list, tuple)):
                return True, list(value)
            if isinstance(value, (str, *LocalFile)) and (spec.items == "string" or spec.items is None):
                return True, [value]
            return False, value
        return False, value

    def check(self, name: str, spec: FieldSpec, value: Any) -> Any:
        converted: Any = value
        for kind in spec.types:
            ok, converted = self.coerce_scalar(name, spec, kind, value)
            if ok:
                break
        else:
            wanted = " or ".join(_type_phrase(t, spec) for t in spec.types)
            self.fail(name, f"must be {wanted}, got {_describe(value)}")
            return value

        if spec.enum is not None and spec.enum_complete and not isinstance(converted, (list, dict)):
            allowed = list(spec.enum)
            if converted not in allowed and str(converted) not in [str(a) for a in allowed]:
                hint = suggest(str(converted), [str(a) for a in allowed])
                self.fail(name, f"must be one of {_fmt_allowed(spec.enum)}, got {converted!r}", hint)
                return converted
            for allowed_value in allowed:
                if str(allowed_value) == str(converted) and type(allowed_value) is not type(converted):
                    converted = allowed_value
        self._limits(name, spec, converted)
        return converted

    def _limits(self, name: str, spec: FieldSpec, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if spec.minimum is not None and value < spec.minimum:
                self.fail(name, f"must be at least {_num(spec.minimum)}{_range(spec)}, got {_num(value)}")
            elif spec.maximum is not None and value > spec.maximum:
                self.fail(name, f"must be at most {_num(spec.maximum)}{_range(spec)}, got {_num(value)}")
            elif isinstance(value, int) and value > INT64_MAX:
                self.fail(name, f"is too large; the limit is {INT64_MAX}")
            elif isinstance(value, int) and value < INT64_MIN:
                self.fail(name, f"is too small; the limit is {INT64_MIN}")
        elif isinstance(value, str):
            if (
                (spec.required or name == "prompt")
                and spec.media is None
                and spec.enum is None
                and not value.strip()
            ):
                self.fail(name, _empty_problem(name))
                return
            if spec.max_length is not None and len(value) > spec.max_length:
                self.fail(name, f"is {len(value)} characters long; the limit is {spec.max_length}")
            elif spec.min_length is not None and len(value) < spec.min_length:
                self.fail(name, f"is {len(value)} characters long; it needs at least {spec.min_length}")
            self._local_file(name, spec, value)
        elif isinstance(value, list):
            if spec.max_items is not None and len(value) > spec.max_items:
                self.fail(name, f"has {len(value)} items; at most {spec.max_items} are allowed")
            elif spec.min_items is not None and len(value) < spec.min_items:
                self.fail(name, f"has {len(value)} items; at least {spec.min_items} are needed")
            for index, item in enumerate(value):
                self._item(f"{name}[{index}]", spec, item)
        elif isinstance(value, LocalFile):
            self._local_file(name, spec, value)

    def _item(self, name: str, spec: FieldSpec, item: Any) -> None:
        if spec.items == "string":
            if isinstance(item, str) or (isinstance(item, LocalFile) and spec.media is not None):
                self._local_file(name, spec, item)
            else:
                self.fail(name, f"must be a string, got {_describe(item)}")
        elif spec.items == "object" and not isinstance(item, Mapping):
            self.fail(name, f"must be an object, got {_describe(item)}")
        elif spec.items in ("integer", "number") and (
            isinstance(item, bool) or not isinstance(item, (int, float))
        ):
            self.fail(name, f"must be a number, got {_describe(item)}")

    def _local_file(self, name: str, spec: FieldSpec, value: Any) -> None:
        if spec.media is None or not self.allow_local_files:
            return
        if isinstance(value, str) and _is_url(value):
            return
        problem = _file_problem(spec.media, value)
        if problem is not None:
            self.fail(name, problem)


def _file_problem(media: str, value: Any) -> str | None:
    """Why a local path or bytes cannot be this field's `media`, or None when it can."""
    ask = _ASK[media]
    if isinstance(value, (bytes, bytearray)):
        head, subject = bytes(value[:_HEAD_BYTES]), "the data"
    elif isinstance(value, str) and not value.strip():
        return "is empty; give an http(s) URL or the path of a local file"
    else:
        path = Path(value)
        text = str(value)
        shown = repr(text if len(text) <= 120 else text[:117] + "...")
        try:
            mode = path.stat().st_mode
        except OSError:  # missing, or not a path at all (too long, a broken link, a file as a folder)
            return f"is neither an http(s) URL nor an existing local file: {shown}; {ask}"
        if stat.S_ISDIR(mode):
            return f"is a folder, not a file: {shown}; {ask}"
        if not stat.S_ISREG(mode):
            return f"is not a regular file: {shown}; {ask}"
        try:
            with path.open("rb") as handle:
                head = handle.read(_HEAD_BYTES)
        except PermissionError:
            return f"cannot be read (permission denied): {shown}; make it readable or give a URL"
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc}): {shown}; check the file or give a URL"
        subject = path.name
    if not head:
        return f"is empty: {subject} has no content; {ask}"
    if sniff_media(head) == media:
        return None
    article = "a" if media == "video" else "an"
    return f"is not {article} {media} file: {subject} {_looks_like(head)}; {ask}"


def _number_field_int(spec: FieldSpec | None, value: Any) -> bool:
    """An integer for a number field is judged by the field's own range before the 64-bit limit."""
    numeric = spec is not None and ("integer" in spec.types or "number" in spec.types)
    return numeric and isinstance(value, int) and not isinstance(value, bool)


def _empty_problem(name: str) -> str:
    """Only required text and the prompt: an optional field may be empty on purpose (Runway's docs send
    `waterMark: ""` for no watermark)."""
    return "is empty; write what to generate" if name == "prompt" else "is empty; give a value"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _range(spec: FieldSpec) -> str:
    if spec.minimum is not None and spec.maximum is not None:
        return f" (allowed {_num(spec.minimum)} to {_num(spec.maximum)})"
    return ""


def _type_phrase(kind: FieldType, spec: FieldSpec) -> str:
    if kind == "array":
        return f"a list of {spec.items or 'values'}s"
    if kind == "string" and spec.media is not None:
        return f"a URL or local {spec.media} file"
    return {
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "object": "an object",
    }[kind]


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"


def _usable_default(value: Any) -> bool:
    return value is not None and value not in ("", [], [""])


def validate(
    model: ModelSpec,
    values: Mapping[str, Any],
    *,
    allow_unknown: bool = False,
    fill_defaults: bool = True,
    allow_local_files: bool = True,
    require: bool = True,
) -> ValidatedInput:
    """Check `values` for `model`; raise one `ValidationError` naming every bad field.

    `require=False` skips missing-field checks, for quoting a price before the prompt is written.

    Unknown fields are errors unless `allow_unknown` is set, because Kie ignores them silently and a
    typo'd option is a paid generation with the wrong settings. Models whose docs publish no schema
    pass everything through unchecked.
    """
    if not model.schema_published:
        return ValidatedInput(model, dict(values), passthrough=tuple(values))

    checker = _Checker(allow_local_files)
    clean: dict[str, Any] = {}
    passthrough: list[str] = []
    for name, value in values.items():
        spec = model.fields.get(name)
        bad = None if _number_field_int(spec, value) else unstorable(value, name)
        if bad is not None:
            checker.fail(*bad)
            continue
        if spec is None:
            if allow_unknown:
                clean[name] = value
                passthrough.append(name)
                continue
            hint = suggest(name, list(model.fields))
            checker.fail(
                name, f"is not a field of {model.id}; its fields are {', '.join(model.fields)}", hint
            )
            continue
        if value is None:
            continue
        clean[name] = checker.check(name, spec, value)

    defaulted: list[str] = []
    for name, spec in model.fields.items():
        if name in clean:
            continue
        if fill_defaults and _usable_default(spec.default):
            clean[name] = spec.default
            defaulted.append(name)
        elif spec.required and require and spec.enum is not None and spec.enum_complete:
            checker.fail(name, f"is required; one of {_fmt_allowed(spec.enum)}")
        elif spec.required and require:
            checker.fail(name, "is required; add it to the input")

    if checker.issues:
        raise ValidationError.from_issues(model.id, checker.issues)
    keep = wire_defaults(model)
    sent = {k: v for k, v in clean.items() if k not in defaulted or k in keep}
    return ValidatedInput(model, sent, tuple(defaulted), tuple(passthrough), effective=clean)
