"""Data sources (DESIGN §2): a DuckDB database file and a real PostgreSQL server give the same
validated tables, the same messages (naming the table) and the same metrics.json as the files.

The PostgreSQL tests start a private server (Debian's postgresql: initdb and pg_ctl in a
temporary directory, trust authentication on 127.0.0.1 only); without its binaries they are
skipped, except in CI, where .ci/run installs them."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from analysis import DataError, InputError, load_dataset
from analysis.run.cli import main
from analysis.tools.generate import generate
from analysis.data.sources import parse_source
from conftest import SMALL_CLIENTS

TABLE_NAMES = ["clients", "payments", "tickets", "ticket_events", "agents", "outreach", "leads", "calls", "usage"]


@pytest.fixture(scope="module")
def typed_dir(tmp_path_factory) -> Path:
    """The small generated data set as Parquet: native types to put into a database."""
    out = tmp_path_factory.mktemp("typed")
    generate(out, clients=SMALL_CLIENTS, seed=7, fmt="parquet")
    return out


def to_duckdb(data_dir: Path, target: Path, change=None) -> Path:
    """The Parquet files of ``data_dir`` as tables of a DuckDB file with their native types
    (text ids, timestamps with time zone, doubles, booleans), then changed by SQL ``change``."""
    con = duckdb.connect(str(target))
    for name in TABLE_NAMES:
        if (data_dir / f"{name}.parquet").exists():
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{data_dir / f'{name}.parquet'}')")
    if change:
        con.execute(change)
    con.close()
    return target


def same_tables(a, b):
    assert set(a.tables) == set(b.tables)
    for name in a.tables:
        x = a.tables[name].sort_values(list(a.tables[name].columns)).reset_index(drop=True)
        y = b.tables[name][list(a.tables[name].columns)].sort_values(list(a.tables[name].columns)).reset_index(drop=True)
        pd.testing.assert_frame_equal(x, y, check_dtype=False, obj=name)
    assert {n: (r["read"], r["used"]) for n, r in a.accounting.items()} == \
        {n: (r["read"], r["used"]) for n, r in b.accounting.items()}


def same_metrics(a: dict, b: dict, path: str = "") -> list[str]:
    """Paths where two metrics.json differ (numbers to 1e-9 relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in
                (same_metrics(a[k], b[k], f"{path}.{k}") if k in a and k in b else [f"{path}.{k} missing"])]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same_metrics(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, (int, float)):
        return [] if abs(a - b) <= 1e-9 * max(1.0, abs(a)) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_parse_source_kinds_and_refusals(tmp_path):
    assert parse_source(tmp_path).kind == "directory"
    db = tmp_path / "shop.duckdb"
    duckdb.connect(str(db)).close()
    assert parse_source(db).kind == "duckdb" and parse_source(db).location == str(db.resolve())
    url = "postgresql://analyst@db.example:5432/shop"
    assert (parse_source(url).kind, parse_source(url).location) == ("postgres", url)
    assert parse_source("postgres://analyst@db.example/shop").kind == "postgres"
    # a password in the URL would be written into every report of the run
    with pytest.raises(InputError, match="holds a password.*pgpass"):
        parse_source("postgresql://analyst:secret@db.example/shop")
    with pytest.raises(InputError, match="unknown kind of address"):
        parse_source("mysql://analyst@db.example/shop")
    with pytest.raises(InputError, match="DuckDB database file not found"):
        parse_source(tmp_path / "missing.duckdb")
    with pytest.raises(InputError, match="data directory not found"):
        parse_source(tmp_path / "missing")


def test_a_duckdb_file_gives_the_same_tables_as_its_files(typed_dir, tmp_path):
    db = to_duckdb(typed_dir, tmp_path / "small.duckdb")
    files, database = load_dataset(typed_dir), load_dataset(db)
    same_tables(files, database)
    assert database.files["payments"] == f"table payments in {db.resolve()}"
    assert database.source == str(db.resolve())


