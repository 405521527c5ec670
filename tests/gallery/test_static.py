"""The vendored htmx is the file its VERSIONS note names, and the templates hold no inline script."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import kie.gallery

HERE = Path(kie.gallery.__file__).parent


def test_vendored_htmx_matches_its_recorded_version_and_hash() -> None:
    note = (HERE / "static" / "vendor" / "VERSIONS").read_text()
    recorded = re.search(r"sha256:\s+([0-9a-f]{64})", note)
    assert recorded is not None and "htmx.org 2.0.11" in note
    actual = hashlib.sha256((HERE / "static" / "vendor" / "htmx.min.js").read_bytes()).hexdigest()
    assert actual == recorded.group(1)


def test_templates_have_no_inline_script_style_or_handlers() -> None:
    for template in (HERE / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert "<style" not in text and not re.search(r"\sstyle=", text), template.name
        assert not re.search(r"\son[a-z]+=", text), template.name
        assert "hx-on" not in text, template.name
