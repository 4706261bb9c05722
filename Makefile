# Support-driven retention analytics. `make help` lists the targets.
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
PY      := $(VENV)/bin/python
KERNEL  := support-retention
STAMP   := $(VENV)/.installed
SAMPLE  := data/sample
CLIENTS ?= 20000
SEED    ?= 42

.DEFAULT_GOAL := help
.PHONY: help setup spark data reports screenshots test test-backends bench lab clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (support-retention)"
	touch $(STAMP)

setup: $(STAMP) ## create .venv, install pinned packages, register the Jupyter kernel

$(VENV)/.spark: requirements-spark.txt | $(STAMP)
	$(PY) -m pip install --quiet -r requirements-spark.txt
	touch $@

spark: $(VENV)/.spark ## add the Spark extra (pyspark; needs Java 17+) for --engine spark and its tests

$(SAMPLE)/truth.json: analysis/tools/generate.py | $(STAMP)
	$(PY) -m analysis generate --out $(SAMPLE) --clients $(CLIENTS) --seed $(SEED)

data: $(STAMP) ## (re)generate the sample data in data/sample (CLIENTS=20000 SEED=42)
	$(PY) -m analysis generate --out $(SAMPLE) --clients $(CLIENTS) --seed $(SEED)

reports: $(STAMP) $(SAMPLE)/truth.json ## run every notebook on the sample -> reports/latest (+ reports/archive/<as-of>)
	$(PY) -m analysis run --data $(SAMPLE) --out reports/latest --archive reports/archive

screenshots: $(STAMP) ## check every page of reports/latest in headless Chromium and write full-page PNGs to reports/screenshots
	@test -f reports/latest/index.html || $(MAKE) reports
	$(PY) -m analysis.tools.pages reports/latest --out reports/screenshots

test: $(STAMP) ## run the test suite, every engine expression on DuckDB (make test-backends: PostgreSQL and Spark)
	$(PY) -m pytest -q -m "not postgres and not spark" -n 2 --dist loadfile

test-backends: $(STAMP) $(VENV)/.spark ## the PostgreSQL and Spark halves of the suite (a private server from Debian's postgresql; Java 17+)
	$(PY) -m pytest -q -m "postgres or spark"

BENCH_SIZES  ?= 100000 1000000
BENCH_STAGES ?= load,metrics,notebooks,run

bench: $(STAMP) ## time every stage at 100k and 1M clients vs DuckDB (BENCH_SIZES, BENCH_STAGES); see docs/benchmarks.md
	$(PY) benchmarks/bench.py --sizes $(BENCH_SIZES) --stages $(BENCH_STAGES)

lab: $(STAMP) ## open JupyterLab on the same venv and kernel
	$(VENV)/bin/jupyter lab notebooks

clean: ## remove the venv, generated sample and reports (keeps reports/archive)
	rm -rf $(VENV) $(SAMPLE) reports/latest
