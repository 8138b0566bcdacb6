"""Evaluation protocols beside the paper's split: speaker folds and leave-one-corpus-out; per-system tuning."""

from __future__ import annotations

import pandas as pd
import pytest

from serlib.common.config import Config, ModelConfig, SelectConfig, SystemConfig, TrainConfig, loco_systems
from serlib.common.runfolder import RunFolder
from serlib.data.protocols import evaluation_protocols, loco_protocols, protocol_subsets
from serlib.modelling import systems


def _manifest():
    rows = []
    for corpus, speakers in (
        ("CREMA-D", ["c1", "c2", "c3", "c4"]),
        ("RAVDESS", ["r1", "r2", "r3"]),
        ("EmoDB", ["e1", "e2"]),
    ):
        for i, spk in enumerate(speakers):
            split = ["train", "val", "test", "train"][i]
            rows += [
                {"utt_id": f"{spk}-{k}", "corpus": corpus, "speaker": f"{corpus}:{spk}", "split": split}
                for k in range(3)
            ]
    return pd.DataFrame(rows)


def test_leave_one_corpus_out_tests_the_whole_corpus_and_validates_on_the_others(tmp_path):
    manifest = _manifest()
    splits = protocol_subsets(RunFolder(tmp_path), "loco-RAVDESS", manifest)
    held = manifest["corpus"] == "RAVDESS"
    assert (splits[held] == "test").all()
    assert set(splits[~held]) == {"train", "val"}  # validation from the training corpora only
    assert (splits[~held & (manifest["split"] == "val")] == "val").all()
    assert (splits[~held & (manifest["split"] == "test")] == "train").all()  # their test speakers train


def test_fold_protocol_reads_the_fold_table(tmp_path):
    folder = RunFolder(tmp_path).ensure()
    manifest = _manifest()
    speakers = sorted(set(manifest["speaker"]))
    rows = [
        {"fold": f, "speaker": s, "split": "test" if i % 2 == f - 1 else "train"}
        for f in (1, 2)
        for i, s in enumerate(speakers)
    ]
    pd.DataFrame(rows).to_csv(folder.folds, index=False)
    one, two = (protocol_subsets(folder, p, manifest) for p in ("fold1", "fold2"))
    assert ((one == "test") != (two == "test")).all()  # every clip tested in exactly one fold
    pd.DataFrame(rows[:-1]).to_csv(folder.folds, index=False)
    with pytest.raises(ValueError, match="have no fold"):
        protocol_subsets(folder, "fold2", manifest)


def test_unknown_protocols_are_errors(tmp_path):
    for bad in ("loco-IEMOCAP", "bootstrap"):
        with pytest.raises(ValueError, match="protocol"):
            protocol_subsets(RunFolder(tmp_path), bad, _manifest())


