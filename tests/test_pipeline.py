"""serlib.pipeline: a manifest is rebuilt when what made it changed (logged), refused on request, never reused stale."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from conftest import write_wav

from serlib import pipeline
from serlib.common.config import load_config
from serlib.common.runfolder import RunFolder
from serlib.data import stage
from serlib.data.stage import StaleManifestError, load_manifest, manifest_changes


def _config(tmp_path: Path, roots: dict, extra: str = ""):
    path = tmp_path / "params.yaml"
    path.write_text("run: {name: t}\ndata:\n" + "".join(f"  {key}: {value}\n" for key, value in roots.items()) + extra)
    return load_config(path)


@pytest.fixture
def built(small_tree, tmp_path):
    """A run folder whose manifest was built from the small tree's EmoDB and RAVDESS."""
    roots = {"emodb": small_tree["EmoDB"], "ravdess": small_tree["RAVDESS"]}
    folder = RunFolder(tmp_path / "run").ensure()
    cfg = _config(tmp_path, roots)
    pipeline.ensure_manifest(cfg, folder)
    return cfg, folder, roots, small_tree


@pytest.fixture
def builds(monkeypatch):
    """How often ensure_manifest builds (the real build runs)."""
    calls = []
    real = pipeline.build_manifest
    monkeypatch.setattr(pipeline, "build_manifest", lambda cfg, folder: (calls.append(1), real(cfg, folder))[1])
    return calls


def test_an_up_to_date_manifest_is_reused(built, builds, caplog):
    cfg, folder, _, _ = built
    before = folder.manifest.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="serlib"):
        manifest = pipeline.ensure_manifest(cfg, folder)
    assert builds == [] and folder.manifest.stat().st_mtime_ns == before and len(manifest) == 48 + 48
    assert manifest_changes(cfg, folder) == [] and not caplog.records


def test_a_changed_setting_rebuilds_and_says_which(built, builds, tmp_path, caplog):
    _, folder, roots, _ = built
    cfg = _config(tmp_path, roots, "  min_duration_s: 0.4\n  split_seed: 3\n")
    with caplog.at_level(logging.INFO, logger="serlib"):
        manifest = pipeline.ensure_manifest(cfg, folder)
    assert builds == [1]
    message = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert f"{folder.manifest} is stale, rebuilding it" in message
    assert "data.min_duration_s: 1.0 -> 0.4" in message and "data.split_seed: 0 -> 3" in message
    assert caplog.records[0].name.startswith("serlib")
    assert manifest_changes(cfg, folder) == [] and len(manifest) == 96  # the new settings' manifest, recorded


def test_a_stale_manifest_is_refused_with_rebuild_stale_false(built, builds, tmp_path):
    _, folder, roots, _ = built
    before = folder.manifest.read_bytes()
    cfg = _config(tmp_path, roots, "  split: [0.5, 0.25, 0.25]\n")
    with pytest.raises(
        StaleManifestError,
        match=r"is stale: data\.split: \[0\.8, 0\.1, 0\.1\] -> \[0\.5, 0\.25, "
        r"0\.25\]; rebuild it by running without --no-rebuild",
    ):
        pipeline.ensure_manifest(cfg, folder, rebuild_stale=False)
    assert builds == [] and folder.manifest.read_bytes() == before


def test_ensure_features_refuses_before_computing_anything(built, tmp_path, monkeypatch):
    _, folder, roots, _ = built
    monkeypatch.setattr(pipeline, "extract_for_run", lambda *a, **k: pytest.fail("features computed"))
    with pytest.raises(StaleManifestError, match="data.ravdess"):
        pipeline.ensure_features(_config(tmp_path, {"emodb": roots["emodb"]}), folder, rebuild_stale=False)


def test_a_manifest_without_its_meta_is_rebuilt_and_kept(built, builds, caplog):
    cfg, folder, _, _ = built
    folder.manifest_meta.unlink()  # as an older serlib left it, or as written by hand
    folder.manifest.write_text(folder.manifest.read_text().replace("EmoDB:03", "EmoDB:03-edited"))
    old = folder.manifest.read_bytes()
    with caplog.at_level(logging.INFO, logger="serlib"):
        pipeline.ensure_manifest(cfg, folder)
    assert builds == [1] and folder.manifest_meta.is_file() and manifest_changes(cfg, folder) == []
    message = "\n".join(r.getMessage() for r in caplog.records)
    assert "manifest.meta.json is missing or unreadable (a manifest made by an older serlib" in message
    assert f"the old manifest is kept as {folder.manifest_backup}" in message
    assert folder.manifest_backup.read_bytes() == old and b"edited" not in folder.manifest.read_bytes()


def test_changed_corpus_files_make_the_manifest_stale(built, builds, caplog):
    cfg, folder, _, tree = built
    write_wav(tree["EmoDB"] / "wav" / "16a01Wa.wav", 24000)  # a new clip
    assert manifest_changes(cfg, folder) == [
        "the files under data.emodb changed (50 -> 51 entries, or a file's size or time)"
    ]
    manifest = pipeline.ensure_manifest(cfg, folder)
    assert builds == [1] and "EmoDB/16a01Wa" in set(manifest["utt_id"])


def test_a_changed_split_file_makes_the_manifest_stale(built, tmp_path):
    _, folder, roots, _ = built
    split = tmp_path / "published.csv"
    split.write_bytes(folder.split_file.read_bytes())
    cfg = _config(tmp_path, roots, f"  split_file: {split}\n")
    pipeline.ensure_manifest(cfg, folder)
    assert manifest_changes(cfg, folder) == []
    lines = split.read_text().splitlines()
    split.write_text("\n".join(lines[:1] + [ln.replace(",train", ",test") for ln in lines[1:]]) + "\n")
    assert [c for c in manifest_changes(cfg, folder) if c.startswith("data.split_file_digest: ")]


def test_a_set_cut_between_renames_is_rebuilt(built, builds, tmp_path, monkeypatch, caplog):
    cfg, folder, roots, _ = built
    changed = _config(tmp_path, roots, "  split_seed: 9\n")
    real_replace, renamed = os.replace, []

    def failing_replace(src, dst):
        if len(renamed) == 4:  # scanned, excluded, audit and split renamed; meta and manifest not
            raise OSError(5, "Input/output error (simulated)")
        renamed.append(dst)
        real_replace(src, dst)

    with monkeypatch.context() as patch, pytest.raises(OSError, match="simulated"):
        patch.setattr(os, "replace", failing_replace)
        stage.build_manifest(changed, folder)
    assert manifest_changes(cfg, folder) == [  # the new split beside the old manifest: seen, not trusted
        "data/split.csv does not match its record in manifest.meta.json (a write was cut short, or the file was edited)"
    ]
    with caplog.at_level(logging.WARNING, logger="serlib"):
        pipeline.ensure_manifest(cfg, folder)
    assert builds == [1] and manifest_changes(cfg, folder) == []
    assert len(load_manifest(folder)) == 96
