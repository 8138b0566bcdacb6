"""serlib: lightweight speech-emotion recognition, as a reproducible experiment report.

Layers, each importing only those below it (``tests/test_layers.py`` and ``lint-imports`` hold it):

    tools      the command line, ``serlib bench`` and its measuring primitives, the sweep benchmark
    sweep      ``serlib sweep``: variants of a profile run here or on a Ray cluster, one comparison report
    report     presentation: display helpers, every figure, the listening station, the runner, the HTML export
    inference  predict on new audio, the model bundle and its card, ONNX, quantisation (beside pipeline)
    pipeline   make sure the manifest, the feature cache, the trained runs and baselines exist, in order
    analysis   the one prediction loader, scores and result tables, confusion, prosody, listening clips, data tables
    modelling  Tri-Aug, the classifiers, the training step and engine, the systems, the baselines, metrics
    features   frozen encoders and the content-keyed feature cache
    data       corpus readers, MCULP and the speaker split, the synthetic demo corpus
    common     configuration, facts, paper values, run folder, runtime, audio I/O, atomic writes
"""

__version__ = "0.1.0"
