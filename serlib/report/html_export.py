"""The HTML pieces of the report: the identity block with its banners, the run configuration,
the contents, failure banners, and the nbconvert export (lab template, inputs hidden, no remote
scripts: the report opens offline).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Optional

import nbformat
import yaml

from serlib.common.config import Config, config_to_dict
from serlib.common.runfolder import RunFolder
from serlib.report.provenance import git_text, run_identity

_REMOTE_SCRIPT = re.compile(r'<script\b[^>]*\bsrc\s*=\s*["\']?(?:https?:)?//[^>]*>\s*</script>', re.I)


def identity_html(identity: dict, banners: bool = True, folder: Optional[RunFolder] = None) -> str:
    """The identity block as HTML (banners for random weights and the synthetic corpus first, unless
    ``banners`` is false: the report shows them above its key results)."""
    parts = [_banners(identity)] if banners else []
    rows = [
        ("Parameters file", identity["parameters_file"]),
        ("Run folder", identity["run_folder"]),
        ("Corpora", _kv(identity["corpora"])),
        ("Encoder", _encoder_text(identity["encoder"])),
        ("Seeds", _kv({k: v for k, v in identity["seeds"].items() if v is not None})),
        ("Git revision", git_text(identity["git"]) + _ran_with(identity)),
        ("Packages", _kv(identity["packages"])),
        ("Device", identity["device"]),
        ("Report written", identity["created"]),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    parts.append(f'<table class="serlib-identity">{body}</table>')
    parts.append(_timings_html(identity.get("timings", {})))
    if folder is not None:
        parts.append(costs_html(folder))
    return '<div class="serlib-identity-block"><h2 id="run-identity">Run identity</h2>' + "".join(parts) + "</div>"


def banners_html(identity: dict) -> str:
    """The random-weights and synthetic-corpus banners alone."""
    return _banners(identity)


def costs_html(folder: RunFolder) -> str:
    """What the results cost when they were computed, from the run folder's records (not this execution):
    feature extraction per input (``features_summary.json``) and training per system (each run's
    ``metrics.json``: seconds per epoch x epochs)."""
    rows = []
    summary = folder.features_summary
    if summary.is_file():
        try:
            inputs = json.loads(summary.read_text()).get("inputs", {})
        except ValueError:
            inputs = {}
        for name, stats in inputs.items():
            last = stats.get("last_compute") or {}
            if last.get("seconds") is not None:
                rows.append(
                    (
                        f"features: {name}",
                        f"{last.get('clips', 0):,} clips",
                        last["seconds"],
                        str(last.get("when", ""))[:16].replace("T", " "),
                    )
                )
    per_system: dict[str, list] = {}
    for path in sorted(folder.models.glob("**/metrics.json")) if folder.models.is_dir() else []:
        try:
            m = json.loads(path.read_text())
        except ValueError:
            continue
        system = path.parent.parent.name
        protocol = path.parent.parent.parent.name if path.parent.parent.parent != folder.models else ""
        key = system + (f" ({protocol.lstrip('_')})" if protocol else "")
        seconds = float(m.get("seconds_per_epoch", 0)) * float(m.get("stopped_epoch", 0))
        per_system.setdefault(key, []).append(seconds)
    for key, seconds in per_system.items():
        rows.append((f"training: {key}", f"{len(seconds)} run(s)", sum(seconds), ""))
    if not rows:
        return ""
    total = sum(r[2] for r in rows)
    body = "".join(
        f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td class='num'>{c:,.1f}</td>"
        f"<td>{html.escape(d)}</td></tr>"
        for a, b, c, d in rows
    )
    return (
        '<details class="serlib-costs"><summary>What the results cost when they were computed: '
        f'{total:,.0f} s of extraction and training</summary><table class="serlib-timings">'
        "<tr><th>Stage</th><th>Work</th><th>Seconds</th><th>Computed</th></tr>"
        f"{body}</table><p>From the run folder's records; the table above is this execution, in which "
        "cached features and trained runs are reused.</p></details>"
    )


def show_identity(cfg: Config, folder: Optional[RunFolder] = None) -> dict:
    """Display the identity block in a notebook (as the report opens with it); returns the identity."""
    from IPython.display import HTML, display  # IPython is present only in a kernel

    identity = run_identity(cfg, folder)
    display(HTML(identity_html(identity)))
    return identity


def _banners(identity: dict) -> str:
    out = ""
    enc = identity["encoder"]
    if enc["random_weights"]:
        out += (
            '<div class="serlib-banner serlib-banner-warning"><b>Random encoder weights.</b> The wav2vec 2.0 '
            f"encoder ({html.escape(str(enc['model_id']))} architecture) runs with seeded RANDOM weights, "
            "not the pretrained ones: its features carry no pretrained speech knowledge, so results "
            "measure the pipeline, not the paper's system.</div>"
        )
    if identity["corpora"].get("kind") == "synthetic demo corpus":
        out += (
            '<div class="serlib-banner serlib-banner-note"><b>Synthetic corpus.</b> The utterances are '
            "generated by serlib in the real corpora's layouts; numbers in this report measure nothing "
            "about real emotional speech.</div>"
        )
    return out


def _kv(mapping: dict) -> str:
    return "; ".join(f"{k}: {v}" for k, v in mapping.items())


def _encoder_text(enc: dict) -> str:
    if "wav2vec2" not in enc.get("inputs", ["wav2vec2"]):
        return "none: no system of this run reads wav2vec2 features (log-Mel input only)"
    text = f"{enc['model_id']} (revision {enc['revision']}), weights {enc['weights'].upper()}, layer {enc['layer']}"
    if enc.get("config_overrides"):  # a reduced or altered architecture must be visible
        text += f"; architecture changed from the model's config: {_kv(enc['config_overrides'])}"
    return text


def _ran_with(identity: dict) -> str:
    """When the notebooks ran with other code than the report's export: which, per notebook (their timings)."""
    now = git_text(identity["git"])
    other = {n: t["git"] for n, t in identity.get("timings", {}).items() if t.get("git") and t["git"] != now}
    if not other:
        return ""
    ran = "; ".join(f"{name}: {code}" for name, code in other.items())
    return f" (this export's code; the notebooks' tables and figures were made with other code: {ran})"


