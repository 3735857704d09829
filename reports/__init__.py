"""sparsa.reports: design-space sweeps, their columnar results, plots and HTML reports.

* :mod:`~sparsa.reports.spec` — the sweep YAML schema and its expansion into design points;
* :mod:`~sparsa.reports.store` — the Parquet results store (incremental, resumable);
* :mod:`~sparsa.reports.sweep` — the sweep engine (process pool or Dask);
* :mod:`~sparsa.reports.plots` — plot functions ``data -> (fig, ax)``;
* :mod:`~sparsa.reports.html` — the self-contained HTML report.
"""

from .errors import ReportError

__all__ = ["ReportError"]
