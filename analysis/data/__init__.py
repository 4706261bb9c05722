"""Data in: the run's config, the input contract and its validation, where tables live (a
directory, a DuckDB file, PostgreSQL), the validated dataset and its snapshot, the query engine
the formulas run on, and the data-quality views."""
