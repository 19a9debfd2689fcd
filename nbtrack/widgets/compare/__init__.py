"""``nbtrack.compare(...)``: the run-comparison panel. A view only: the runs come from
``nbtrack.query.table`` (cached, refreshed incrementally), the diffs, groups and configs from
``nbtrack.query.compare``; nothing here calls MLflow.

The runs table is ipydatagrid's StreamingDataGrid: a canvas grid that asks the kernel for the rows
in view only, so a new filter, sort or page of runs costs the same with 100 runs or 100,000 (the
kernel sends the schema and a row count; ~10 ms for 10,000 runs, where a plain DataGrid sends all
the rows again, ~1.4 MB for 10,000 x 30). It needs a live kernel, so the panel's output also
carries a static HTML picture (the top rows as sorted, and the selection's diff) for saved
notebooks, nbconvert and papermill.

Every value is drawn as text: the grid paints on a canvas, and every HTML string built here or in
``query.compare`` is escaped.
"""

from nbtrack.errors import MissingExtra

try:
    import anywidget  # noqa: F401
    import ipywidgets  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import traitlets  # noqa: F401
    from ipydatagrid import StreamingDataGrid  # noqa: F401
except ImportError as e:  # the widgets extra is optional
    raise MissingExtra("the comparison panel", "widgets") from e

from nbtrack.widgets.compare.actions import CopyButton
from nbtrack.widgets.compare.panel import ComparePanel, show
from nbtrack.widgets.compare.table import RunsGrid

__all__ = ["ComparePanel", "CopyButton", "RunsGrid", "show"]
