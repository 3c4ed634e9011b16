"""`registry site DIR [-o OUT]`: a static web catalogue of a registry tree, served beside its index.

Contract:
- Input: the records `index.build_index(DIR)` produces (the same ones `index.json` holds). The
  list page is made from the records alone. A model page also needs what a record does not carry
  (the Markdown body, every front matter field, validate's warnings): the generator reads each card
  file once, checks its bytes against the record's sha256 and parses them with the same parser.
- Output, under OUT (default: DIR itself, so that pages sit beside the cards and the relative links
  of cards and assets resolve once the directory is published): `index.html` (every model),
  `<card id>.html` per card, `site.css` and `site.js`. Each file is written atomically; stale pages
  of removed cards are not deleted. The same tree gives the same bytes (no timestamps, sorted).
- Safety: every text from a card is HTML-escaped; the Markdown body is rendered by markdown-it-py
  with raw HTML off and links limited to http(s) and relative URLs; images become links (the pages
  load nothing from elsewhere). Each page carries a Content-Security-Policy that allows only the
  site's own `site.js` and `site.css`, so even a rendering bug could not run a card's script.
- Without the script every page is complete (the whole list is rendered server-side); the script
  adds the search box and filters on the list page (state in the URL hash, e.g.
  `#q=ssd&task=cv&ms=1.8&fmt=ckpt`) and copy buttons on model pages.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shlex
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

from . import versions
from .cache import human_size, write_atomic
from .card import Card, Problem, parse_bytes
from .errors import UsageError
from .index import build_index, field_text
from .listing import by_version

CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class SiteReport:
    out: Path
    pages: int  # model pages written
    list_bytes: int  # size of index.html
    with_problems: int  # cards whose page lists errors or warnings


def esc(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def link_ok(url: str) -> bool:
    """Links a card may make: http(s) and relative URLs (browsers ignore leading blanks and controls)."""
    match = _SCHEME.match(url.lstrip("".join(map(chr, range(33)))))
    return match is None or match.group(1).lower() in ("http", "https")


# --------------------------------------------------------------------------- Markdown


def _markdown():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.validateLink = link_ok

    def shift_headings(state):  # the card's headings sit below the page's own h1 and h2
        for tok in state.tokens:
            if tok.type in ("heading_open", "heading_close"):
                tok.tag = f"h{min(6, int(tok.tag[1]) + 2)}"

    def image(self, tokens, idx, options, env):  # a link, not a load: the page fetches nothing from elsewhere
        tok = tokens[idx]
        alt = esc("image: " + (self.renderInlineAsText(tok.children or [], options, env) or "untitled"))
        src = tok.attrGet("src") or ""
        return f'<a href="{esc(src)}" rel="nofollow noopener noreferrer">[{alt}]</a>' if src else f"[{alt}]"

    def link_open(self, tokens, idx, options, env):
        if _SCHEME.match(tokens[idx].attrGet("href") or ""):
            tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
        return self.renderToken(tokens, idx, options, env)

    md.core.ruler.push("shift_headings", shift_headings)
    md.add_render_rule("image", image)
    md.add_render_rule("link_open", link_open)
    return md


# --------------------------------------------------------------------------- page parts


def _page(title: str, up: str, main: str, body_class: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="color-scheme" content="light dark">\n'
        f'<title>{esc(title)}</title>\n<link rel="stylesheet" href="{up}site.css">\n'
        f'<script src="{up}site.js" defer></script>\n</head>\n<body class="{body_class}">\n{main}</body>\n</html>\n'
    )


def _href(card_id: str, up: str = "") -> str:
    return up + quote(card_id + ".html", safe="/")


def _version_text(record: dict) -> str:
    declared = record["fields"].get("mindspore-version")
    if declared:
        return declared
    version = versions.card_version(None, record["id"])
    return f"{version} (from the path)" if version is not None else ""


def _series(record: dict) -> str:
    """The release series a card is for ("1.8" for 1.8.1), the value of the MindSpore filter."""
    version = versions.card_version(record["fields"].get("mindspore-version"), record["id"])
    return "" if version is None else ".".join(str(p) for p in (version.release + (0,))[:2])


def _formats(record: dict) -> list[str]:
    return list(dict.fromkeys(a["file-format"].lower() for a in record["assets"] if a["file-format"]))


def _asset_summary(record: dict) -> str:
    parts = []
    for a in record["assets"]:
        size = f" {human_size(a['size'])}" if isinstance(a.get("size"), int) else ""
        parts.append(esc((a["file-format"] or "?") + size))
    return ", ".join(parts)


def _tasks(records: list[dict]) -> list[str]:
    """Filter choices: every module-type and the families before a '-' ("cv" for cv-classification)."""
    found = set()
    for r in records:
        task = r["fields"].get("module-type", "").strip().lower()
        if task:
            found.add(task)
            found.add(task.split("-", 1)[0])
    return sorted(found)


def _options(values: list[str], labels: dict | None = None) -> str:
    return "".join(f'<option value="{esc(v)}">{esc((labels or {}).get(v, v))}</option>' for v in values)


# --------------------------------------------------------------------------- the list page


def list_page(data: dict) -> str:
    records = by_version(data["cards"])
    rows = []
    for r in records:
        f = r["fields"]
        name = r["id"].rsplit("/", 1)[-1]
        model = f.get("model-name", "")
        shown = esc(name) + (f" <small>{esc(model)}</small>" if model and model != name else "")
        problems = ' <small class="bad">invalid</small>' if r["problems"] else ""
        rows.append(
            f'<tr data-task="{esc(f.get("module-type", "").strip().lower())}" data-ms="{esc(_series(r))}" '
            f'data-fmt="{esc(" ".join(_formats(r)))}" data-text="{esc(f.get("summary", ""))}">'
            f'<td><a href="{esc(_href(r["id"]))}">{shown}</a>{problems}<br><small class="id">{esc(r["id"])}</small></td>'
            f"<td>{esc(f.get('module-type', ''))}</td><td>{esc(f.get('backbone-name', ''))}</td>"
            f"<td>{esc(f.get('train-dataset', ''))}</td><td>{esc(_version_text(r))}</td>"
            f"<td>{_asset_summary(r)}</td></tr>\n"
        )
    series = sorted({_series(r) for r in records} - {""}, key=lambda s: versions.parse(s), reverse=True)
    formats = sorted({fmt for r in records for fmt in _formats(r)})
    n = len(records)
    main = (
        "<header><h1>Models</h1>\n"
        f"<p>{n} model{'s' if n != 1 else ''}, oldest MindSpore version first. Each page shows the card, its files "
        'with their sha256 and the command that fetches them. The registry\'s <a href="index.json">index.json</a> '
        "lists the same cards.</p></header>\n<main>\n"
        '<form id="filters" role="search" aria-label="Filter models" hidden>\n'
        '<label>Search <input type="search" name="q" autocomplete="off" placeholder="name, backbone, dataset"></label>\n'
        f'<label>Task <select name="task"><option value="">all</option>{_options(_tasks(records))}</select></label>\n'
        f'<label>MindSpore <select name="ms"><option value="">all</option>{_options(series)}</select></label>\n'
        f'<label>Format <select name="fmt"><option value="">all</option>{_options(formats)}</select></label>\n'
        '<button type="reset">Clear</button>\n'
        f'<output id="count" aria-live="polite">{n} of {n} models</output>\n</form>\n'
        '<table id="models">\n<caption class="visually-hidden">Models of this registry</caption>\n'
        '<thead><tr><th scope="col">Name</th><th scope="col">Task</th><th scope="col">Backbone</th>'
        '<th scope="col">Dataset</th><th scope="col">MindSpore</th><th scope="col">Assets</th></tr></thead>\n'
        f'<tbody>\n{"".join(rows)}</tbody>\n</table>\n<p id="none" hidden>No model matches these filters.</p>\n</main>\n'
    )
    return _page("Models", "", main, "list")


# --------------------------------------------------------------------------- model pages


def _problem_items(problems: list[Problem], parse_errors: list[str]) -> str:
    items = [f'<li class="error"><span class="sev">error</span> {esc(p)}</li>' for p in parse_errors]
    for p in sorted(problems, key=lambda p: (p.severity != "error", p.line, p.col, p.rule)):
        where = f"line {p.line}:{p.col}: " if p.line else ""
        items.append(
            f'<li class="{esc(p.severity)}"><span class="sev">{esc(p.severity)}</span> '
            f"{esc(where)}<code>{esc(p.rule)}</code>: {esc(p.message)}</li>"
        )
    return "".join(items)


def _value(key: str, value) -> str:
    text = field_text(value) or ""
    if key.endswith("-link") and isinstance(value, str) and _SCHEME.match(text) and link_ok(text):
        return f'<a href="{esc(text)}" rel="nofollow noopener noreferrer">{esc(text)}</a>'
    return esc(text)


def model_page(record: dict, card: Card | None, lint: list[Problem], siblings: list[dict], md) -> str:
    card_id = record["id"]
    up = "../" * card_id.count("/")
    f = record["fields"]
    name = card_id.rsplit("/", 1)[-1]
    title = (card.title if card is not None else "") or f.get("model-name") or name
    command = f"registry pull {shlex.quote(card_id)}"
    out = [
        (
            f'<header><nav aria-label="Breadcrumb"><a href="{up}index.html">All models</a> / {esc(card_id)}</nav>\n'
            f"<h1>{esc(title)}</h1>\n"
        )
    ]
    if f.get("summary"):
        out.append(f'<p class="summary">{esc(f["summary"])}</p>\n')
    out.append(
        '</header>\n<main>\n<section aria-labelledby="get"><h2 id="get">Files</h2>\n'
        f'<p><code id="pull">{esc(command)}</code> '
        f'<button type="button" class="copy" data-copy="{esc(command)}" hidden>Copy command</button></p>\n'
    )
    if record["assets"]:
        out.append(
            '<table class="assets"><thead><tr><th scope="col">Format</th><th scope="col">File</th>'
            '<th scope="col">Size</th><th scope="col">sha256</th></tr></thead><tbody>\n'
        )
        for a in record["assets"]:
            link = a["link"]
            shown = posixpath.basename(link.rstrip("/")) or link
            file = f'<a href="{esc(link)}">{esc(shown)}</a>' if link and link_ok(link) else esc(link)
            size = human_size(a["size"]) if isinstance(a.get("size"), int) else "not measured (remote)"
            out.append(
                f"<tr><td>{esc(a['file-format'])}</td><td>{file}</td><td>{esc(size)}</td>"
                f'<td><code class="sha">{esc(a["sha256"])}</code></td></tr>\n'
            )
        out.append("</tbody></table>\n")
    else:
        out.append("<p>This card lists no asset.</p>\n")
    out.append("</section>\n")
    if record["problems"] or lint:
        out.append(
            '<section aria-labelledby="problems" class="problems"><h2 id="problems">Problems</h2>\n'
            f"<p>What <code>registry validate {esc(shlex.quote(record['path']))}</code> reports:</p>\n"
            f"<ul>{_problem_items(lint, record['problems'])}</ul></section>\n"
        )
    if len(siblings) > 1:
        items = []
        for s in siblings:
            label = f"{esc(s['id'])} <small>MindSpore {esc(_version_text(s) or 'unknown')}</small>"
            items.append(
                f'<li aria-current="page">{label} (this page)</li>'
                if s["id"] == card_id
                else f'<li><a href="{esc(_href(s["id"], up))}">{label}</a></li>'
            )
        out.append(
            '<section aria-labelledby="versions"><h2 id="versions">Versions</h2>\n'
            f"<p>Cards named {esc(name)}, oldest MindSpore version first:</p><ul>{''.join(items)}</ul></section>\n"
        )
    if card is not None and card.body.strip():
        out.append(
            '<section aria-labelledby="card"><h2 id="card">Card</h2>\n'
            f'<article class="card">\n{md.render(card.body)}</article></section>\n'
        )
    fields = [(k, v) for k, v in (card.fields.items() if card is not None else ()) if k != "asset"]
    if fields:
        rows = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{_value(k, v)}</td></tr>\n' for k, v in fields)
        out.append(
            '<section aria-labelledby="fm"><h2 id="fm">Front matter</h2>\n'
            f'<table class="fields"><tbody>\n{rows}</tbody></table></section>\n'
        )
    raw = [f'<a href="{esc(quote(posixpath.basename(record["path"])))}">{esc(posixpath.basename(record["path"]))}</a>']
    raw += [
        f'<a href="{esc(quote(posixpath.basename(t)))}">{esc(posixpath.basename(t))}</a>'
        for t in record.get("translations", ())
    ]
    out.append(f"<footer><p>Card source: {', '.join(raw)}</p></footer>\n</main>\n")
    return _page(f"{name} (MindSpore {_version_text(record) or 'unknown'})", up, "".join(out), "model")


def _read_card(root: Path, record: dict) -> Card | None:
    """The card a record describes, parsed from the bytes the record's sha256 names (None if unreadable)."""
    if record["sha256"] is None:
        return None
    try:
        raw = (root / record["path"]).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {root / record['path']} to write its page: {exc.strerror or exc}") from None
    if hashlib.sha256(raw).hexdigest() != record["sha256"]:
        raise UsageError(f"{root / record['path']} changed while the site was generated: run `registry site` again")
    return parse_bytes(raw, record["path"])


