"""Run a notebook's own code cells in this process, as its kernel would, without a kernel: the
package functions each notebook calls, in the notebook's order, with every displayed table
rendered to HTML and every figure drawn to PNG (where rendering errors show). Far cheaper than
papermill, so property-based tests can run every report on many small data sets."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.run.reports import Report  # noqa: E402

__all__ = ["run_code"]


def _render(obj: Any) -> None:
    """What the HTML export does with a displayed object: its HTML (a Styler or a frame)."""
    if hasattr(obj, "to_html"):
        obj.to_html()
    elif hasattr(obj, "_repr_html_"):
        obj._repr_html_()
    elif hasattr(obj, "_repr_markdown_"):
        obj._repr_markdown_()


def _draw_figures() -> int:
    numbers = plt.get_fignums()
    for n in numbers:
        plt.figure(n).savefig(io.BytesIO(), format="png")
    plt.close("all")
    return len(numbers)


def run_code(report: Report, parameters: dict[str, Any]) -> dict:
    """Execute the report's code cells with ``parameters`` injected after its parameters cell
    (as papermill does); returns the final namespace. Raises what a cell raises."""
    nb = json.loads(Path(report.notebook).read_text())
    namespace: dict[str, Any] = {"__name__": f"notebook_{report.name}"}
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        lines = [line.replace("from IPython.display import HTML, display", "from IPython.display import HTML")
                 for line in "".join(cell["source"]).splitlines()
                 if not line.lstrip().startswith("%") and line.strip() != "from IPython.display import display"]
        namespace["display"] = _render
        exec(compile("\n".join(lines), f"<{report.name} cell {index}>", "exec"), namespace)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            namespace.update(parameters)
        _draw_figures()
    return namespace