def _timings_html(timings: dict) -> str:
    if not timings:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{t['seconds']:.1f}</td><td>{html.escape(t['status'])}</td>"
        f"<td>{html.escape(t.get('finished', ''))}</td></tr>"
        for n, t in timings.items()
    )
    total = sum(t["seconds"] for t in timings.values())
    return (
        '<table class="serlib-timings"><caption>Timings per stage: this execution of the notebooks</caption>'
        "<tr><th>Notebook</th><th>Seconds</th><th>Status</th><th>Finished</th></tr>"
        f"{rows}<tr><th>Total</th><th>{total:.1f}</th><th></th><th></th></tr></table>"
    )


def config_html(cfg: Config) -> str:
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    return (
        '<details class="serlib-config"><summary id="run-configuration">Run configuration '
        f"(resolved; also in config.resolved.yaml)</summary><pre>{html.escape(text)}</pre></details>"
    )


def failure_html(failure: Any, not_run: list[str]) -> str:
    where = f"cell {failure.cell_index}" if failure.cell_index is not None else "an unknown cell"
    later = f" Not run: {', '.join(not_run)}." if not_run else ""
    return (
        '<div class="serlib-banner serlib-banner-error"><b>This run FAILED.</b> Notebook '
        f'<a href="#nb-{failure.notebook}">{html.escape(failure.notebook)}</a> stopped at {where} '
        f"(<code>{html.escape(failure.first_line)}</code>): {html.escape(failure.detail)}. "
        f'<a href="#failure">Go to the failing cell</a>. The report shows what ran up to there.{later}</div>'
    )


