"""Running the suite: the command line, the report registry, the runner (papermill + nbconvert),
safe publishing and metrics.json."""
