"""Putting results on a page: values, tables and labels (``page``), figures (``plots``), KPI
tiles and the run history (``kpi``), the retention reports' words (``retention_text``)."""
