"""Opening the ledger: many processes at once, a fast path for a current store, clear setup errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, Text, create_engine, text

import kie.store.ledger
from kie.errors import ConfigurationError
from kie.store import Ledger
from kie.store.ledger import HEAD
from kie.store.schema import metadata


def migrations_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(kie.store.ledger.__file__).parent / "migrations"))
    return config


def revisions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return list(c.execute(text("SELECT version_num FROM kie_alembic_version")).scalars())
    finally:
        engine.dispose()


def test_head_constant_is_alembics_head() -> None:
    assert ScriptDirectory.from_config(migrations_config()).get_current_head() == HEAD


def test_three_processes_opening_a_fresh_store_at_once_all_succeed(store_url: str) -> None:
    code = f"from kie.store import Ledger; Ledger({store_url!r})"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=os.environ.copy()
        )
        for _ in range(3)
    ]
    outcomes = [(proc.wait(), proc.stderr.read() if proc.stderr else "") for proc in procs]
    assert [code for code, _ in outcomes] == [0, 0, 0], [err for _, err in outcomes]
    assert revisions(store_url) == [HEAD]


def test_a_current_store_opens_without_importing_alembic(store_url: str) -> None:
    Ledger(store_url).close()
    code = f"import sys; from kie.store import Ledger; Ledger({store_url!r}); print('alembic' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=os.environ.copy()
    )
    assert out.stdout.strip() == "False"


def test_schema_module_matches_the_migrations(store_url: str) -> None:
    ledger = Ledger(store_url)
    with ledger.engine.connect() as c:
        context = MigrationContext.configure(
            c, opts={"compare_type": True, "version_table": "kie_alembic_version"}
        )
        assert compare_metadata(context, metadata) == []
        # The comparison has teeth: a column the migrations lack is reported.
        drifted = MetaData()
        for table in metadata.tables.values():
            table.to_metadata(drifted)
        drifted.tables["kie_jobs"].append_column(Column("not_migrated", Text))
        assert [diff[0] for diff in compare_metadata(context, drifted)] == ["add_column"]


def test_a_sqlite_store_in_a_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ledger.db"
    with pytest.raises(ConfigurationError) as caught:
        Ledger(f"sqlite:///{missing}")
    message = str(caught.value)
    assert str(missing.parent) in message and "create it or fix KIE_STORE_URL" in message
    assert message.endswith(".") and not message.endswith("..") and "\n" not in message


def test_an_unknown_scheme_is_one_sentence_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Ledger("mongodb://admin:hunter2@db.example/kie")
    message = str(caught.value)
    assert "hunter2" not in message and "***" in message and "'mongodb'" in message
    assert message.endswith(".") and "\n" not in message


def test_an_unreachable_server_is_one_sentence_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Ledger("postgresql+psycopg://kie:hunter2@127.0.0.1:1/kie?connect_timeout=2")
    message = str(caught.value)
    assert "hunter2" not in message and "kie:***@127.0.0.1:1" in message
    assert "KIE_STORE_URL" in message and message.endswith(".") and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_file_that_is_not_a_database_is_reported_in_one_sentence(tmp_path: Path) -> None:
    bogus = tmp_path / "ledger.db"
    bogus.write_bytes(b"this is not an sqlite file at all, just some text" * 10)
    with pytest.raises(ConfigurationError, match="Cannot open the job store") as caught:
        Ledger(f"sqlite:///{bogus}")
    assert "\n" not in str(caught.value)


def test_a_store_from_a_newer_kie_says_to_upgrade(store_url: str) -> None:
    Ledger(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as c:
        c.execute(text("UPDATE kie_alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(ConfigurationError, match=r"revision '9999', newer than this kie knows; upgrade kie"):
        Ledger(store_url)