def test_a_duckdb_table_breaking_a_rule_is_named_with_its_rows(typed_dir, tmp_path):
    # one payment of 0 (never allowed) and a numeric column: read as a double, the rule applies
    db = to_duckdb(typed_dir, tmp_path / "bad.duckdb",
                   "ALTER TABLE payments ALTER amount TYPE DECIMAL(14, 2) USING CAST(amount AS DECIMAL(14, 2)); "
                   "UPDATE payments SET amount = 0 WHERE payment_id = (SELECT min(payment_id) FROM payments)")
    with pytest.raises(DataError) as err:
        load_dataset(db)
    text = str(err.value)
    assert f"table payments in {db.resolve()}, column amount" in text
    assert "row 1 by payment_id, client_id, paid_at, amount" in text      # the smallest payment_id is read first


def test_the_config_maps_tables_with_other_names(typed_dir, tmp_path):
    from analysis.data.config import Config, Tier, load_config
    db = to_duckdb(typed_dir, tmp_path / "named.duckdb",
                   "CREATE SCHEMA billing; CREATE TABLE billing.charges AS SELECT * FROM payments; DROP TABLE payments;"
                   "ALTER TABLE tickets RENAME TO helpdesk_tickets")
    base = load_config(None)
    config = base.model_copy(update={"source_tables": {"payments": "billing.charges", "tickets": "helpdesk_tickets"}})
    ds = load_dataset(db, config)
    same_tables(load_dataset(typed_dir), ds)
    assert ds.files["payments"] == f"table billing.charges in {db.resolve()}"
    # asked for and not there: a problem naming it; a name outside the contract: refused
    with pytest.raises(DataError, match="table billing.refunds in .*not in the database"):
        load_dataset(db, config.model_copy(update={"source_tables": {"payments": "billing.refunds"}}))
    with pytest.raises(InputError, match="source_tables: invoices is not a table of the contract"):
        load_dataset(db, Config(tiers=[Tier(id="L1")], source_tables={"invoices": "billing.charges"}))


def test_an_absent_database_table_is_an_absent_table(typed_dir, tmp_path):
    db = to_duckdb(typed_dir, tmp_path / "no_calls.duckdb", "DROP TABLE calls; DROP TABLE leads")
    ds = load_dataset(db)
    assert ds.calls is None and ds.leads is None and ds.payments is not None


# ---- PostgreSQL: a real server -----------------------------------------------------------------
def to_postgres(data_dir: Path, url: str, tmp_path: Path) -> None:
    """The tables of ``data_dir`` in PostgreSQL with the native types a company's database has:
    text ids, timestamptz, numeric(14, 2) money, booleans."""
    import ibis
    import psycopg
    con = ibis.duckdb.connect(str(to_duckdb(data_dir, tmp_path / "for_postgres.duckdb")), read_only=True)
    pg = ibis.connect(url)
    for name in con.list_tables():
        pg.create_table(name, con.table(name).to_pyarrow(), overwrite=True)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("ALTER TABLE payments ALTER amount TYPE numeric(14, 2) USING amount::numeric(14, 2)")
    con.disconnect()
    pg.disconnect()


@pytest.mark.postgres
def test_postgres_gives_the_same_tables_and_metrics_as_the_files(typed_dir, postgres_url, tmp_path):
    to_postgres(typed_dir, postgres_url, tmp_path)
    files, database = load_dataset(typed_dir), load_dataset(postgres_url)
    same_tables(files, database)
    assert database.files["payments"] == f"table payments in {postgres_url}"
    # the tables are equal, so every report is; the runs check the runner's path with a URL
    # (the notebooks' data_dir, the snapshot standing in for the database) on two reports
    for name, data in (("files", str(typed_dir)), ("postgres", postgres_url)):
        assert main(["run", "--data", data, "--out", str(tmp_path / name),
                     "--only", "00_data_quality", "02_cohort_ltv"]) == 0
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("files", "postgres"))
    assert same_metrics(a, b) == []
    # the report bar names the URL (it holds no password); the data-quality report the tables
    page = (tmp_path / "postgres" / "00_data_quality.html").read_text()
    assert postgres_url in page and "table payments in" in page


@pytest.mark.postgres
def test_an_unreachable_server_is_one_clear_message(postgres_url):
    port = int(postgres_url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(InputError, match="cannot open the data source postgresql://"):
        load_dataset(f"postgresql://postgres@127.0.0.1:{port + 1 if port < 65535 else port - 1}/postgres")