def reused_html(timing: dict) -> str:
    when = f" ({html.escape(timing['finished'])})" if timing.get("finished") else ""
    if timing.get("status") == "failed":
        return (
            '<div class="serlib-banner serlib-banner-error">This notebook FAILED in an earlier invocation of '
            f"this run{when} and was not re-executed now: what follows is its partial output.</div>"
        )
    return (
        '<div class="serlib-banner serlib-banner-note">Executed by an earlier invocation of this run'
        f"{when}; not re-executed now.</div>"
    )


def toc_html(sections: list[tuple[str, str, list[tuple[str, str]]]], key_results: bool = False) -> str:
    """The contents: one collapsible entry per section (``(anchor, title, captions)``, the anchor ``nb-<name>``)
    listing the paper's tables and figures, then its supplement (``#supplement-<name>``) with this run's own."""
    items = (['<li><a href="#key-results">Key results</a></li>'] if key_results else []) + [
        '<li><a href="#run-identity">Run identity</a></li>',
        '<li><a href="#run-configuration">Run configuration</a></li>',
    ]
    for anchor, title, captions in sections:
        own = [(a, c) for a, c in captions if re.match(r"(Table|Fig\.|Figure) S", c)]
        paper = [(a, c) for a, c in captions if (a, c) not in own]
        sub = "".join(_toc_entry(a, c) for a, c in paper)
        if own:
            sub += (
                f'<li class="serlib-toc-supplement"><a href="#supplement-{anchor[len("nb-") :]}">Supplement '
                f"({len(own)})</a><ul>{''.join(_toc_entry(a, c) for a, c in own)}</ul></li>"
            )
        link = f'<a href="#{anchor}">{html.escape(title)}</a>'
        items.append(
            f'<li class="serlib-toc-section" data-section="{anchor}"><details><summary>{link}</summary><ul>{sub}</ul>'
            "</details></li>"
            if sub
            else f'<li class="serlib-toc-section" data-section="{anchor}">{link}</li>'
        )
    return (
        f'<nav class="serlib-toc"><h2 id="contents"><a href="#top">Contents</a></h2><ul>{"".join(items)}</ul></nav>'
        + TOC_SCRIPT
    )


def _toc_entry(anchor: str, caption: str) -> str:
    return f'<li><a href="#{anchor}" title="{html.escape(caption, quote=True)}">{html.escape(_short(caption))}</a></li>'


# The contents follow the reader: the section in view is highlighted and its entry opened; a link into a
# collapsed supplement opens it. Inline, so the report still opens offline.
TOC_SCRIPT = """<script>
(function () {
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1)), el = id && document.getElementById(id);
    for (var d = el; d; d = d.parentElement) { if (d.tagName === 'DETAILS') d.open = true; }
    if (el) el.scrollIntoView();
  }
  function current() {
    var anchors = document.querySelectorAll('.serlib-section-anchor'), now = null;
    anchors.forEach(function (a) { if (a.getBoundingClientRect().top < 120) now = a.id; });
    document.querySelectorAll('nav.serlib-toc li.serlib-toc-section').forEach(function (li) {
      var on = li.getAttribute('data-section') === now;
      li.classList.toggle('serlib-current', on);
      var d = li.querySelector('details');
      if (d && on && !d.dataset.seen) { d.open = true; d.dataset.seen = '1'; }
    });
  }
  window.addEventListener('hashchange', openTarget);
  window.addEventListener('scroll', current, {passive: true});
  window.addEventListener('load', function () { if (location.hash) openTarget(); current(); });
})();
</script>"""


