"""Mutation testing of the code every conclusion rests on: ``make mutation`` (``python -m serlib.tools.mutation``).

A mutant is a copy of the code with one small change (``<`` for ``<=``, ``1`` for ``0``, a dropped argument); a
test suite that lets a mutant pass ("survive") would not notice that error either. ``TARGETS`` names the
functions under test (the statistics, the verdicts, the metrics, the probe's layer choice, the baselines, the
folds and protocols, the run key, the configuration's ranges) and, for each module, the fast test files that pin
it. ``EQUIVALENT`` lists the survivors that behave exactly like the original (with why); the score is
killed / (mutants - equivalent) per module and over all, and ``make mutation`` fails under ``THRESHOLD``.

The tool is mutmut 3 (pinned in requirements.lock): it copies ``serlib/`` and ``tests/`` into ``mutants/`` and
runs pytest there with ``mutants/`` first on ``sys.path``, so it works from a checkout whose shared venv has
serlib installed in editable mode from another folder; every mutant of a function is compiled into the copy
once and switched on by an environment variable, and each mutant runs in a process forked from one that has
already imported the tests, only the tests (of the mapped files) that executed its function in a first, traced
pass. cosmic-ray, the alternative, starts a fresh pytest (torch, pandas, sklearn imported again) per mutant.
mutmut reads ``[tool.mutmut]`` in pyproject.toml: its ``only_mutate`` and test files are ``TARGETS``'s
(``tests/test_mutation.py`` keeps them equal). It runs with one worker under ``nice`` (``MUTATION_JOBS``):
the machine's cores are shared.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
THRESHOLD = 0.90  # the bar: killed / non-equivalent mutants


@dataclass(frozen=True)
class Target:
    """The functions of one module under mutation and the test files that pin them."""

    functions: tuple[str, ...]  # function names, or "Class.method"; "*" = every function of the module
    tests: tuple[str, ...]  # fast test files (paths from the repository root)


TARGETS: dict[str, Target] = {
    "serlib/modelling/metrics.py": Target(("*",), ("tests/test_metrics.py",)),
    "serlib/modelling/baselines.py": Target(("*",), ("tests/test_baselines.py",)),
    "serlib/modelling/probe.py": Target(("choose_layer", "_split_arrays"), ("tests/test_probe.py",)),
    "serlib/modelling/systems.py": Target(("run_key", "trims_batches"), ("tests/test_runkey.py",)),
    "serlib/data/folds.py": Target(("*",), ("tests/test_folds.py",)),
    "serlib/data/protocols.py": Target(
        ("evaluation_protocols", "loco_protocols", "protocol_subsets"), ("tests/test_protocols.py",)
    ),
    "serlib/data/speakers.py": Target(
        ("subset_counts", "allocate_strata", "split_speakers", "check_fractions"), ("tests/test_speakers.py",)
    ),
    "serlib/common/config.py": Target(("_check_values", "_check_layers", "folds_problem"), ("tests/test_config.py",)),
    "serlib/common/typedyaml.py": Target(("coerce_value", "_is_kind", "_obeys"), ("tests/test_config.py",)),
    "serlib/analysis/stats.py": Target(("*",), ("tests/test_stats.py",)),
    "serlib/analysis/evaluation.py": Target(("*",), ("tests/test_evaluation.py",)),
}

# mutant name -> why it behaves exactly like the original (``mutmut show NAME`` prints its change)
_GROUPBY_ORDER = (
    "the corpora are visited in another order, but each corpus's draw is seeded by its own name and the rows "
    "are sorted by corpus_sorted at the end: the same split"
)
_FOLD_ORDER = (
    "a fold's corpora are visited in another order, but each one's validation draw is seeded by its own name and "
    "each fold's rows are sorted by corpus_sorted: the same folds"
)
_NO_ROWS = (
    "the rows' own keys (fold, speaker, split) name the columns whenever there is a row; with no speaker, "
    "pd.concat of no folds fails in the original as well"
)
_NOT_A_TYPE = (
    "the branch for a hint whose origin is not a class (typing.Any and the like): no field of a section has one "
    "(Literal, Union, Annotated and the sections are handled before)"
)
_NO_DICT = (
    "the branch for a dict[...] hint: no field a parameters file reaches through coerce_value is a dict "
    "(the systems, the one dict of Config, are read by config._build_systems and config_from_dict)"
)
_SAME_STREAM = (
    "rng.integers(n) for rng.integers(0, n): numpy reads one bound as the high one with low 0, the same draws"
)
_NEVER_NAN = (
    "a seed's metric of a resample is never NaN: every resample draws at least one group and every group has a "
    "clip (np.unique of the clips' groups), so a seed's counts have clips and a class present"
)
_NO_WARNING = (
    "the errstate guards a division that never fails: the seeds' weights sum to the number of seeds (>= 1) and no "
    "value is NaN (see _resampled_23), so nothing is invalid or divided by zero"
)
_AXIS_2D = "axis=+1 for axis=-1 on (resamples, seeds) arrays: the same axis of a 2-D array"
_CLIP_IDS = (
    "astype(None) makes the clip numbers floats; _group_counts casts the groups to str ('0.0', '1.0', '10.0', ...), "
    "which sort in the order of '0', '1', '10', ... (a '.' sorts before every digit): the same units, same order"
)
_P_CAP = "min(2.0, p) for min(1.0, p): the p-value is never above 1 (a share of patterns; scipy's binomtest caps it)"
_TIES_ANY_ORDER = (
    "the order of tied p-values: tied p-values get the same adjusted value in any order (Holm's running maximum, "
    "BH's running minimum over a tied run reach the same value); numpy reads kind='STABLE' as 'stable'"
)
_INT_CAST = (
    "to_numpy(None) for to_numpy(int) on class indices (the label or prediction column, after _as_indices): "
    "_group_counts casts labels and predictions to int, and float class indices compare equal to their ints"
)
_VALID_CONFIDENCE = (
    "the clip bound is never reached: a confidence is the largest of a clip's probabilities, above 0 (>= 1 / classes) "
    "and at most 1 (the last edge), so searchsorted(...) - 1 already lies in [0, n_bins - 1]"
)
_NO_DIVIDE_BY_ZERO = (
    "errstate(divide=...) in metrics_from_counts: no nonzero number is divided by 0 there (recall's and F1's "
    "denominators are >= 1 by construction; accuracy's total is 0 only with no clip, where tp is 0 too: 0 / 0 is "
    "'invalid', not 'divide'), so nothing is reported either way"
)
_HOLM_FLAGS = (
    "stats.holm's alpha left at its default: only its rejection flags depend on alpha, and they are discarded "
    "(significant is adjusted p < analysis.alpha, computed beside it)"
)
_CAST_DOWNSTREAM = (
    "to_numpy(None) for to_numpy(str): the column already holds strings, and its one reader (stats.group_metrics or "
    "stats.balanced_uar) casts it with astype(str) itself"
)
_ONE_SEED_STD = (
    "the seed spread taken with one seed too: pandas' std(ddof=1) of a single value is NaN, what the else branch gives"
)
_INCLUDE_GROUPS = (
    "include_groups=None or pandas' default (False) for False: _seed_scores reads only label and pred, so the seed "
    "column it may receive changes nothing"
)
_PAIRED_COLUMNS = (
    "the columns left to pandas: every row is a family row's dict with comparison and claim replaced in place, so its "
    "keys are family.columns in that order; with no row there are no columns either way"
)
_MERGE_ON = (
    "merge on the shared columns, not on='system': system is the only shared one (the paper's others are renamed "
    "paper_*)"
)
EQUIVALENT: dict[str, str] = {
    "serlib.modelling.probe.x__split_arrays__mutmut_12": "to_numpy(None) for to_numpy(int): the labels are mapped from "
    "CLASSES (the manifest holds no other), so the column is int64 either way",
    "serlib.modelling.baselines.x__duration_features__mutmut_2": "to_numpy(dtype=None) for dtype=float: np.log "
    "returns floats for integer seconds too, and a manifest's duration_s is float",
    "serlib.modelling.baselines.x_linear_baseline__mutmut_15": "max_iter=2001 for 2000: lbfgs stops at its "
    "tolerance long before 2000 iterations on these inputs, so the fit is the same",
    "serlib.modelling.baselines.x_duration_baseline__mutmut_24": "to_numpy(None) for to_numpy(int): the labels "
    "are mapped from CLASSES, so the column is int64 either way",
    "serlib.modelling.baselines.x_duration_baseline__mutmut_32": "standardise=None for standardise=False: both "
    "are false in 'if standardise'",
    "serlib.common.config.x__check_values__mutmut_6": "'>= 1e-6' for '> 1e-6' in data.split's sum: differs only "
    "for a sum exactly 1 +- 1e-6 in floating point, which no split written to a few decimals gives",
    "serlib.common.config.x__check_values__mutmut_130": "the separator joining the corpora in the "
    "one-corpus message: that message is raised only with fewer than two corpora, so nothing is ever joined",
    "serlib.common.typedyaml.x__obeys__mutmut_21": "'return False' for the final 'return True': reached only by an "
    "Annotated hint whose metadata is not a Bound, Match or Items, and serlib has none",
    "serlib.data.speakers.x_allocate_strata__mutmut_29": "floor(t - 1e-9) for floor(t + 1e-9): an exact integer "
    "target loses one, but its remainder (~1) is then the largest and the largest-remainder step gives it back; "
    "no difference in 200,000 random allocations (1-3 strata, 0-11 speakers each, every rotation)",
    "serlib.data.speakers.x_allocate_strata__mutmut_40": "'<=' for '<' in the capacity guard: a subset at its "
    "capacity never has a remainder left to claim (the targets are proportional to what remains); no difference in "
    "200,000 random allocations",
    "serlib.common.typedyaml.x__is_kind__mutmut_21": _NOT_A_TYPE,
    "serlib.common.typedyaml.x__is_kind__mutmut_22": _NOT_A_TYPE,
    "serlib.common.typedyaml.x_coerce_value__mutmut_19": "getattr(err, 'key') without a default: every ConfigError "
    "that reaches an Annotated hint comes from _bad, which sets err.key (no Annotated hint wraps a section)",
    "serlib.common.typedyaml.x_coerce_value__mutmut_125": _NO_DICT,
    "serlib.common.typedyaml.x_coerce_value__mutmut_126": _NO_DICT,
    "serlib.common.typedyaml.x_coerce_value__mutmut_127": _NO_DICT,
    "serlib.common.typedyaml.x_coerce_value__mutmut_128": _NO_DICT,
    "serlib.common.typedyaml.x_coerce_value__mutmut_129": _NO_DICT,
    "serlib.common.typedyaml.x_coerce_value__mutmut_130": _NO_DICT,
    "serlib.common.typedyaml.x_coerce_value__mutmut_131": _NO_DICT,
    "serlib.common.typedyaml.x_coerce_value__mutmut_132": _NO_DICT,
    "serlib.common.typedyaml.x_coerce_value__mutmut_133": _NO_DICT,
    "serlib.common.typedyaml.x_coerce_value__mutmut_134": _NO_DICT,
    "serlib.common.typedyaml.x_coerce_value__mutmut_66": "getattr(err, 'key') without a default: the error comes "
    "from coerce_value on the one option, and every ConfigError it raises comes from _bad, which sets err.key",
    "serlib.data.folds.x_fold_of_speakers__mutmut_8": "groupby(sort=None) for sort=False: pandas reads None as "
    "false (same group order, checked)",
    "serlib.modelling.metrics.x_classification_metrics__mutmut_41": "astype(None) for astype(float): numpy's "
    "default dtype is float64, the same",
    "serlib.modelling.metrics.x_metrics_from_counts__mutmut_33": _NO_DIVIDE_BY_ZERO,
    "serlib.modelling.metrics.x_metrics_from_counts__mutmut_35": _NO_DIVIDE_BY_ZERO,
    "serlib.modelling.metrics.x_metrics_from_counts__mutmut_59": "the stand-in denominator (2 for 1) of a class with "
    "no true clip: that class's recall is replaced by NaN (np.where(present, ..., nan)), whatever it divided by",
    "serlib.modelling.metrics.x_metrics_from_counts__mutmut_75": "max(true + pred, 2) for max(..., 1): with the class "
    "present (true >= 1) and integer counts, true + pred < 2 only for true = 1, pred = 0, so tp = 0 and 2 tp / 1 = "
    "2 tp / 2 = 0; the F1 of an absent class is replaced by NaN",
    "serlib.data.speakers.x_subset_counts__mutmut_27": "'counts[k] = 1' for 'counts[k] += 1' inside "
    "'if counts[k] == 0': both give 1",
    "serlib.data.folds.x_speaker_folds__mutmut_25": _FOLD_ORDER,
    "serlib.data.folds.x_speaker_folds__mutmut_27": _FOLD_ORDER,
    "serlib.data.folds.x_speaker_folds__mutmut_30": _FOLD_ORDER,
    "serlib.data.folds.x_speaker_folds__mutmut_111": _NO_ROWS,
    "serlib.data.folds.x_speaker_folds__mutmut_113": _NO_ROWS,
    "serlib.data.speakers.x_split_speakers__mutmut_6": _GROUPBY_ORDER,
    "serlib.data.speakers.x_split_speakers__mutmut_8": _GROUPBY_ORDER,
    "serlib.data.speakers.x_split_speakers__mutmut_11": _GROUPBY_ORDER,
    "serlib.data.speakers.x_check_fractions__mutmut_15": "'>= 1e-6' for '> 1e-6': differs only for fractions "
    "whose sum is exactly 1 +- 1e-6 in floating point; none of a profile's (written to a few decimals) is",
    "serlib.analysis.stats.x_resample_weights__mutmut_7": _SAME_STREAM,
    "serlib.analysis.stats.x__seed_weights__mutmut_9": _SAME_STREAM,
    "serlib.analysis.stats.x__resampled__mutmut_10": "upper-case einsum subscripts: numpy accepts either case, the "
    "same contraction",
    "serlib.analysis.stats.x__resampled__mutmut_23": _NEVER_NAN,
    "serlib.analysis.stats.x__resampled__mutmut_30": _NEVER_NAN,
    "serlib.analysis.stats.x__resampled__mutmut_31": _NO_WARNING,
    "serlib.analysis.stats.x__resampled__mutmut_32": _NO_WARNING,
    "serlib.analysis.stats.x__resampled__mutmut_33": _NO_WARNING,
    "serlib.analysis.stats.x__resampled__mutmut_34": _NO_WARNING,
    "serlib.analysis.stats.x__resampled__mutmut_46": _AXIS_2D,
    "serlib.analysis.stats.x__resampled__mutmut_49": _AXIS_2D,
    "serlib.analysis.stats.x_speaker_bootstrap__mutmut_12": _CLIP_IDS,
    "serlib.analysis.stats.x_stratum_draws__mutmut_10": _CLIP_IDS,
    "serlib.analysis.stats.x_paired_bootstrap__mutmut_12": _CLIP_IDS,
    "serlib.analysis.stats.x_mcnemar_exact__mutmut_22": "p = 2.0 for 1.0 when the two never disagree: the returned p "
    "is min(1.0, p)",
    "serlib.analysis.stats.x_mcnemar_exact__mutmut_23": "p = 1 when b == c instead of b + c == 0: binomtest(k, 2k, "
    "0.5) is exactly 1 (scipy returns 1 when k = n p), so the p-value is the same",
    "serlib.analysis.stats.x_mcnemar_exact__mutmut_32": "binomtest without p=0.5: 0.5 is its default",
    "serlib.analysis.stats.x_mcnemar_exact__mutmut_49": _P_CAP,
    "serlib.analysis.stats.x_holm__mutmut_4": "asarray without dtype=float: the callers pass float arrays; ints, bools "
    "and float32 (int64 x float32 is float64 in numpy) give the same adjusted floats",
    "serlib.analysis.stats.x_holm__mutmut_6": "asarray without dtype=float: the callers pass float arrays; ints, bools "
    "and float32 (int64 x float32 is float64 in numpy) give the same adjusted floats",
    "serlib.analysis.stats.x_holm__mutmut_9": _TIES_ANY_ORDER,
    "serlib.analysis.stats.x_holm__mutmut_11": _TIES_ANY_ORDER,
    "serlib.analysis.stats.x_holm__mutmut_13": _TIES_ANY_ORDER,
    "serlib.analysis.stats.x_benjamini_hochberg__mutmut_10": _TIES_ANY_ORDER,
    "serlib.analysis.stats.x_benjamini_hochberg__mutmut_12": _TIES_ANY_ORDER,
    "serlib.analysis.stats.x_benjamini_hochberg__mutmut_14": _TIES_ANY_ORDER,
    "serlib.analysis.stats.x_benjamini_hochberg__mutmut_30": "min(2.0, ...) for min(1.0, ...): the running minimum "
    "from the largest p (scaled by m / m = 1) never exceeds the largest p-value, at most 1",
    "serlib.analysis.stats.x_speaker_signflip_test__mutmut_90": _P_CAP,
    "serlib.analysis.stats.x_reliability_table__mutmut_27": _VALID_CONFIDENCE,
    "serlib.analysis.stats.x_reliability_table__mutmut_28": _VALID_CONFIDENCE,
    "serlib.analysis.stats.x_reliability_table__mutmut_43": _VALID_CONFIDENCE,
    "serlib.analysis.stats.x_reliability_table__mutmut_38": "searchsorted without side='left': 'left' is its default",
    "serlib.analysis.stats.x_expected_calibration_error__mutmut_12": "clips >= 0 for clips > 0 keeps the empty bins: "
    "their NaN term is skipped by pandas' sum (skipna) and they add 0 clips to the denominator",
    "serlib.analysis.stats.x_compare_predictions__mutmut_14": "the seed number given to a table without a seed column "
    "(1 for 0): it only names the one column of the wide table, whose values are the same",
    "serlib.analysis.stats.x_compare_predictions__mutmut_53": _INT_CAST,
    "serlib.analysis.stats.x_compare_predictions__mutmut_61": _INT_CAST,
    "serlib.analysis.stats.x_compare_predictions__mutmut_68": _INT_CAST,
    "serlib.analysis.stats.x_compare_predictions__mutmut_69": _INT_CAST,
    # serlib/analysis/evaluation.py
    "serlib.analysis.evaluation.x_accuracy_by__mutmut_9": "groupby(column) without sort=True: pandas' default is "
    "sort=True",
    "serlib.analysis.evaluation.x_accuracy_by__mutmut_23": _INCLUDE_GROUPS,
    "serlib.analysis.evaluation.x_accuracy_by__mutmut_25": _INCLUDE_GROUPS,
    "serlib.analysis.evaluation.x_accuracy_by__mutmut_85": _ONE_SEED_STD,
    "serlib.analysis.evaluation.x_accuracy_by__mutmut_90": _ONE_SEED_STD,
    "serlib.analysis.evaluation.x_accuracy_by__mutmut_95": _ONE_SEED_STD,
    "serlib.analysis.evaluation.x_accuracy_by__mutmut_100": _ONE_SEED_STD,
    "serlib.analysis.evaluation.x_beyond_table__mutmut_123": _HOLM_FLAGS,
    "serlib.analysis.evaluation.x_beyond_table__mutmut_147": "pd.concat with an empty frame (no rows, no columns) "
    "when no row is alone: the rows, columns, dtypes and RangeIndex stay as they are (checked)",
    "serlib.analysis.evaluation.x_calibration__mutmut_13": "to_numpy(None) for to_numpy(int): read_predictions "
    "rejects a label that is not a class, so the mapped column is int64 either way",
    "serlib.analysis.evaluation.x_claims_table__mutmut_149": _HOLM_FLAGS,
    "serlib.analysis.evaluation.x_epoch_cost__mutmut_17": "groupby(sort=None) for sort=False: pandas reads None as "
    "false (the same results.csv order, checked by the test)",
    "serlib.analysis.evaluation.x_fold_values__mutmut_12": _CAST_DOWNSTREAM,
    "serlib.analysis.evaluation.x_score__mutmut_16": _CAST_DOWNSTREAM,
    "serlib.analysis.evaluation.x_paired_table__mutmut_52": _PAIRED_COLUMNS,
    "serlib.analysis.evaluation.x_paired_table__mutmut_54": _PAIRED_COLUMNS,
    "serlib.analysis.evaluation.x_paired_table__mutmut_55": _PAIRED_COLUMNS,
    "serlib.analysis.evaluation.x_score_row__mutmut_44": "table.iloc[1] for iloc[0]: unit, n_speakers, n_clips, "
    "n_seeds and n_folds are the same on every metric row of score's table",
    "serlib.analysis.evaluation.x_table5_scores__mutmut_43": _MERGE_ON,
    "serlib.analysis.evaluation.x_table5_scores__mutmut_46": _MERGE_ON,
    # serlib/modelling/baselines.py: corpus_probe, length_features, duration_nonlinear_baseline
    "serlib.modelling.baselines.x_corpus_probe__mutmut_21": "2.0 for 1.0 as the scale of a feature constant in "
    "training: it is 0 on every training row, so lbfgs (starting at 0, its gradient 0) leaves its weight exactly 0 "
    "and its validation or test values, however scaled, add nothing",
    "serlib.modelling.baselines.x_corpus_probe__mutmut_38": "max_iter=2001 for 2000: lbfgs stops at its tolerance "
    "long before 2000 iterations on standardised features, so the fit is the same",
    "serlib.modelling.baselines.x_length_features__mutmut_2": "to_numpy(dtype=None) for dtype=float: the division "
    "by window_s and np.log return floats for integer seconds too, and a manifest's duration_s is float",
    "serlib.modelling.baselines.x_duration_nonlinear_baseline__mutmut_27": "to_numpy(None) for to_numpy(int): the "
    "labels are mapped from CLASSES, so the column is int64 either way",
    "serlib.modelling.baselines.x_duration_nonlinear_baseline__mutmut_38": "GradientBoostingClassifier without "
    "n_estimators=100: 100 is its default",
    "serlib.modelling.baselines.x_duration_nonlinear_baseline__mutmut_40": "GradientBoostingClassifier without "
    "learning_rate=0.1: 0.1 is its default",
}

KILLED = {1, 3, 24, -24, 36, 152, 255, 37, -11, -9}  # mutmut's exit codes: test failure, timeout, crash
SURVIVED = {0, 5, 33, 34, 35}  # survived, no test ran it ("no tests"), skipped, suspicious


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def patterns(target_path: str, target: Target) -> list[str]:
    """mutmut's names of the target's mutants, as fnmatch patterns (``serlib.data.folds.x_fold_of_speakers__mutmut_3``;
    a method ``Class.method`` is ``xǁClassǁmethod``)."""
    module = module_name(target_path)
    out = []
    for function in target.functions:
        if "." in function:
            cls, method = function.split(".", 1)
            out.append(f"{module}.x\u01c1{cls}\u01c1{method}__mutmut_*")
        else:
            out.append(f"{module}.x_{function}__mutmut_*")
            if function == "*":  # methods too
                out.append(f"{module}.x\u01c1*__mutmut_*")
    return out


def in_scope(name: str, targets: dict[str, Target] = TARGETS) -> Optional[str]:
    """The target module a mutant belongs to, or None."""
    for path, target in targets.items():
        if any(fnmatch.fnmatchcase(name, p) for p in patterns(path, target)):
            return path
    return None


def read_results(mutants: Path) -> dict[str, Optional[int]]:
    """Every mutant's exit code from mutmut's ``mutants/**/*.py.meta`` files (None: not run yet)."""
    results = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        results.update(json.loads(meta.read_text())["exit_code_by_key"])
    return results


def score(results: dict[str, Optional[int]], targets: dict[str, Target] = TARGETS, equivalent=None) -> list[dict]:
    """One row per target module: mutants, killed, equivalent survivors, other survivors, not run, score.

    The score is killed / (mutants - equivalent); a mutant no test executes counts as a survivor.
    """
    equivalent = EQUIVALENT if equivalent is None else equivalent
    rows = {path: {"module": path, "mutants": 0, "killed": 0, "equivalent": 0, "survived": [], "not_run": 0}
            for path in targets}  # fmt: skip
    for name, code in sorted(results.items()):
        path = in_scope(name, targets)
        if path is None:
            continue
        row = rows[path]
        row["mutants"] += 1
        if code is None:
            row["not_run"] += 1
        elif code in KILLED:
            row["killed"] += 1
        elif name in equivalent:
            row["equivalent"] += 1
        else:
            row["survived"].append(name)
    for row in rows.values():
        counted = row["mutants"] - row["equivalent"] - row["not_run"]
        row["score"] = row["killed"] / counted if counted else None
    return list(rows.values())


def total(rows: list[dict]) -> dict:
    """The rows summed: the overall score."""
    out = {k: sum(r[k] for r in rows) for k in ("mutants", "killed", "equivalent", "not_run")}
    out["survived"] = [n for r in rows for n in r["survived"]]
    counted = out["mutants"] - out["equivalent"] - out["not_run"]
    out["score"] = out["killed"] / counted if counted else None
    return out


def render(rows: list[dict]) -> str:
    """The score table as text, survivors listed under it."""
    lines = [f"{'module':34} {'mutants':>7} {'killed':>7} {'equiv':>6} {'surv':>5} {'not run':>7} {'score':>7}"]
    for row in [*rows, {"module": "all", **total(rows)}]:
        pct = "-" if row["score"] is None else f"{100 * row['score']:.1f}%"
        lines.append(
            f"{row['module']:34} {row['mutants']:7d} {row['killed']:7d} {row['equivalent']:6d} "
            f"{len(row['survived']):5d} {row['not_run']:7d} {pct:>7}"
        )
    survivors = total(rows)["survived"]
    if survivors:
        lines += ["", "surviving mutants (mutmut show NAME):", *(f"  {n}" for n in survivors)]
    return "\n".join(lines)


def unkilled_names(results: dict[str, Optional[int]], targets: dict[str, Target]) -> list[str]:
    """The target mutants a run has not killed: survivors (equivalent ones included) and those not run yet."""
    return sorted(n for n, code in results.items() if in_scope(n, targets) and code not in KILLED)


def markdown(rows: list[dict], equivalent: Optional[dict] = None) -> str:
    """The score table and the equivalent survivors as Markdown (the README's section)."""
    equivalent = EQUIVALENT if equivalent is None else equivalent
    lines = [
        "| module | mutants | killed | equivalent | survived | not run | score |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in [*rows, {"module": "all", **total(rows)}]:
        pct = "-" if row["score"] is None else f"{100 * row['score']:.1f} %"
        lines.append(
            f"| `{row['module']}` | {row['mutants']} | {row['killed']} | {row['equivalent']} | "
            f"{len(row['survived'])} | {row['not_run']} | {pct} |"
        )
    lines.append("")
    lines += [f"- `{name}`: {why}" for name, why in sorted(equivalent.items())]
    return "\n".join(lines)


def run(modules: list[str], jobs: int, unkilled: bool = False) -> int:
    """``mutmut run`` over the target modules' functions (all, or those of ``modules``); its exit status.

    ``unkilled``: only the mutants the last run did not kill (survivors and those not run), after adding tests.
    """
    beside = Path(sys.executable).with_name("mutmut")  # the venv's own, even when its bin/ is not on PATH
    mutmut = str(beside) if beside.is_file() else shutil.which("mutmut") or "mutmut"
    chosen = {p: t for p, t in TARGETS.items() if not modules or p in modules or module_name(p) in modules}
    unknown = set(modules) - set(chosen) - {module_name(p) for p in chosen}
    if unknown:
        raise SystemExit(f"mutation: unknown module(s) {', '.join(sorted(unknown))}; choose from {', '.join(TARGETS)}")
    names = [p for path, target in chosen.items() for p in patterns(path, target)]
    if unkilled:
        names = unkilled_names(read_results(ROOT / "mutants"), chosen)
        if not names:
            return 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # mutmut puts mutants/ first itself
    return subprocess.run([mutmut, "run", "--max-children", str(jobs), *names], cwd=ROOT, env=env).returncode


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serlib.tools.mutation", description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="target modules (default: all of TARGETS)")
    parser.add_argument("--report-only", action="store_true", help="score the last run, run nothing")
    parser.add_argument("--unkilled", action="store_true", help="run only what the last run did not kill")
    parser.add_argument("--markdown", action="store_true", help="print the score as Markdown (for the README)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "1")))
    args = parser.parse_args(argv)
    started = time.monotonic()
    if not args.report_only:
        code = run(args.modules, args.jobs, args.unkilled)
        if code not in (0, None):
            print(f"mutation: mutmut run exited with {code}", file=sys.stderr)
            return code
    rows = score(read_results(ROOT / "mutants"))
    if args.modules:
        rows = [r for r in rows if r["module"] in args.modules or module_name(r["module"]) in args.modules]
    print(markdown(rows) if args.markdown else render(rows))
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    failing = below_threshold(rows)
    if failing:
        print(f"mutation: below {THRESHOLD:.0%} of the non-equivalent mutants: {', '.join(failing)}", file=sys.stderr)
        return 1
    return 0


def below_threshold(rows: list[dict]) -> list[str]:
    """The modules (and "all") whose score is under ``THRESHOLD``, or that have no score (nothing measured): each
    module must pass on its own, not only the total."""
    checked = [*rows, {"module": "all", **total(rows)}]
    return [r["module"] for r in checked if r["score"] is None or r["score"] < THRESHOLD]


def configured() -> dict:
    """pyproject.toml's ``[tool.mutmut]`` (what mutmut reads)."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]


if __name__ == "__main__":
    sys.exit(main())
