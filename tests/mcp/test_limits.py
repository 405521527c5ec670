"""The human's limits come from the environment or the config file, checked in one sentence each."""

from __future__ import annotations

from pathlib import Path

import pytest

from kie.config import load_settings
from kie.errors import ConfigurationError
from kie.mcp.limits import DEFAULT_AUTO_APPROVE, load_limits


def test_defaults_are_cautious() -> None:
    limits = load_limits(load_settings(), env={})
    assert limits.auto_approve_credits == DEFAULT_AUTO_APPROVE == 20
    assert limits.max_credits_per_call is None and not limits.read_only and limits.allows_model("veo3")
    assert limits.upload_roots == ()


def test_environment_wins_over_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "max_credits = 900\n[mcp]\nauto_approve_credits = 5\nmax_credits_per_day = 100\n"
        'models = ["google/*"]\n'
    )
    monkeypatch.setenv("KIE_CONFIG", str(config))
    env = {
        "KIE_MCP_AUTO_APPROVE_CREDITS": "2",
        "KIE_MCP_READ_ONLY": "yes",
        "KIE_MCP_MAX_CREDITS_PER_CALL": "50",
    }
    limits = load_limits(load_settings(), env=env)
    assert limits.auto_approve_credits == 2 and limits.read_only and limits.max_credits_per_call == 50
    assert limits.max_credits_per_day == 100 and limits.max_credits_total == 900
    assert limits.allows_model("google/nano-banana") and not limits.allows_model("veo3_fast")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("KIE_MCP_MAX_CREDITS_PER_SESSION", "lots", "KIE_MCP_MAX_CREDITS_PER_SESSION must be a number"),
        ("KIE_MCP_AUTO_APPROVE_CREDITS", "-1", "at least 0"),
        ("KIE_MCP_READ_ONLY", "maybe", "KIE_MCP_READ_ONLY must be 1 or 0"),
        ("KIE_GALLERY_PORT", "70000", "port number"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_it(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words) as caught:
        load_limits(load_settings(), env={name: value})
    assert str(caught.value).count(". ") == 0