# --------------------------------------------------------------------------- the site


def _render(root: str | os.PathLike) -> tuple[dict[str, bytes], int]:
    from .lint import check_card, check_set

    data = build_index(root)
    root = Path(root).resolve()
    cards = {r["id"]: _read_card(root, r) for r in data["cards"]}
    lint = {
        i: (check_card(c) if c is not None and (c.data is not None or c.fm_close) else []) for i, c in cards.items()
    }
    by_path = {r["path"]: r["id"] for r in data["cards"]}
    for p in check_set([c for c in cards.values() if c is not None]):  # cross-card warnings, as validate gives
        lint[by_path[p.path]].append(p)
    by_id = {r["id"]: r for r in data["cards"]}
    md = _markdown()
    files = {"index.html": list_page(data).encode(), "site.css": CSS.encode(), "site.js": JS.encode()}
    for r in data["cards"]:
        siblings = by_version(by_id[i] for i in data["collisions"].get(r["id"].rsplit("/", 1)[-1], ()))
        files[r["id"] + ".html"] = model_page(r, cards[r["id"]], lint[r["id"]], siblings, md).encode()
    return files, sum(1 for r in data["cards"] if r["problems"] or lint[r["id"]])


def render_site(root: str | os.PathLike) -> dict[str, bytes]:
    """Every file of the site of registry tree `root`: relative POSIX path -> bytes."""
    return _render(root)[0]


