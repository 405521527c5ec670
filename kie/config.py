"""Where settings come from: arguments, then environment, then the config file, then defaults.

The config file is TOML at `<platform config dir>/kie/config.toml` (or `$KIE_CONFIG`). It may hold
price overrides, the USD rate, a global credit budget and network defaults. Secrets may live there too,
but `Settings.__repr__` never shows them, so a settings object is safe to log.

    usd_per_credit = 0.005
    max_credits = 5000              # global budget for batches
    callback_url = "https://example.com/kie/callback"

    [prices]
    "google/nano-banana" = 4        # flat credits per task
    "kling-3.0/video" = { credits = 20, per = "second", units_field = "duration" }
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from kie.errors import ConfigurationError

if TYPE_CHECKING:
    from kie.catalog.spec import PriceRule

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

DEFAULT_BASE_URL = "https://api.kie.ai"
DEFAULT_UPLOAD_BASE_URL = "https://kieai.redpandaai.co"
# Suno refuses requests without a callback URL. When the user has none, this documented placeholder is
# sent; callbacks to it are lost, which is fine because kie polls anyway.
DEFAULT_CALLBACK_PLACEHOLDER = "https://callback.invalid/kie-polling-only"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. Every value is finite: nothing in kie waits forever unless explicitly told to."""

    connect: float = 10.0
    read: float = 60.0
    write: float = 60.0
    pool: float = 30.0
    # The whole wait for one task, from submit to result. Videos can take 15 minutes on Kie.
    task_deadline: float = 30 * 60.0
    download: float = 300.0
    # How long a batch keeps retrying creates that never reached Kie (connection refused, DNS) before
    # it pauses with a reason: long enough for a network blip, short enough to notice a wrong URL.
    unreachable: float = 180.0


@dataclass(frozen=True)
class Settings:
    api_key: str | None = None
    base_url: str = DEFAULT_BASE_URL
    upload_base_url: str = DEFAULT_UPLOAD_BASE_URL
    usd_per_credit: float = 0.005
    max_credits: float | None = None
    callback_url: str | None = None
    webhook_key: str | None = None
    home: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("kie")))
    store_url: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    price_overrides: Mapping[str, PriceRule] = field(default_factory=dict)
    config_path: Path | None = None

    def __repr__(self) -> str:
        key = "set" if self.api_key else "unset"
        hook = "set" if self.webhook_key else "unset"
        return (
            f"Settings(api_key=<{key}>, base_url={self.base_url!r}, upload_base_url={self.upload_base_url!r},"
            f" webhook_key=<{hook}>, home={str(self.home)!r}, config_path={self.config_path!s})"
        )

    __str__ = __repr__

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def default_config_path() -> Path:
    env = os.environ.get("KIE_CONFIG")
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("kie")) / "config.toml"


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return dict(tomllib.load(handle))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"Cannot read config file {path}: {exc}. Fix or remove it.") from exc


def _price_overrides(raw: Any, path: Path) -> dict[str, PriceRule]:
    if raw is None:
        return {}
    from pydantic import ValidationError as PydanticValidationError

    from kie.catalog.spec import PriceRule

    if not isinstance(raw, dict):
        raise ConfigurationError(f"[prices] in {path} must be a table of model = credits.")
    rules: dict[str, PriceRule] = {}
    for model, value in raw.items():
        if isinstance(value, PriceRule):
            rules[model] = value
            continue
        try:
            if isinstance(value, (int, float)):
                rules[model] = PriceRule(credits=float(value), source=f"override in {path}")
            else:
                rules[model] = PriceRule.model_validate({"source": f"override in {path}", **value})
        except (PydanticValidationError, TypeError) as exc:
            raise ConfigurationError(
                f"Price override for {model!r} in {path} is invalid; use a number of credits or a table "
                f'like {{ credits = 20, per = "second", units_field = "duration" }}.'
            ) from exc
    return rules