def test_protocol_runs_live_apart_from_the_papers(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.run_dir("S5", 0) == tmp_path / "models" / "S5" / "seed0"
    assert folder.run_dir("S5", 0, "loco-EmoDB") == tmp_path / "models" / "_loco-EmoDB" / "S5" / "seed0"
    assert folder.predictions("S1", 2, "test", "fold3").parent == tmp_path / "models" / "_fold3" / "S1" / "seed2"


def _cfg(scope: str) -> Config:
    s = {
        "S1": SystemConfig(input="logmel", model=ModelConfig(arch="shallow")),
        "S2": SystemConfig(model=ModelConfig(arch="shallow")),
        "S3": SystemConfig(model=ModelConfig(se=False)),
        "S5": SystemConfig(),
    }
    return Config(train=TrainConfig(select=SelectConfig(enabled=True, scope=scope)), systems=s)


@pytest.mark.parametrize(
    "scope,expected",
    [
        ("system", {"S1": ("S1", "S1"), "S3": ("S3", "S3"), "S5": ("S5", "S5")}),
        (
            "family",
            {
                "S1": ("logmel-shallow", "S1"),
                "S2": ("wav2vec2-shallow", "S2"),
                "S3": ("wav2vec2-resattn", "S5"),
                "S5": ("wav2vec2-resattn", "S5"),
            },
        ),
        ("shared", {"S1": ("shared", "S5"), "S3": ("shared", "S5")}),
    ],
)
def test_selection_groups(scope, expected):
    cfg = _cfg(scope)
    for name, group in expected.items():
        assert systems.selection_group(cfg, name) == group


def test_loco_systems_default_to_those_the_profile_has():
    cfg = _cfg("system")
    assert loco_systems(cfg) == ["S1", "S2", "S5"]
    del cfg.systems["S2"]
    assert loco_systems(cfg) == ["S1", "S5"]
    cfg.analysis.loco_systems = []
    assert loco_systems(cfg) == []


def test_the_papers_split_is_the_manifests_and_the_manifest_is_read_when_not_given(tmp_path):
    folder = RunFolder(tmp_path).ensure()
    manifest = _manifest()
    assert protocol_subsets(folder, "split", manifest).equals(manifest["split"])
    manifest.assign(
        path="a.wav",
        sex="female",
        emotion_code="ANG",
        emotion="anger",
        sentence="",
        duration_s=2.0,
        sample_rate=16000,
        channels=1,
        label="negative",
    ).to_csv(folder.manifest, index=False)
    assert list(protocol_subsets(folder, "loco-EmoDB")) == list(protocol_subsets(folder, "loco-EmoDB", manifest))


def test_unseen_sentences_holds_out_sentences_as_well_as_speakers(tmp_path):
    from serlib.data.protocols import UNUSED, held_out_sentences

    rows = [
        {"corpus": corpus, "speaker": f"{corpus}-{spk}", "sentence": sentence, "split": split}
        for corpus, sentences in (
            ("CREMA-D", ["IEO", "DFA", "TIE", "ITS"]),
            ("RAVDESS", ["01", "02"]),
            ("EmoDB", ["a01"]),
        )
        for spk, split in (("a", "train"), ("b", "val"), ("c", "test"))
        for sentence in sentences
    ]
    manifest = pd.DataFrame(rows)
    # every third sentence in sorted order: CREMA-D DFA, IEO, ITS, TIE -> DFA and TIE; RAVDESS 01; one sentence: none
    assert held_out_sentences(manifest) == {"CREMA-D": ["DFA", "TIE"], "EmoDB": [], "RAVDESS": ["01"]}
    subsets = protocol_subsets(RunFolder(tmp_path), "unseen-sentences", manifest)
    got = manifest.assign(subset=subsets.to_numpy())
    test = got[got["subset"] == "test"]
    assert sorted(zip(test["speaker"], test["sentence"])) == [
        ("CREMA-D-c", "DFA"),
        ("CREMA-D-c", "TIE"),
        ("RAVDESS-c", "01"),
    ]
    trained = got[got["subset"].isin(["train", "val"])]
    assert not set(trained["sentence"]) & {"DFA", "TIE", "01"}  # no held-out sentence is heard in training
    assert set(trained["speaker"]).isdisjoint(test["speaker"])  # nor a test speaker
    assert (got.loc[got["speaker"] == "CREMA-D-c", "subset"].isin(["test", UNUSED])).all()
    assert (got.loc[got["speaker"] == "EmoDB-c", "subset"] == UNUSED).all()
    assert len(got[got["subset"] == "train"]) == 2 + 1 + 1  # CREMA-D IEO, ITS; RAVDESS 02; EmoDB a01
    # a manifest filtered or reordered (its index not 0..n-1): each row keeps its own subset
    shuffled = manifest.sample(frac=1, random_state=3).iloc[2:]
    again = protocol_subsets(RunFolder(tmp_path), "unseen-sentences", shuffled)
    assert again.index.equals(shuffled.index) and again.equals(subsets.loc[shuffled.index])


def test_evaluation_protocols_are_the_split_or_every_fold():
    cfg = Config()
    assert evaluation_protocols(cfg) == ["split"]
    cfg.data.folds = 3
    assert evaluation_protocols(cfg) == ["fold1", "fold2", "fold3"]


def test_one_loco_protocol_per_corpus_present_in_table_order_and_none_for_one_corpus():
    manifest = _manifest()
    assert loco_protocols(manifest) == ["loco-CREMA-D", "loco-RAVDESS", "loco-EmoDB"]
    assert loco_protocols(manifest.iloc[::-1]) == ["loco-CREMA-D", "loco-RAVDESS", "loco-EmoDB"]
    two = manifest[manifest["corpus"] != "RAVDESS"]
    assert loco_protocols(two) == ["loco-CREMA-D", "loco-EmoDB"]
    assert loco_protocols(manifest[manifest["corpus"] == "EmoDB"]) == []


def test_stale_folds_and_unknown_corpora_say_what_to_do(tmp_path):
    folder = RunFolder(tmp_path).ensure()
    manifest = _manifest()
    speakers = sorted(set(manifest["speaker"]))
    rows = [{"fold": 1, "speaker": s, "split": "test"} for s in speakers if s not in speakers[:7]]
    pd.DataFrame(rows).to_csv(folder.folds, index=False)
    with pytest.raises(ValueError) as err:
        protocol_subsets(folder, "fold1", manifest)
    missing = ", ".join(speakers[:5])  # the first five of the seven missing speakers
    assert str(err.value) == (
        f"{folder.folds}: speaker(s) {missing} of the manifest have no fold; "
        "the folds are stale: rebuild them (serlib.data.protocols.ensure_folds)"
    )
    with pytest.raises(ValueError) as err:
        protocol_subsets(folder, "loco-IEMOCAP", manifest)
    assert str(err.value) == "unknown protocol 'loco-IEMOCAP': loco-<corpus> with a corpus of CREMA-D, RAVDESS, EmoDB"
    with pytest.raises(ValueError) as err:
        protocol_subsets(folder, "bootstrap", manifest)
    assert str(err.value) == "unknown protocol 'bootstrap'; expected split, fold<k>, loco-<corpus> or unseen-sentences"
