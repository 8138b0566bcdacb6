"""``make mutation``'s bookkeeping (``serlib.tools.mutation``): which mutants count, and the score."""

import json

from serlib.tools import mutation
from serlib.tools.mutation import Target, in_scope, read_results, score, total


def test_pyproject_mutates_and_tests_what_the_targets_name():
    config = mutation.configured()
    assert config["only_mutate"] == list(mutation.TARGETS)
    wanted = list(dict.fromkeys(t for target in mutation.TARGETS.values() for t in target.tests))
    assert config["pytest_add_cli_args_test_selection"] == wanted
    for path in mutation.TARGETS:
        assert (mutation.ROOT / path).is_file(), path
    for test in wanted:
        assert (mutation.ROOT / test).is_file(), test


def test_only_the_named_functions_of_a_module_are_in_scope():
    targets = {"serlib/a.py": Target(("f", "K.m"), ("t.py",)), "serlib/b.py": Target(("*",), ("t.py",))}
    assert in_scope("serlib.a.x_f__mutmut_3", targets) == "serlib/a.py"
    assert in_scope("serlib.a.x_fg__mutmut_3", targets) is None
    assert in_scope("serlib.a.x_g__mutmut_1", targets) is None
    assert in_scope("serlib.a.x\u01c1K\u01c1m__mutmut_2", targets) == "serlib/a.py"
    assert in_scope("serlib.b.x_anything__mutmut_9", targets) == "serlib/b.py"
    assert in_scope("serlib.b.x\u01c1K\u01c1m__mutmut_1", targets) == "serlib/b.py"
    assert in_scope("serlib.c.x_f__mutmut_1", targets) is None


def test_the_score_counts_equivalent_survivors_out_and_untested_mutants_as_survivors(tmp_path):
    meta = tmp_path / "serlib" / "a.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {
        "serlib.a.x_f__mutmut_1": 1,  # killed
        "serlib.a.x_f__mutmut_2": 0,  # survived, equivalent
        "serlib.a.x_f__mutmut_3": 0,  # survived
        "serlib.a.x_f__mutmut_4": 33,  # no test ran it
        "serlib.a.x_f__mutmut_5": 36,  # timeout: killed
        "serlib.a.x_f__mutmut_6": None,  # not run
        "serlib.a.x_g__mutmut_1": 0,  # out of scope
    }
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    targets = {"serlib/a.py": Target(("f",), ("t.py",))}
    rows = score(read_results(tmp_path), targets, {"serlib.a.x_f__mutmut_2": "same behaviour"})
    (row,) = rows
    assert (row["mutants"], row["killed"], row["equivalent"], row["not_run"]) == (6, 2, 1, 1)
    assert row["survived"] == ["serlib.a.x_f__mutmut_3", "serlib.a.x_f__mutmut_4"]
    assert row["score"] == 2 / 4 == total(rows)["score"]
    assert "50.0%" in mutation.render(rows)


def test_every_equivalent_survivor_is_in_scope_and_says_why():
    for name, why in mutation.EQUIVALENT.items():
        assert in_scope(name) is not None, name
        assert len(why) > 10, name


def test_a_rerun_after_new_tests_takes_only_what_was_not_killed():
    results = {"serlib.a.x_f__mutmut_1": 1, "serlib.a.x_f__mutmut_2": 0, "serlib.a.x_f__mutmut_3": None,
               "serlib.a.x_f__mutmut_4": 33, "serlib.a.x_g__mutmut_1": 0}  # fmt: skip
    targets = {"serlib/a.py": Target(("f",), ("t.py",))}
    assert mutation.unkilled_names(results, targets) == [
        "serlib.a.x_f__mutmut_2",
        "serlib.a.x_f__mutmut_3",
        "serlib.a.x_f__mutmut_4",
    ]


def test_the_markdown_table_carries_each_module_and_every_equivalent_reason():
    targets = {"serlib/a.py": Target(("f",), ("t.py",))}
    codes = {"serlib.a.x_f__mutmut_1": 1, "serlib.a.x_f__mutmut_2": 0, "serlib.a.x_f__mutmut_3": 0}
    equivalent = {"serlib.a.x_f__mutmut_2": "same behaviour because of X"}
    text = mutation.markdown(score(codes, targets, equivalent), equivalent)
    assert "| `serlib/a.py` | 3 | 1 | 1 | 1 | 0 | 50.0 % |" in text
    assert "| `all` | 3 | 1 | 1 | 1 | 0 | 50.0 % |" in text
    assert "- `serlib.a.x_f__mutmut_2`: same behaviour because of X" in text


def test_every_module_must_reach_the_threshold_on_its_own():
    def row(module, killed, mutants):
        return {
            "module": module,
            "mutants": mutants,
            "killed": killed,
            "equivalent": 0,
            "survived": [""] * (mutants - killed),
            "not_run": 0,
            "score": killed / mutants if mutants else None,
        }

    good, weak = row("serlib/a.py", 99, 100), row("serlib/b.py", 8, 10)  # 107 of 110 in all: 97 %, but b is at 80 %
    assert mutation.total([good, weak])["score"] >= mutation.THRESHOLD
    assert mutation.below_threshold([good, weak]) == ["serlib/b.py"]
    assert mutation.below_threshold([good]) == []
    assert mutation.below_threshold([row("serlib/c.py", 0, 0)]) == ["serlib/c.py", "all"]  # nothing measured
