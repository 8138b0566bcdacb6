"""The runner (serlib.report): papermill execution, failure path, identity block, offline HTML."""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from serlib.common.config import ConfigError, load_config
from serlib.common.runfolder import RunFolder
from serlib.report.html_export import identity_html, render_html
from serlib.report.provenance import PACKAGES, git_text, run_identity
from serlib.report.runner import NotebookError, run_report, select_notebooks

ROOT = Path(__file__).resolve().parent.parent
REMOTE_SCRIPT = re.compile(r'<script[^>]*src\s*=\s*["\']?(https?:)?//', re.I)


def _notebook(path: Path, heading: str, cells: list[str]) -> None:
    """A notebook in the project's shape: heading, parameters cell, open_run, then ``cells``."""
    params = nbformat.v4.new_code_cell('params_path = "../parameters/demo.yaml"\nrun_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(heading),
            params,
            nbformat.v4.new_code_cell(
                "from serlib.common.runfolder import open_run\ncfg, folder = open_run(params_path, run_dir)"
            ),
            *[nbformat.v4.new_code_cell(c) for c in cells],
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


OK_CELLS = [
    "import pandas as pd\nfrom serlib.report.display import show_table\n"
    "show_table(pd.DataFrame({'a': [1, 2]}), 'Table 1', 'A tiny table', folder);",
    "import matplotlib.pyplot as plt\nfrom serlib.report.display import show_figure\n"
    "fig, ax = plt.subplots()\nax.plot([1, 2])\nshow_figure(fig, 'Fig. S1', 'A line', folder)",
    "from IPython.display import Audio\nimport numpy as np\nAudio(np.zeros(800), rate=8000)",
]
BAD_CELLS = ["x = 1", "raise ValueError('boom in the bad notebook')", "y = 2"]


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """One run over three notebooks: ok, failing, never reached."""
    tmp = tmp_path_factory.mktemp("runner")
    (tmp / "parameters").mkdir()
    params = tmp / "parameters" / "t.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "run": {"name": "t", "title": "Runner test report", "notebooks": ["10_ok", "20_bad", "30_later"]},
                "features": {"wav2vec2": {"weights": "random"}},
            }
        )
    )
    notebooks = tmp / "nb"
    notebooks.mkdir()
    _notebook(notebooks / "10_ok.ipynb", "# 1. The good one", OK_CELLS)
    _notebook(notebooks / "20_bad.ipynb", "# 2. The bad one", BAD_CELLS)
    _notebook(notebooks / "30_later.ipynb", "# 3. Never reached", ["z = 3"])
    cfg = load_config(params)
    with pytest.raises(NotebookError) as info:
        run_report(cfg, out=tmp / "run", notebooks_dir=notebooks, verbose=False)
    return cfg, tmp / "run", info.value


def test_failure_names_notebook_and_cell(failed_run):
    _, run, err = failed_run
    assert err.notebook == "20_bad"
    assert err.cell_index == 4  # heading, parameters, open_run, x = 1, raise
    assert err.first_line == "raise ValueError('boom in the bad notebook')"
    assert "20_bad" in str(err) and "cell 4" in str(err) and "boom in the bad notebook" in str(err)


