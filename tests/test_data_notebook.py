"""Notebook 01_data executed by papermill through the runner on the smoke profile, and the data
tables it shows (serlib.datatables) checked against the run's manifest and audit."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from serlib.analysis import datatables
from serlib.common import paper
from serlib.common.facts import CLASSES
from serlib.data.stage import load_manifest

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "parameters" / "smoke.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_run(smoke_run):
    return smoke_run, smoke_run.report, None


def test_report_holds_tables_1_to_3_and_the_audit(data_run):
    folder, report, _ = data_run
    text = report.read_text()
    for label in ("Table 1", "Table 2", "Table 3", "Table S1", "Table S2", "Table S3", "Fig. S1", "Fig. S2"):
        anchor = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")  # anchors keep the notebook's numbers
        # the paper's labels as they are; the supplement's renumbered in reading order within section 1 (S1.k)
        shown = re.escape(label) if " S" not in label else re.escape(label.split(" S")[0]) + r" S1\.\d+"
        assert re.search(rf'id="{anchor}"[^>]*><b>{shown}\.</b>', text), label
        assert f'href="#{anchor}"' in text, label  # in the contents, and resolvable
    assert "MCULP audit" in text
    assert text.count('class="serlib-paper"') >= 3  # where the paper differs from its protocol
    assert "7,618" in text and "8,952" in text and "7,620" in text
    assert not re.search(r'<script[^>]*src\s*=\s*["\']?(https?:)?//', text)
    assert (folder.notebooks / "01_data.ipynb").is_file()


def test_tables_are_written_and_match_the_manifest(data_run):
    folder, _, _ = data_run
    manifest = load_manifest(folder)
    t1 = pd.read_csv(folder.tables / "table_1.csv")
    t2 = pd.read_csv(folder.tables / "table_2.csv").set_index("subset")
    t3 = pd.read_csv(folder.tables / "table_3.csv").set_index("class")
    audit = pd.read_csv(folder.tables / "table_s1_mculp_audit.csv").set_index("reason")
    assert list(t1["corpus"]) == ["CREMA-D", "RAVDESS", "EmoDB"]
    assert list(t1["utterances (paper)"]) == list(paper.TABLE1["utterances"])
    # Table 1 counts the files MCULP saw: kept + dropped by MCULP's own reasons.
    mculp_drops = audit.loc[[r for r in ("calm", "surprised", "boredom", "unmapped", "too_short") if r in audit.index]]
    assert t1["utterances"].sum() == len(manifest) + mculp_drops["total"].sum()
    assert audit.loc["kept", "total"] == len(manifest)
    assert audit.loc["all files", "total"] == audit.drop(index="all files")["total"].sum()
    assert t2.loc["total", "utterances"] == len(manifest)
    assert t2.loc[["train", "val", "test"], "utterances"].sum() == len(manifest)
    assert t2.loc[["train", "val", "test"], "speakers"].sum() == manifest["speaker"].nunique()  # disjoint
    assert list(t3.index) == list(CLASSES)
    assert t3[["train", "val", "test"]].to_numpy().sum() == len(manifest)
    assert (t3["val (paper)"] == paper.TABLE3.set_index("class")["val"]).all()
    assert (folder.figures / "fig_s1_class_balance.png").stat().st_size > 1000
    assert (folder.figures / "fig_s2_durations.png").stat().st_size > 1000


def test_notes_are_computed_from_the_data(data_run):
    folder, _, _ = data_run
    manifest = load_manifest(folder)
    scanned = manifest.assign(duration_s=manifest["duration_s"].astype(float))
    notes = datatables.paper_vs_protocol_notes(manifest, scanned)
    assert f"keeps {len(manifest):,} of {len(scanned):,}" in notes["mculp"]
    val = manifest[manifest["split"] == "val"]["label"].value_counts()
    assert "val " + " / ".join(str(int(val.get(c, 0))) for c in CLASSES) in notes["table3"]
    assert "0 speakers in more than one subset" in notes["split"]


def test_table3_and_overlap_on_a_hand_made_manifest():
    manifest = pd.DataFrame(
        {
            "speaker": ["a", "a", "b", "c", "c", "d"],
            "corpus": ["EmoDB"] * 6,
            "label": ["negative", "sad_fear", "pos_neutral", "negative", "negative", "sad_fear"],
            "split": ["train", "train", "val", "test", "test", "val"],
        }
    )
    t3 = datatables.table3(manifest).set_index("class")
    assert t3.loc["negative", "test"] == 2 and t3.loc["sad_fear", "val"] == 1 and t3.loc["pos_neutral", "train"] == 0
    assert datatables.speaker_overlap(manifest) == 0
    assert datatables.speaker_overlap(manifest.assign(split=["train", "val", "val", "test", "test", "val"])) == 1
    t2 = datatables.table2(manifest).set_index("subset")
    assert t2.loc["val", "speakers"] == 2 and t2.loc["test", "% utterances"] == pytest.approx(100 * 2 / 6)