def clean_key(raw: Any, name: str = "KIE_API_KEY") -> str | None:
    """A key as Kie will receive it: surrounding whitespace (a pasted newline) stripped, and refused in
    one sentence, without echoing it, when it holds characters no HTTP header can carry.

    A malformed key used to surface as an httpx header error quoting the key, which then landed in the
    ledger's error column; refusing it here keeps it out of every message and every store."""
    if raw is None:
        return None
    key = str(raw).strip()
    if not key:
        return None
    if not key.isascii() or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in key):
        raise ConfigurationError(
            f"{name} contains spaces, control or non-ASCII characters ({len(key)} characters); copy the "
            "key again from your Kie.ai dashboard and set it without quotes or line breaks."
        )
    return key


def budget_value(raw: Any, source: str) -> float | None:
    """A credit budget: a finite number of at least 0. `nan` used to switch the budget off silently."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(
            f"{source} must be a number of credits of at least 0, such as 500, not {raw!r}; fix it or "
            "leave it unset for no budget."
        )
    return value


def load_settings(config_path: Path | None = None, **overrides: Any) -> Settings:
    """Build settings: explicit `overrides` win over environment variables, which win over the file."""
    path = config_path or default_config_path()
    data = _read_file(path)
    env = os.environ

    def pick(name: str, env_name: str | None, default: Any = None) -> Any:
        if overrides.get(name) is not None:
            return overrides[name]
        if env_name and env.get(env_name):
            return env[env_name]
        return data.get(name, default)

    usd_raw = pick("usd_per_credit", "KIE_USD_PER_CREDIT", 0.005)
    try:
        usd = float(usd_raw)
    except (TypeError, ValueError):
        usd = math.nan
    if not math.isfinite(usd) or usd <= 0:
        raise ConfigurationError(
            f"usd_per_credit (KIE_USD_PER_CREDIT or {path}) must be a positive number such as 0.005, "
            f"not {usd_raw!r}."
        )
    env_budget = overrides.get("max_credits") is None and bool(env.get("KIE_MAX_CREDITS"))
    max_credits = budget_value(
        pick("max_credits", "KIE_MAX_CREDITS"),
        "KIE_MAX_CREDITS" if env_budget else f"max_credits in {path}",
    )
    home = pick("home", "KIE_HOME")
    home_path = Path(home) if home else Path(platformdirs.user_data_dir("kie"))
    timeouts = overrides.get("timeouts") or Timeouts()
    unreachable_raw = pick("unreachable_timeout", "KIE_UNREACHABLE_TIMEOUT")
    if unreachable_raw is not None:
        try:
            unreachable = float(unreachable_raw)
        except (TypeError, ValueError):
            unreachable = math.nan
        if not math.isfinite(unreachable) or unreachable <= 0:
            raise ConfigurationError(
                "KIE_UNREACHABLE_TIMEOUT (unreachable_timeout in the config file) must be a positive "
                f"number of seconds such as 180, not {unreachable_raw!r}."
            )
        timeouts = replace(timeouts, unreachable=unreachable)
    prices: dict[str, PriceRule] = {}
    if (home_path / "synced-prices.json").is_file():  # the sync module loads the catalogue: only if needed
        from kie.catalog.sync import synced_overrides

        prices = synced_overrides(home_path)
    prices.update(_price_overrides(overrides.get("price_overrides") or data.get("prices"), path))
    return Settings(
        api_key=clean_key(pick("api_key", "KIE_API_KEY")),
        base_url=str(pick("base_url", "KIE_BASE_URL", DEFAULT_BASE_URL)).rstrip("/"),
        upload_base_url=str(pick("upload_base_url", "KIE_UPLOAD_BASE_URL", DEFAULT_UPLOAD_BASE_URL)).rstrip(
            "/"
        ),
        usd_per_credit=usd,
        max_credits=max_credits,
        callback_url=pick("callback_url", "KIE_CALLBACK_URL"),
        webhook_key=clean_key(pick("webhook_key", "KIE_WEBHOOK_KEY"), "KIE_WEBHOOK_KEY"),
        home=home_path,
        store_url=pick("store_url", "KIE_STORE_URL"),
        timeouts=timeouts,
        price_overrides=prices,
        config_path=path if path.is_file() else None,
    )
