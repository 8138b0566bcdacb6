"""Tools: the ``serlib`` command line and the machine-level measurements.

Holds ``cli`` (every sub-command, its shared options from parent parsers, each dispatched to its handler),
``bench`` / ``benchtable`` / ``measure`` (``serlib bench``: what is timed, its table and report, the measuring
primitives), ``bundlebench`` (a bundle's audio-to-label latency), ``doctor`` (the machine self-check),
``sweepbench`` (the sweep benchmark), ``clibench`` (``serlib bench --cli``: how fast usage errors are
answered) and ``nbstrip`` (the notebooks' output filter).

The top layer: may import every layer below it; nothing in serlib imports it (``lint-imports``). ``cli`` alone
imports serlib modules inside its functions, so that ``serlib --help`` and its usage errors stay free of torch.
"""
