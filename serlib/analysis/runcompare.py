"""The same systems in two run folders (``serlib compare``): scored on the clips both runs scored, with the
speaker-level test and intervals of ``serlib.analysis.stats``."""

from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd

from serlib.analysis import stats
from serlib.analysis.evaluation import METRIC_NAMES
from serlib.analysis.predictions import run_predictions
from serlib.common.runfolder import RunFolder
from serlib.modelling.systems import load_results


def compare_runs(
    folder_a: RunFolder,
    folder_b: RunFolder,
    systems: Optional[Sequence[str]] = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The same systems in two runs (e.g. another encoder or parameter), scored on the clips both runs scored.

    One row per system and metric: run A's and run B's value, the difference B - A with its paired
    speaker-bootstrap interval (seed means), the speaker-level sign-flip p (``speaker_p``), the exact McNemar p on
    the soft vote over seeds (clip-level, secondary), the clips compared, and Holm's adjustment of the speaker
    test in accuracy over the systems (``p_holm``, one per system).

    Raises:
        ValueError: no system is trained in both runs, or they share no test clip.
    """
    in_a = set(load_results(folder_a)["system"])
    in_b = set(load_results(folder_b)["system"])
    names = list(systems) if systems else [s for s in load_results(folder_a)["system"].drop_duplicates() if s in in_b]
    missing = [s for s in names if s not in in_a or s not in in_b]
    if missing or not names:
        raise ValueError(
            f"system(s) {', '.join(missing) or '(none)'} not trained in both runs "
            f"({folder_a.root}: {', '.join(sorted(in_a))}; {folder_b.root}: {', '.join(sorted(in_b))})"
        )
    rows = []
    for name in names:
        table, info = stats.compare_predictions(
            run_predictions(folder_a, name), run_predictions(folder_b, name), n_resamples, seed
        )
        for r in table.itertuples():
            rows.append(
                {
                    "system": name,
                    "metric": METRIC_NAMES[r.metric],
                    "run_a": r.a,
                    "run_b": r.b,
                    "delta_pp": 100 * r.delta,
                    "delta_lo_pp": 100 * r.lo,
                    "delta_hi_pp": 100 * r.hi,
                    "unit": r.unit,
                    "speaker_p": r.speaker_p,
                    "mcnemar_p": r.mcnemar_p,
                    "clips": info["clips"],
                    "only_a": info["only_a"],
                    "only_b": info["only_b"],
                }
            )
    out = pd.DataFrame(rows)
    first = out.drop_duplicates("system")
    adjusted, _ = stats.holm(first["speaker_p"].to_numpy())
    out["p_holm"] = out["system"].map(dict(zip(first["system"], adjusted)))
    return out