def _short(caption: str, limit: int = 64) -> str:
    """A caption cut to ``limit`` characters at a word boundary (the contents list; the title holds it whole)."""
    return caption if len(caption) <= limit else caption[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def top_link_html() -> str:
    """The back-to-top link closing a section."""
    return '<p class="serlib-top"><a href="#top">↑ back to the top</a> · <a href="#contents">contents</a></p>'


_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">SERLIB_CSS</style>{%- endblock extra_css -%}
"""

REPORT_CSS = """
body.jp-Notebook { max-width: 1100px; margin: 0 auto; padding: 16px 28px 60px; }
.jp-Cell { padding: 2px 0; }
.jp-OutputArea-output { overflow-x: auto; }
.serlib-title { font-size: 1.9em; margin: 0.4em 0 0.6em; }
.serlib-banner { padding: 10px 14px; border-radius: 5px; margin: 8px 0; border-left: 6px solid; }
.serlib-banner-warning { background: #fff3cd; border-color: #d39e00; }
.serlib-banner-note { background: #eef5ff; border-color: #4a7fd0; }
.serlib-banner-error { background: #ffe3e3; border-color: #c62828; }
.jp-RenderedHTMLCommon table.serlib-identity, .jp-RenderedHTMLCommon table.serlib-timings
  { border-collapse: collapse; margin: 8px 0 14px; font-size: 0.92em; table-layout: auto; }
.jp-RenderedHTMLCommon table.serlib-identity { width: 100%; }
.jp-RenderedHTMLCommon table.serlib-identity th, .jp-RenderedHTMLCommon table.serlib-identity td,
.jp-RenderedHTMLCommon table.serlib-timings th, .jp-RenderedHTMLCommon table.serlib-timings td
  { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
.jp-RenderedHTMLCommon table.serlib-identity th { white-space: nowrap; color: #333; width: 10em; }
.jp-RenderedHTMLCommon table.serlib-identity tr:nth-child(odd) { background: #fafafa; }
table.serlib-timings caption { text-align: left; font-weight: bold; padding: 4px 0; }
details.serlib-config { margin: 8px 0 14px; }
details.serlib-config summary { cursor: pointer; font-weight: bold; font-size: 1.1em; }
details.serlib-config pre { background: #f6f8fa; padding: 10px; max-height: 480px; overflow: auto; font-size: 0.85em; }
nav.serlib-toc { background: #fafafa; border: 1px solid #e3e3e3; border-radius: 5px;
                 padding: 6px 18px; margin: 12px 0 24px; }
nav.serlib-toc ul { margin: 2px 0; }
nav.serlib-toc ul ul { font-size: 0.92em; }
.serlib-section-anchor { border-top: 2px solid #bbb; margin-top: 28px; }
div.serlib-table table, table.serlib-table { border-collapse: collapse; font-size: 0.92em; margin: 4px 0 10px;
  max-width: 100%; table-layout: auto; }
.jp-RenderedHTMLCommon table.serlib-table td, .jp-RenderedHTMLCommon table.serlib-table th
  { padding: 3px 8px; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
.jp-RenderedHTMLCommon table.serlib-table th { white-space: normal; font-weight: 600; border-bottom: 2px solid #bbb;
  vertical-align: bottom; }
.jp-RenderedHTMLCommon table.serlib-table .num { text-align: right; font-variant-numeric: tabular-nums; }
.jp-RenderedHTMLCommon table.serlib-table td.num { white-space: nowrap; }
.jp-RenderedHTMLCommon table.serlib-table .text { text-align: left; overflow-wrap: break-word; }
.jp-RenderedHTMLCommon table.serlib-table td.text { max-width: 28em; }
.jp-RenderedHTMLCommon table.serlib-table tr:nth-child(even) { background: #f7f7f7; }
.jp-RenderedHTMLCommon table.serlib-table .ci { color: #666; font-size: 0.85em; }
.jp-RenderedHTMLCommon table.serlib-transposed tbody th { text-align: left; font-weight: 600; white-space: normal;
  border-bottom: 1px solid #e0e0e0; }
.jp-RenderedHTMLCommon table.serlib-transposed td.num { white-space: normal; }
.serlib-caption, div.serlib-table > p:first-child { margin-top: 12px; }
:target { scroll-margin-top: 12px; }
section.serlib-key { background: #f3f8f1; border: 1px solid #b9d7ad; border-radius: 6px; padding: 6px 18px 10px;
  margin: 12px 0 18px; }
section.serlib-key h2 { margin-top: 6px; }
table.serlib-key-table { border-collapse: collapse; font-size: 1.05em; }
table.serlib-key-table th, table.serlib-key-table td { padding: 3px 14px 3px 0; text-align: left; }
table.serlib-key-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.serlib-top { text-align: right; font-size: 0.85em; margin: 10px 0 0; }
details.serlib-log { margin: 4px 0; font-size: 0.85em; color: #555; }
details.serlib-log pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f8fa; padding: 6px;
  max-height: 300px; overflow-y: auto; }
details.serlib-costs { margin: 6px 0 12px; }
details.serlib-costs summary { cursor: pointer; }
.jp-RenderedImage img, img.serlib-figure { max-width: 100%; height: auto; }
nav.serlib-toc details > summary { cursor: pointer; }
nav.serlib-toc ul ul a { display: inline-block; max-width: 100%; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; vertical-align: top; }
.jp-RenderedHTMLCommon table.serlib-key-table th { text-align: left; }
.jp-RenderedHTMLCommon table.serlib-key-table td.num { text-align: right; }
p.serlib-footnote { font-size: 0.85em; color: #555; margin: 0 0 8px; }
nav.serlib-toc details > summary::marker { color: #999; }
nav.serlib-toc li.serlib-current > a, nav.serlib-toc li.serlib-current > details > summary > a
  { font-weight: bold; color: #000; }
nav.serlib-toc li.serlib-current { background: #e8f0fb; border-radius: 3px; }
nav.serlib-toc li.serlib-toc-supplement > a { font-style: italic; }
p.serlib-scheme { font-size: 0.88em; color: #444; border-left: 3px solid #ccc; padding-left: 10px; }
details.serlib-supplement { margin: 18px 0 8px; border: 1px solid #d8d8d8; border-radius: 5px; padding: 4px 12px;
  background: #fcfcfc; }
details.serlib-supplement > summary { cursor: pointer; font-weight: bold; font-size: 1.05em; padding: 4px 0; }
a.serlib-csv { font-size: 0.8em; margin-left: 6px; padding: 0 4px; border: 1px solid #bbb; border-radius: 3px;
  text-decoration: none; }
.serlib-verdict { border-left: 4px solid #5b9a45; }
section.serlib-key h3 { font-size: 1.05em; margin: 12px 0 4px; }
ul.serlib-verdicts { margin: 4px 0 8px; padding-left: 1.2em; }
ul.serlib-verdicts li.serlib-yes b { color: #2e7d32; }
ul.serlib-verdicts li.serlib-no b { color: #8a4b00; }
.serlib-greyed { color: #999; }
/* The contents stay in view beside the report, on a laptop's width as on a wide screen. */
@media (min-width: 900px) {
  body.jp-Notebook { margin-left: 250px; }
  nav.serlib-toc { position: fixed; top: 0; left: 0; width: 232px; height: 100vh; overflow-y: auto; margin: 0;
    border-radius: 0; border-width: 0 1px 0 0; font-size: 0.82em; box-sizing: border-box; z-index: 10;
    padding: 6px 10px; }
  nav.serlib-toc ul { padding-left: 1.1em; }
}
@media (min-width: 1500px) {
  body.jp-Notebook { margin-left: max(300px, calc(50vw - 550px)); }
  nav.serlib-toc { width: 270px; font-size: 0.85em; padding: 6px 18px; }
}
"""


def render_html(nb: nbformat.NotebookNode) -> str:
    """Export a notebook with nbconvert's lab template, inputs hidden, no remote scripts."""
    # nbconvert (and its jinja2) load in ~1 s: only the export needs them
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        extra_loaders=[jinja2.DictLoader({"serlib_report.html.j2": _TEMPLATE.replace("SERLIB_CSS", REPORT_CSS)})],
        template_file="serlib_report.html.j2",
    )
    body, _ = exporter.from_notebook_node(nb)
    return _REMOTE_SCRIPT.sub("", body)
