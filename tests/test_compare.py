"""``serlib compare``: the report's units, the configuration difference first, a warning when A is B."""

from __future__ import annotations

import yaml
from test_evaluation import _run

from serlib.analysis import runcompare
from serlib.common.runfolder import RunFolder
from serlib.report import compare
from serlib.report.html_export import REPORT_CSS
from serlib.tools.cli import main as cli_main


def _two_runs(tmp_path):
    _, folder_a = _run(tmp_path, {"S5": 0.5}, "a")
    _, folder_b = _run(tmp_path, {"S5": 0.9}, "b")
    for folder, layer, name in ((folder_a, 12, "a"), (folder_b, 6, "b")):
        config = {"run": {"name": name, "seed": 0}, "features": {"wav2vec2": {"layer": layer, "weights": "random"}}}
        folder.resolved_config.write_text(yaml.safe_dump({"config": config, "identity": {"created": name}}))
    return folder_a, folder_b


def test_compare_shows_the_config_difference_first_then_percent_and_points(tmp_path):
    folder_a, folder_b = _two_runs(tmp_path)
    table = runcompare.compare_runs(folder_a, folder_b, n_resamples=200)
    diff = compare.config_difference(folder_a, folder_b)
    assert diff.to_dict("records") == [{"setting": "features.wav2vec2.layer", "run A": "12", "run B": "6"}]
    acc = table[table["metric"] == "accuracy"].iloc[0]
    text = compare.compare_text(table, folder_a, folder_b)
    assert "WARNING" not in text
    assert text.index("features.wav2vec2.layer") < text.index("S5")  # what differs, before what it changed
    assert f"{100 * acc['run_a']:.1f}" in text and f"{100 * acc['run_b']:.1f}" in text  # percent, not fractions
    assert f"{acc['delta_pp']:+.1f} [{acc['delta_lo_pp']:+.1f}, {acc['delta_hi_pp']:+.1f}]" in text  # points
    assert f"{acc['run_a']:.3f}" not in text
    page = compare.compare_html(table, folder_a, folder_b)
    assert REPORT_CSS in page and "<body class='jp-Notebook'><div class='jp-RenderedHTMLCommon'>" in page
    assert page.index("features.wav2vec2.layer") < page.index("<h2>Systems</h2>")
    assert f'<td class="num">{100 * acc["run_b"]:.1f}</td>' in page and "Δ (points), 95 % interval" in page


def test_compare_warns_when_a_and_b_are_the_same_folder(tmp_path, capsys):
    folder_a, _ = _two_runs(tmp_path)
    (tmp_path / "link").symlink_to(folder_a.root)
    same = RunFolder(tmp_path / "link")
    assert compare.same_folder(folder_a, same) and not compare.same_folder(folder_a, RunFolder(tmp_path / "b"))
    html_path = tmp_path / "same.html"
    args = ["compare", str(folder_a.root), str(tmp_path / "link"), "--resamples", "50", "--html", str(html_path)]
    assert cli_main(args) == 0
    captured = capsys.readouterr()
    assert "warning: A and B are the same folder" in captured.err
    assert captured.out.startswith("WARNING: A and B are the same folder")
    assert "same configuration" in captured.out
    assert "<b>Same folder.</b>" in html_path.read_text()
