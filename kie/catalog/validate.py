"""Checks an input against a model before a credit is spent.

The rules follow what Kie really accepts, not only what its docs say: numeric strings are accepted for
number fields (Kie coerces them; Appendix C shows `"6"` stored as `6`), and a number given for a
string enum such as Kling's `duration` ("5") is converted, because the conversion is unambiguous and the
wrong JSON type is the most common paid 422. Everything else that is wrong is reported at once, field by
field, in one sentence.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kie.catalog.spec import FieldSpec, FieldType, ModelSpec
from kie.errors import Issue, ValidationError

# Values the user gives that stand for a local file to upload. `str` is only taken as a path when it
# is not a URL; the check happens here so a missing file is reported before any spend.
LocalFile = (Path, bytes, bytearray)


@dataclass(frozen=True)
class ValidatedInput:
    """A checked input: defaults filled, types normalised; `passthrough` lists unchecked extra keys."""

    model: ModelSpec
    input: dict[str, Any]
    defaulted: tuple[str, ...] = ()
    passthrough: tuple[str, ...] = ()

    @property
    def model_id(self) -> str:
        return self.model.id


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
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                text = str(int(value)) if float(value).is_integer() else str(value)
                return True, text
            return False, value
        if kind in ("integer", "number"):
            if isinstance(value, bool):
                return False, value
            if isinstance(value, str):
                try:
                    value = float(value.strip())
                except ValueError:
                    return False, value
            if isinstance(value, (int, float)):
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
        elif isinstance(value, str):
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
        if isinstance(value, (bytes, bytearray)):
            return
        if isinstance(value, str) and _is_url(value):
            return
        path = Path(value)
        if not path.is_file():
            self.fail(name, f"is neither an http(s) URL nor a readable local file: {str(value)!r}")


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
        elif spec.required and require:
            checker.fail(name, "is required; add it to the input")

    if checker.issues:
        raise ValidationError.from_issues(model.id, checker.issues)
    return ValidatedInput(model, clean, tuple(defaulted), tuple(passthrough))
