from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from analysis.tools.generate import generate  # noqa: E402

SAMPLE_CLIENTS = 20_000   # calibration sample: big enough for the DOMAIN figures' sampling error
SMALL_CLIENTS = 1_500     # runner and notebook tests


def base_tables() -> dict[str, pd.DataFrame]:
    """A tiny valid data set (as text, like a CSV export) that each test then breaks once."""
    return {
        "clients": pd.DataFrame({"client_id": ["007", "008"], "signed_up_at": ["2026-01-01T10:00:00Z", "2026-01-02"]}),
        "payments": pd.DataFrame({"payment_id": ["p1", "p2"], "client_id": ["007", "008"],
                                  "paid_at": ["2026-01-03T00:00:00+03:00", "2026-01-05 12:00"],
                                  "amount": ["100", "-20.5"]}),
        "tickets": pd.DataFrame({"ticket_id": ["t1", "t2"], "created_at": ["2026-01-04T09:00:00Z", "2026-01-06T09:00:00Z"],
                                 "channel": ["chat", "phone"], "first_tier": ["L1", "L1.5"],
                                 "client_id": ["007", None], "first_response_at": ["2026-01-04T09:10:00Z", None],
                                 "resolved_at": ["2026-01-04T10:00:00Z", None], "final_tier": ["L2", None],
                                 "csat_score": ["5", None]}),
    }


def shown(markdown: str) -> str:
    """What a reader sees of a Markdown text: rendered by nbconvert's own Markdown renderer (as
    the HTML export renders a report), tags removed, entities decoded."""
    import html
    import re

    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    return html.unescape(re.sub(r"<[^>]+>", "", markdown2html_mistune(str(markdown))))


def write_dir(path: Path, tables: dict[str, pd.DataFrame], fmt: str = "csv") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(path / f"{name}.csv", index=False)
        else:
            frame.to_parquet(path / f"{name}.parquet", index=False)
    return path


def made_once(tmp_path_factory, worker_id: str, name: str, make) -> Path:
    """A directory ``name`` that ``make(path)`` fills once for the whole test session: under
    pytest-xdist (``make test`` runs two processes) in the directory the processes share, by the
    first process that asks, while the other waits on a lock (pytest-xdist's documented recipe
    for session fixtures); without it, in the session's own temporary directory."""
    import fcntl
    base = tmp_path_factory.getbasetemp()
    home = (base if worker_id == "master" else base.parent) / name
    with open(f"{home}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / ".made").exists():
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir()
            make(home)
            (home / ".made").touch()
    return home


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory, worker_id) -> Path:
    return made_once(tmp_path_factory, worker_id, "sample",
                     lambda out: generate(out, clients=SAMPLE_CLIENTS, seed=42, fmt="parquet"))


@pytest.fixture(scope="session")
def truth(sample_dir) -> dict:
    return json.loads((sample_dir / "truth.json").read_text())


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory, worker_id) -> Path:
    return made_once(tmp_path_factory, worker_id, "small",
                     lambda out: generate(out, clients=SMALL_CLIENTS, seed=7, fmt="csv"))


@pytest.fixture(scope="session")
def sample_runs(small_dir, tmp_path_factory, worker_id):
    """Two runs of the small set into one OUT and archive, as a weekly schedule makes them: the
    first as of 2025-12-01 with contact_window_days=14 from the command line, the second with
    the defaults (as of the day after the data, 2026-01-01). Returns (exit codes, OUT, archive);
    the tests only read them (the runner's, the browser's and the pages' checks share one pair of
    runs, made once for the session, instead of each making its own)."""
    from analysis.run.cli import main

    def make(home: Path) -> None:
        out, archive = home / "out", home / "archive"
        first = main(["run", "--data", str(small_dir), "--out", str(out), "--archive", str(archive),
                      "--as-of", "2025-12-01", "-p", "contact_window_days=14"])
        second = main(["run", "--data", str(small_dir), "--out", str(out), "--archive", str(archive)])
        (home / "codes.json").write_text(json.dumps([first, second]))

    home = made_once(tmp_path_factory, worker_id, "sample_runs", make)
    return tuple(json.loads((home / "codes.json").read_text())), home / "out", home / "archive"


# ---- PostgreSQL: a real server -----------------------------------------------------------------
def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@pytest.fixture(scope="session")
def postgres_url():
    """A private PostgreSQL server for this test session (Debian's postgresql: initdb and pg_ctl
    in a temporary directory, trust authentication on 127.0.0.1 only); its URL."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing: .ci/run installs Debian's postgresql package")
        pytest.skip("PostgreSQL not installed (apt-get install postgresql)")
    # in /tmp itself: pytest's own temporary directories are closed to other users; the server
    # refuses to run as root, so as root it runs as the postgres user the package creates
    home = Path(tempfile.mkdtemp(prefix="suite-postgres-"))
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = home / "data"
    try:
        if prefix:
            shutil.chown(home, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        subprocess.run([*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--locale=C"], check=True, capture_output=True)
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(home / "server.log"), "-w", "-o",
                        f"-p {port} -k {home} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


# ---- the engine's backends (tests/test_engine.py and every suite parametrised over them) ------------
@pytest.fixture(scope="session")
def spark_backend():
    """A local Spark session for the test session (the Spark extra; CI installs it)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("pyspark is missing: .ci/run installs the Spark extra (make spark)")
        pytest.skip("pyspark not installed (make spark)")
    from analysis.data.engine import connect
    return connect("spark")


BACKENDS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("spark", marks=pytest.mark.spark)]


def backend_for(request):
    """A connection to the backend named by ``request.param`` (a fixture parametrised on BACKENDS)."""
    from analysis.data.engine import connect
    if request.param == "duckdb":
        return connect("duckdb")
    if request.param == "postgres":
        return connect("postgres", request.getfixturevalue("postgres_url"))
    return request.getfixturevalue("spark_backend")
