"""common: what every layer shares, and nothing about a stage.

The typed configuration (``config`` reads and checks a profile; its sections are ``sections``, the typed
YAML reader ``typedyaml``), label and corpus facts (``facts``), the paper's stated values (``paper``), the run
folder's paths (``runfolder``), seeds, devices and threads (``runtime``), audio I/O (``audio``), atomic writes
(``io``), content digests (``digest``), file locks (``locking``), progress events (``progress``), timing
(``timing``) and a process pool (``pool``).

May import: nothing of serlib outside ``serlib.common`` (the bottom layer; ``lint-imports`` checks it).
"""
