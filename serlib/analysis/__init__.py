"""Analysis: what a run's predictions, features and annotations say, as tables and numbers (never figures).

Holds ``evaluation`` (the one prediction loader, scores with speaker-bootstrap intervals, paired tests, the
baselines and leave-one-corpus-out rows, calibration, the pooled confusion and the scores per group), ``stats``,
``results`` (Tables 4, 6, 8), ``confusion`` (Table 7, recall, confused pairs), ``prosody``, ``listening`` (the
clips drawn for listening, tag summaries, agreement, pitch) and ``annotations`` (the listeners' annotations
file and its store), ``datatables``, ``featurestats``, ``layerstats``, ``training`` and ``notes`` (the sentences
beside the tables). It reads what the stages wrote and never trains (``serlib.pipeline`` does).

May import ``modelling``, ``features``, ``data`` and ``common``; ``pipeline``, ``inference``, ``report``,
``sweep`` and ``tools`` import it (``lint-imports``).
"""
