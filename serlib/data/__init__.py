"""data: from corpus folders to the run's manifest, and which clips train, validate and test.

Corpus readers (``corpora``), the audio check (``audiocheck``), MCULP's labels and the manifest set it
writes (``mculp``), the speaker split (``speakers``) and speaker folds (``folds``), the evaluation protocols
and the one answer to "which subset is each clip in under protocol P" (``protocols``), the manifest stage
(``stage``), and the synthetic demo corpus (``democorpus``, ``synth``, ``lengths``).

May import: ``serlib.common`` only.
"""