def write_site(root: str | os.PathLike, out: str | os.PathLike | None = None) -> SiteReport:
    """Write the site of `root` into `out` (default: `root`)."""
    target = Path(out) if out is not None else Path(root)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is not a directory: give -o a directory for the site")
    files, with_problems = _render(root)
    try:
        for rel, blob in sorted(files.items()):
            write_atomic(target.joinpath(*rel.split("/")), blob)
    except OSError as exc:
        raise UsageError(
            f"cannot write the site into {target}: {exc.strerror or exc}; check the directory's permissions"
        ) from None
    return SiteReport(target, len(files) - 3, len(files["index.html"]), with_problems)


# --------------------------------------------------------------------------- the static files

CSS = """\
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fff; --muted: #595959; --line: #d0d0d0;
  --link: #0645ad; --bad: #a40000; --warn: #7a5200; --code: #f3f3f3; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e6e6; --bg: #161616; --muted: #a8a8a8; --line: #3c3c3c;
    --link: #8ab4f8; --bad: #ff8a80; --warn: #ffd180; --code: #262626; }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }  /* over `form { display: flex }`: the filters wait for the script */
body { margin: 0 auto; max-width: 80rem; padding: 1rem 1.5rem 3rem; color: var(--fg); background: var(--bg);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
a { color: var(--link); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible {
  outline: 3px solid var(--link); outline-offset: 2px; }
h1 { font-size: 1.8rem; margin: .5rem 0; }
h2 { font-size: 1.35rem; margin-top: 2rem; border-bottom: 1px solid var(--line); }
small { color: var(--muted); }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .9em; }
code { background: var(--code); padding: 0 .2em; border-radius: 3px; }
pre { background: var(--code); padding: .75rem; overflow-x: auto; border-radius: 4px; }
pre code { padding: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid var(--line); }
thead th { position: sticky; top: 0; background: var(--bg); border-bottom: 2px solid var(--line); }
#models td { overflow-wrap: anywhere; }
.sha { overflow-wrap: anywhere; }
.fields th { width: 14rem; font-weight: 600; }
.card { overflow-wrap: break-word; }
.card table { width: auto; }
form { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; margin: 1rem 0; }
label { display: flex; flex-direction: column; font-size: .9rem; color: var(--muted); }
input, select, button { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line);
  border-radius: 4px; padding: .3rem .5rem; }
input[type=search] { min-width: 18rem; }
button { cursor: pointer; }
output { margin-left: auto; color: var(--muted); }
.bad, .problems .error .sev { color: var(--bad); font-weight: 600; }
.problems .warning .sev { color: var(--warn); font-weight: 600; }
.summary { font-size: 1.1rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
footer { margin-top: 2rem; color: var(--muted); }
"""

