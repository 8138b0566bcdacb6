"""features: frozen encoders and the content-keyed feature cache.

The wav2vec2 and log-Mel encoders (``encoders``), which encoder layers a run reads, resolved once into a
``LayerPlan``, and the ``FeatureKey(input, layer)`` every cache function takes (``layers``); the cache's keys
and content hashes (``keys``), its shard store and the one shard reader (``shards``), its upkeep: list,
prune, clean (``cache``); filling it (``extract``), reading one folder as a tensor (``load``), several
layers streamed from memory maps and pooled statistics (``stream``); eGeMAPS functionals (``egemaps``).

May import: ``serlib.data`` and ``serlib.common``.
"""