def test_failure_keeps_partial_notebook_and_stops(failed_run):
    _, run, err = failed_run
    partial = nbformat.read(run / "notebooks" / "20_bad.ipynb", as_version=4)
    errors = [o for c in partial.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "ValueError"
    assert err.partial == run / "notebooks" / "20_bad.ipynb"
    assert (run / "notebooks" / "10_ok.ipynb").is_file()
    assert not (run / "notebooks" / "30_later.ipynb").exists()  # the run stopped


def test_failed_run_still_exports_report_with_banner(failed_run):
    _, run, err = failed_run
    text = (run / "report.html").read_text()
    assert err.report == run / "report.html"
    assert "This run FAILED" in text and 'href="#nb-20_bad"' in text and 'id="failure"' in text
    assert "Not run: 30_later" in text
    assert "boom in the bad notebook" in text  # the traceback of the failing cell is shown
    assert "Table 1." in text  # what ran before the failure is there


def test_report_toc_anchors_resolve(failed_run):
    _, run, _ = failed_run
    text = (run / "report.html").read_text()
    links = set(re.findall(r'href="#([^"]+)"', text))
    ids = set(re.findall(r'id="([^"]+)"', text))
    assert {"nb-10_ok", "nb-20_bad", "table-1", "fig-s1", "run-identity", "run-configuration"} <= links
    assert links <= ids, f"links without a target: {sorted(links - ids)}"


def test_report_is_offline_and_code_hidden(failed_run):
    _, run, _ = failed_run
    text = (run / "report.html").read_text()
    assert not REMOTE_SCRIPT.search(text)
    # one inline script (the contents follow the reader, a link opens a collapsed supplement); reading needs none
    assert text.count("<script") == 1 and "<script>\n(function () {" in text
    assert "data:image/png;base64," in text  # figures embedded
    assert re.search(r"<audio[^>]*controls", text) and "data:audio/wav;base64," in text
    assert "show_table(pd.DataFrame" not in text  # inputs hidden
    assert "params_path =" not in text  # parameters cells left out


def test_report_identity_block(failed_run):
    cfg, run, _ = failed_run
    text = (run / "report.html").read_text()
    assert "<title>Runner test report</title>" in text
    for label in ("Parameters file", "Corpora", "Encoder", "Seeds", "Git revision", "Packages", "Device"):
        assert f"<th>{label}</th>" in text
    assert "Random encoder weights" in text
    assert "Timings per stage" in text and "10_ok" in text
    resolved = yaml.safe_load((run / "config.resolved.yaml").read_text())
    assert resolved["config"]["run"]["name"] == "t"
    assert set(PACKAGES) | {"python"} <= set(resolved["identity"]["packages"])
    timings = yaml.safe_load((run / "timings.json").read_text())
    assert timings["10_ok"]["status"] == "ok" and timings["20_bad"]["status"] == "failed"
    assert timings["10_ok"]["seconds"] > 0
    identity = run_identity(cfg, RunFolder(run))
    assert timings["10_ok"]["git"] == timings["20_bad"]["git"] == git_text(identity["git"])  # the code they ran
    assert "made with other code" not in identity_html(identity)  # exported with the code the notebooks ran
    identity["timings"]["10_ok"]["git"] = "0123abc (clean)"  # a notebook that ran with other code
    made = html.unescape(identity_html(identity))
    assert "the notebooks' tables and figures were made with other code: 10_ok: 0123abc (clean)" in made


def test_run_identity_contents():
    cfg = load_config(ROOT / "parameters" / "smoke.yaml")
    identity = run_identity(cfg)
    assert identity["parameters_file"] == str((ROOT / "parameters" / "smoke.yaml").resolve())
    assert identity["corpora"]["kind"] == "synthetic demo corpus"
    assert identity["encoder"]["random_weights"] is True
    assert identity["seeds"]["train"] == [0]
    assert identity["packages"]["torch"] and identity["packages"]["python"]
    assert "cpu" in identity["device"] or "cuda" in identity["device"]
    git = identity["git"]
    assert git["revision"] is None or re.fullmatch(r"[0-9a-f]{40}", git["revision"])
    markup = identity_html(identity)
    assert "Random encoder weights" in markup and "Synthetic corpus" in markup


def test_identity_without_random_banner_for_pretrained():
    cfg = load_config(ROOT / "parameters" / "smoke.yaml")
    cfg.features.wav2vec2.weights = "pretrained"
    cfg.data.demo, cfg.data.crema_d = None, "/data/CREMA-D"
    identity = run_identity(cfg)
    assert identity["corpora"]["CREMA-D"] == "/data/CREMA-D" and identity["corpora"]["EmoDB"] == "not used"
    markup = identity_html(identity)
    assert "Random encoder weights" not in markup and "Synthetic corpus" not in markup


def test_select_notebooks_orders_and_rejects_unknown(tmp_path):
    cfg = load_config(ROOT / "parameters" / "smoke.yaml")
    cfg.run.notebooks = ["01_data", "02_x", "03_y"]
    for name in ("03_y", "01_data"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert select_notebooks(cfg, tmp_path) == ["01_data", "03_y"]
    assert select_notebooks(cfg, tmp_path, ["03_y", "01_data.ipynb"]) == ["01_data", "03_y"]
    with pytest.raises(ConfigError, match="02_x"):
        select_notebooks(cfg, tmp_path, ["02_x"])


def test_run_report_needs_a_parameters_file():
    from serlib.common.config import Config

    with pytest.raises(ConfigError, match="YAML"):
        run_report(Config(), out="/nonexistent/never-created")


def test_render_html_strips_remote_scripts():
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/html": '<script src="https://cdn.example.org/x.js"></script><p>kept</p>'}
        )
    ]
    text = render_html(nbformat.v4.new_notebook(cells=[cell]))
    assert "<p>kept</p>" in text and not REMOTE_SCRIPT.search(text)


