"""modelling: the networks, their training, and the systems of a run.

The split data a system trains on (``inputs``: features split by a protocol), Tri-Aug (``augment``), the
classifiers (``models``), where features live while training (``placement``), the training step and engine
(``train``: ``fit(model, data, settings)``), the configured systems x seeds and learning-rate selection
(``systems``), metrics (``metrics``), the linear baselines (``baselines``), the per-layer probe (``probe``);
and, until the inference layer takes them, prediction on new audio (``predict``, ``onnxform``,
``audiograph``, ``standalone``).

May import: ``serlib.features``, ``serlib.data`` and ``serlib.common``.
"""