# Filters the rows the page already holds; no data is fetched. The URL hash holds the state.
JS = """\
"use strict";
(function () {
  function filters(form) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("#models tbody tr"));
    var hay = rows.map(function (r) { return (r.textContent + " " + r.dataset.text).toLowerCase(); });
    var count = document.getElementById("count"), none = document.getElementById("none");
    var names = ["q", "task", "ms", "fmt"];
    function state() {
      var p = new URLSearchParams();
      names.forEach(function (n) { var v = form.elements[n].value.trim(); if (v) p.set(n, v); });
      return p;
    }
    function apply() {
      var p = state(), words = (p.get("q") || "").toLowerCase().split(/\\s+/).filter(Boolean);
      var task = p.get("task") || "", ms = p.get("ms") || "", fmt = p.get("fmt") || "", shown = 0;
      rows.forEach(function (r, i) {
        var t = r.dataset.task, ok = words.every(function (w) { return hay[i].indexOf(w) >= 0; })
          && (!task || t === task || t.indexOf(task + "-") === 0)
          && (!ms || r.dataset.ms === ms)
          && (!fmt || r.dataset.fmt.split(" ").indexOf(fmt) >= 0);
        r.hidden = !ok;
        if (ok) shown++;
      });
      count.textContent = shown + " of " + rows.length + " models";
      none.hidden = shown > 0;
      return p;
    }
    function fromHash() {
      var p = new URLSearchParams(location.hash.slice(1));
      names.forEach(function (n) {
        var el = form.elements[n];
        el.value = p.get(n) || "";
        if (el.selectedIndex === -1) el.value = "";  // a choice this registry does not have: all
      });
      apply();
    }
    function changed() {
      var h = apply().toString();
      history.replaceState(null, "", h ? "#" + h : location.pathname + location.search);
    }
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    form.addEventListener("reset", function () { setTimeout(changed, 0); });
    window.addEventListener("hashchange", fromHash);
    form.hidden = false;
    fromHash();
  }
  function copyButton(b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var text = b.dataset.copy;
      function done(ok) { b.textContent = ok ? "Copied" : "Press Ctrl+C to copy"; }
      function fallback() {
        var code = document.getElementById("pull"), range = document.createRange(), sel = getSelection();
        range.selectNodeContents(code); sel.removeAllRanges(); sel.addRange(range);
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        done(ok);
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
      } else {
        fallback();
      }
    });
  }
  var form = document.getElementById("filters");
  if (form) filters(form);
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), copyButton);
})();
"""
