"""serlib: lightweight speech-emotion recognition, as a reproducible experiment report.

Layers, each importing only those below it (``tests/test_layers.py`` and ``lint-imports`` hold it):

    tools      the command line, ``serlib bench`` and its measuring primitives, the sweep benchmark
    sweep      ``serlib sweep``: variants of a profile run here or on a Ray cluster, one comparison report
    report     display helpers, figures, the notebook runner, the HTML export, provenance
    pipeline   make sure the manifest, the feature cache and the trained runs exist, in order
    analysis   result tables, confusion, prosody, listening, deployment forms, data tables
    modelling  Tri-Aug, the classifiers, the training step and engine, the systems, metrics
    features   frozen encoders and the content-keyed feature cache
    data       corpus readers, MCULP and the speaker split, the synthetic demo corpus
    common     configuration, facts, paper values, run folder, runtime, audio I/O, atomic writes
"""
__version__ = "0.1.0"
