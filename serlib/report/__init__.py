"""Report: presentation. Every figure, the notebooks' display helpers, the listening station and its static
tables, and the report itself.

Holds ``runner`` (papermill, the heartbeat, the export), ``html_export`` (the offline HTML), ``keyresults`` (the
box the report opens on), ``tables`` (the one table formatter), ``display`` (show a table, a figure, a note),
``provenance`` (run identity), ``plots``, ``dataplots``, ``featureplots`` and ``confusionplots`` (the figures:
they draw and return, never save), ``listening`` (Tables S50 and S51, the clip figure) and ``station`` (the
ipywidgets listening station), ``compare`` (two runs side by side).

May import ``pipeline``, ``inference``, ``analysis`` and the layers below them; ``sweep`` and ``tools`` import
it (``lint-imports``).
"""
