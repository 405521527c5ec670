"""The human's limits on what an agent may spend, read from the environment or the config file only.

None of these is ever a tool argument: an agent that could pass `max_credits=10**6` or `approved=true`
would be giving itself consent. Each value comes from `KIE_MCP_*` in the environment, else from the
`[mcp]` table of the config file, else from a default that keeps an unconfigured server cautious.

    [mcp]
    auto_approve_credits = 20      # spends up to this go ahead without asking
    max_credits_per_call = 200
    max_credits_per_session = 1000
    max_credits_per_day = 2000
    models = ["google/nano-banana", "bytedance/*"]
    read_only = false
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kie.config import Settings, budget_value, default_config_path
from kie.errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

DEFAULT_AUTO_APPROVE = 20.0
DEFAULT_GALLERY_PORT = 8765
QUOTE_TTL = 15 * 60.0

# Environment name, config-file key: documented in the README part for `kie mcp`.
ENV = {
    "auto_approve_credits": "KIE_MCP_AUTO_APPROVE_CREDITS",
    "max_credits_per_call": "KIE_MCP_MAX_CREDITS_PER_CALL",
    "max_credits_per_session": "KIE_MCP_MAX_CREDITS_PER_SESSION",
    "max_credits_per_day": "KIE_MCP_MAX_CREDITS_PER_DAY",
    "models": "KIE_MCP_MODELS",
    "read_only": "KIE_MCP_READ_ONLY",
    "output_dir": "KIE_MCP_OUTPUT_DIR",
    "upload_roots": "KIE_MCP_UPLOAD_ROOTS",
    "gallery_port": "KIE_GALLERY_PORT",
}


@dataclass(frozen=True)
class Limits:
    """What the human allows. `None` means no limit of that kind (except the auto-approve threshold,
    which always has a value: above it, a human is asked)."""

    auto_approve_credits: float = DEFAULT_AUTO_APPROVE
    max_credits_per_call: float | None = None
    max_credits_per_session: float | None = None
    max_credits_per_day: float | None = None
    max_credits_total: float | None = None  # KIE_MAX_CREDITS: the global budget of the ledger
    models: tuple[str, ...] = ()  # allow-list of ids or glob patterns; empty allows every model
    read_only: bool = False
    output_dir: Path | None = None
    upload_roots: tuple[Path, ...] = field(default_factory=tuple)
    gallery_port: int = DEFAULT_GALLERY_PORT
    quote_ttl: float = QUOTE_TTL

    def allows_model(self, model_id: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model_id, pattern) for pattern in self.models)


def _config_table(settings: Settings) -> dict[str, Any]:
    path = settings.config_path or default_config_path()
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            table = tomllib.load(handle).get("mcp", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"Cannot read config file {path}: {exc}. Fix or remove it.") from exc
    if not isinstance(table, dict):
        raise ConfigurationError(f"[mcp] in {path} must be a table of settings such as read_only = true.")
    return table


def _flag(raw: Any, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be 1 or 0 (true or false), not {raw!r}.")


def _names(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def load_limits(settings: Settings, env: Mapping[str, str] | None = None) -> Limits:
    """The limits in force, environment first, then the `[mcp]` table of the config file."""
    environ = os.environ if env is None else env
    table = _config_table(settings)

    def pick(key: str) -> tuple[Any, str]:
        name = ENV[key]
        if environ.get(name, "").strip():
            return environ[name], name
        return table.get(key), f"{key} in the [mcp] table of the config file"

    def credits(key: str) -> float | None:
        raw, source = pick(key)
        return budget_value(raw, source)

    auto = credits("auto_approve_credits")
    models_raw, _ = pick("models")
    read_only_raw, read_only_source = pick("read_only")
    output_raw, _ = pick("output_dir")
    roots_raw, _ = pick("upload_roots")
    port_raw, port_source = pick("gallery_port")
    try:
        port = int(port_raw) if port_raw not in (None, "") else DEFAULT_GALLERY_PORT
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise ConfigurationError(f"{port_source} must be a port number from 1 to 65535, not {port_raw!r}.")
    return Limits(
        auto_approve_credits=DEFAULT_AUTO_APPROVE if auto is None else auto,
        max_credits_per_call=credits("max_credits_per_call"),
        max_credits_per_session=credits("max_credits_per_session"),
        max_credits_per_day=credits("max_credits_per_day"),
        max_credits_total=settings.max_credits,
        models=_names(models_raw) if models_raw else (),
        read_only=_flag(read_only_raw, read_only_source) if read_only_raw is not None else False,
        output_dir=Path(str(output_raw)).expanduser() if output_raw else None,
        upload_roots=tuple(Path(p).expanduser() for p in _names(roots_raw)) if roots_raw else (),
        gallery_port=port,
    )