def test_only_reruns_one_notebook_and_shows_earlier_ones(failed_run, tmp_path):
    import shutil

    cfg, run, _ = failed_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    report = run_report(
        cfg, out=copy, only=["30_later"], notebooks_dir=Path(cfg.source).parent.parent / "nb", verbose=False
    )
    text = report.read_text()
    assert (copy / "notebooks" / "30_later.ipynb").is_file()
    assert 'id="nb-10_ok"' in text and 'id="nb-20_bad"' in text and 'id="nb-30_later"' in text
    assert "Executed by an earlier invocation" in text  # 10_ok, reused
    assert "FAILED in an earlier invocation" in text  # 20_bad's partial output, flagged
    assert "This run FAILED" not in text


def test_table_and_figure_references_link_to_their_captions():
    from serlib.report.references import link_markdown, link_references

    targets = {"Table 5": "table-5", "Fig. 3": "fig-3"}
    markup = "<p><b>Table 5.</b> As Fig. 3 shows, and Table 9 does not exist.</p><code>Table 5</code>"
    assert link_references(markup, targets) == (
        '<p><b>Table 5.</b> As <a href="#fig-3">Fig. 3</a> shows, and Table 9 does not exist.</p><code>Table 5</code>'
    )
    source = "## Table 5: results\nSee Table 5 and `Table 5`.\nThen Fig. 3.\n"
    assert link_markdown(source, targets) == "## Table 5: results\nSee Table 5 and `Table 5`.\nThen [Fig. 3](#fig-3).\n"


def test_the_key_results_box_scores_the_analysed_system_through_the_evaluation_api(tmp_path):
    import pandas as pd
    from test_confusion import make_fabricated_run

    from serlib.analysis.evaluation import scores_table
    from serlib.common.config import Config, TrainConfig
    from serlib.common.facts import CLASSES
    from serlib.report.keyresults import key_results_html
    from serlib.report.tables import class_words

    cfg = Config(train=TrainConfig(seeds=[0]))  # the paper profile, one seed
    assert key_results_html(cfg, RunFolder(tmp_path / "empty").ensure()) == ""  # nothing trained yet: no box
    folder = make_fabricated_run(tmp_path / "run")
    box = key_results_html(cfg, folder)
    assert not list(folder.tables.glob("*.csv"))  # read from the predictions, not from a CSV named after a caption
    row = scores_table(cfg, folder, ["S5"]).iloc[0]
    assert f"<b>{100 * row['acc']:.1f} %</b>" in box
    assert f"[{100 * row['acc_lo']:.1f}, {100 * row['acc_hi']:.1f}]" in box
    assert "62.9 %" in box  # the paper's S5 accuracy
    preds = pd.read_csv(folder.predictions("S5", 0))
    recall = preds.groupby("label")["correct"].mean().reindex(CLASSES)  # by hand (ties: the first class wins)
    assert f"{len(preds)} test clips of {row['n_speakers']} unseen speakers, 1 seed" in box
    assert f"Best class: <b>{class_words(recall.idxmax())}</b> (recall {100 * recall.max():.1f} %)" in box
    assert (
        f"worst: <b>{class_words(recall.idxmin())}</b>" in box
        and "over test speakers" in box
        and "href='#table-5'" in box
    )
    assert "pretrained wav2vec2-base" in box  # the paper profile's sentence
    cfg.analysis.primary_system = "A1"  # an ablation is in no table of its own: no box
    assert key_results_html(cfg, folder) == ""
