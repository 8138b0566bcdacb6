"""Inference: a trained system used on any audio, and the forms it ships in.

Holds ``predict`` (``Predictor``: a run folder's or a bundle's model on files, folders, path lists or arrays;
``serlib predict``), ``audiofiles`` (which files a prediction scores), ``bundleformat`` (what a bundle is on
disk) and ``bundle`` / ``modelcard`` (``serlib export``: the bundle folder and its README), ``onnxform`` (the
head in ONNX and parity), ``audiograph`` (the whole model from audio to probabilities as one ONNX graph),
``standalone`` (the torch-free ``predict.py`` a bundle ships), ``quantise`` (BatchNorm folding, int8) and
``deploy`` (what each form costs and changes: Table S25).

May import ``analysis`` and the layers below it (``modelling``, ``features``, ``data``, ``common``); ``report``
and ``tools`` (the CLI, the benchmarks) import it, nothing below it does (``lint-imports``).
"""
