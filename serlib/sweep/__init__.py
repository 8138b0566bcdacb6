"""Batch runs over parameter variants (``serlib sweep``): the sweep file and its variants (``spec``), whether a
trained run is whole (``runs``), the tasks a variant is made of (``tasks``), running them here or on a Ray cluster
(``execute``), and the sweep report (``report``).

This layer sits above ``report``: each variant is a normal run executed by the runner's notebooks. May import
``report``, ``pipeline``, ``inference``, ``analysis`` and the layers below them; only ``tools`` imports it
(``lint-imports``)."""
