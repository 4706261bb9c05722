"""Tools around the suite: importers of real exports, the synthetic data generator and the page
checker (headless Chromium screenshots)."""
