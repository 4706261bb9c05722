"""Command line: `python -m analysis run|validate|import|generate ...` (DESIGN §3, §6).

Exit codes: 0 success; 1 a notebook failed, or the run's files could not be written (nothing
published); 2 invalid input or arguments, an --out that cannot be written or is locked by another
run (message, no traceback).
"""
from __future__ import annotations

import argparse
import sys

from analysis.errors import InputError, PublishError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="validate the data, run the notebooks, write HTML + metrics.json")
    run.add_argument("--data", required=True, help="data directory (one NAME.csv or NAME.parquet per table), a DuckDB file (*.duckdb) or postgresql://user@host:port/db")
    run.add_argument("--out", required=True, help="output directory for reports")
    run.add_argument("--as-of", help="YYYY-MM-DD; default: the day after the last event in the data")
    run.add_argument("--config", help="YAML config (default: config/default.yaml)")
    run.add_argument("--only", nargs="+", metavar="NAME", help="run only these reports")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="notebook parameter (after the config's); repeatable")
    run.add_argument("--jobs", type=int, default=2, help="notebooks run at once (default 2)")
    run.add_argument("--archive", help="also copy the run into ARCHIVE/<as-of>/")
    run.add_argument("--wait", action="store_true",
                     help="when another run holds the lock on OUT, wait for it instead of exiting with 2")
    run.add_argument("--engine", default="duckdb", metavar="{duckdb,spark}",
                     help="where the per-row work runs: duckdb in-process (default) or spark (a local session, "
                          "or the config's spark_master)")

    val = sub.add_parser("validate", help="check a data directory against the contract and print the accounting")
    val.add_argument("--data", required=True, help="data directory, DuckDB file or postgresql:// URL")
    val.add_argument("--as-of")
    val.add_argument("--config")

    imp = sub.add_parser("import", help="turn exports (Zendesk, Stripe, an event log, any CSV) into contract tables")
    imp.add_argument("format", help="zendesk, stripe, eventlog (presets) or table (needs --mapping)")
    imp.add_argument("sources", nargs="+", help="export files (CSV, CSV.gz or Parquet), stacked in order")
    imp.add_argument("--out", required=True, help="data directory to write the tables into")
    imp.add_argument("--mapping", help="YAML mapping (default: the preset of FORMAT)")
    imp.add_argument("--write-format", choices=["csv", "parquet"], default="csv")

    gen = sub.add_parser("generate", help="write the synthetic sample data and truth.json")
    gen.add_argument("--out", required=True)
    gen.add_argument("--clients", type=int, default=20_000)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    gen.add_argument("--profile", choices=["sample", "scale"], default="sample",
                     help="sample: calibrated to DOMAIN.md; scale: DESIGN §8 volumes (~20 payments, ~5 tickets per client)")
    gen.add_argument("--true-hr", type=float, help="true hazard ratio of support contact on churn (1: no effect; default 0.7)")
    gen.add_argument("--confounding", type=float,
                     help="factor on engagement's effect on contact and churn (0: none; default 1)")
    gen.add_argument("--no-usage", action="store_true", help="do not write the usage table (engagement unmeasured)")
    gen.add_argument("--usage-contact-lift", type=float,
                     help="relative rise of usage after the first ticket (a mediator; default 0)")
    return p


def _world(args) -> dict:
    """The generator's knobs given on the command line (analysis.tools.generate's module docstring)."""
    world: dict = {}
    if args.true_hr is not None:
        if args.true_hr <= 0:
            raise InputError("--true-hr must be > 0")
        world["true_hazard_ratio_contact"] = args.true_hr
    if args.confounding is not None:
        world["confounding"] = args.confounding
    usage = {**({"write": False} if args.no_usage else {}),
             **({"contact_lift": args.usage_contact_lift} if args.usage_contact_lift is not None else {})}
    if usage:
        world["usage"] = usage
    return world


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            from analysis.run.runner import run
            if args.jobs < 1:
                raise InputError("--jobs must be at least 1")
            return run(args.data, args.out, as_of=args.as_of, config_path=args.config, only=args.only,
                       parameters=args.param, jobs=args.jobs, archive=args.archive, wait=args.wait,
                       engine=args.engine)
        if args.command == "validate":
            from analysis.data.dataset import load_dataset
            ds = load_dataset(args.data, args.config, args.as_of)
            print(f"valid; as-of {ds.as_of_date}")
            for name, a in ds.accounting.items():
                print(f"  {name}: read {a['read']:,}, used {a['used']:,}, set aside {a['set_aside']:,} {a['set_aside_by_reason'] or ''}")
            return 0
        if args.command == "import":
            from analysis.tools.importer import run_import
            run_import(args.format, args.sources, args.out, args.mapping, args.write_format)
            return 0
        if args.command == "generate":
            from analysis.tools.generate import generate
            if args.clients < 1:
                raise InputError("--clients must be at least 1")
            truth = generate(args.out, clients=args.clients, seed=args.seed, fmt=args.format, profile=args.profile,
                             world=_world(args))
            print(f"wrote {args.out}: " + ", ".join(f"{k} {v:,}" for k, v in truth["rows"].items()))
            return 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
