"""`registry site`: the static catalogue, checked as bytes and driven in a real headless Chromium.

The browser tests serve the generated site with nginx on loopback, configured with the locations of
docs/nginx.conf (the documented way to publish it), and skip with one reason when Chromium or its
driver cannot be started.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from registry.index import build_index
from registry.site import CSP, link_ok, render_site, write_site
from tests.conftest import CORPUS, MANIFESTS, require_shared, run_cli
from tests.servers import nginx
from tests.test_remote import documented_locations

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# Every way a card could try to run code in the page; each payload would change the title or set a global.
HOSTILE = """# <img src=x onerror="document.title='pwned-title'; window.pwned='title'">

---
model-name: "<script>window.pwned='name'; alert(1)</script>evil"
backbone-name: '<img src=x onerror="window.pwned=''backbone''">net'
module-type: cv
train-dataset: '"><svg onload="window.pwned=''dataset''">'
mindspore-version: "2.10"
user-id: evil
infer-backend: cpu
repo-link: "javascript:window.pwned='repo'"
summary: '</p><script>window.pwned="summary"</script>.'
asset:
  - file-format: ckpt
    asset-link: "javascript:window.pwned='asset'"
    asset-sha256: 0000000000000000000000000000000000000000000000000000000000000000
---

## Hostile body

<script>window.pwned = "body"; document.title = "pwned"; alert(2)</script>

<img src=x onerror="window.pwned='img'; alert(3)">

<a href="javascript:window.pwned='raw-link'">raw link</a>

[click me](javascript:window.pwned='md-link')

[spaced](  JaVaScRiPt:window.pwned='spaced')

[entity](&#106;avascript:window.pwned='entity')

[data](data:text/html,<script>window.pwned='data'</script>)

![picture](javascript:window.pwned='image')

[a fine link](https://example.org/ok) and [a relative one](../../../mindspore/cpu/2.10/lenet_digits.md).
"""
HOSTILE_ID = "evil/cpu/2.10/evil_card"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The embedded registry plus one hostile card."""
    root = tmp_path_factory.mktemp("registry")
    shutil.copytree(MANIFESTS, root, dirs_exist_ok=True)
    card = root / (HOSTILE_ID + ".md")
    card.parent.mkdir(parents=True)
    card.write_text(HOSTILE)
    return root


@pytest.fixture(scope="module")
def site(tree) -> Path:
    write_site(tree)
    return tree


class _Elements(HTMLParser):
    """The tags and attributes of a page as a browser's tokenizer sees them."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


# --------------------------------------------------------------------------- the generated files


def test_site_pages_for_every_card_and_deterministic_bytes(tree, tmp_path):
    first, second = render_site(tree), render_site(tree)
    assert first == second
    ids = [r["id"] for r in build_index(tree)["cards"]]
    assert sorted(first) == sorted(["index.html", "site.css", "site.js"] + [i + ".html" for i in ids])
    # Written files are the rendered bytes, and a second run into another directory gives the same bytes.
    write_site(tree, tmp_path / "a")
    write_site(tree, tmp_path / "b")
    digests = [
        {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in d.rglob("*") if p.is_file()}
        for d in (tmp_path / "a", tmp_path / "b")
    ]
    assert digests[0] == digests[1] == {k: hashlib.sha256(v).hexdigest() for k, v in first.items()}
    for rel, blob in first.items():
        if rel.endswith(".html"):
            text = blob.decode()
            assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in text
            scripts = [a for tag, a in _Elements(text).tags if tag == "script"]
            up = "../" * rel.count("/")
            assert scripts == [{"src": up + "site.js", "defer": None}], rel
            assert not re.search(r"https?://[^\"]*\.(css|js)\b", text)  # nothing loaded from elsewhere


def test_list_page_has_every_model_server_side(site):
    text = (site / "index.html").read_text()
    rows = re.findall(r'<tr data-task="([^"]*)" data-ms="([^"]*)" data-fmt="([^"]*)"', text)
    assert len(rows) == 3
    # Oldest MindSpore version first, as `registry list`; the filter values are the release series.
    assert [ms for _, ms, _ in rows] == ["0.7", "2.10", "2.10"]
    assert ("cv-classification", "2.10", "ckpt npz") in rows
    assert "ckpt 207.3 KiB, npz 10.4 KiB" in text  # sizes measured for assets in the tree
    assert '<option value="cv">cv</option>' in text and '<option value="cv-classification">' in text
    assert re.search(
        r'<select name="ms"><option value="">all</option><option value="2.10">2.10</option>'
        r'<option value="0.7">0.7</option></select>',
        text,
    )
    assert '<form id="filters" role="search" aria-label="Filter models" hidden>' in text  # shown by the script only


def test_model_page_has_card_fields_assets_and_versions(site, tmp_path):
    text = (site / "mindspore/cpu/2.10/lenet_digits.html").read_text()
    assert "<h1>LeNet (8x8 digits)</h1>" in text
    assert '<code id="pull">registry pull mindspore/cpu/2.10/lenet_digits</code>' in text
    sha = "1c1929f599c2cfff39f4a91b921565d506a342a73c000710010b3aaa3f59014c"
    assert f'<td><code class="sha">{sha}</code></td>' in text
    assert '<a href="lenet_digits.ckpt">lenet_digits.ckpt</a></td><td>207.3 KiB</td>' in text
    assert '<tr><th scope="row">train-dataset</th><td>digits</td></tr>' in text
    assert "<h4>Introduction</h4>" in text and '<pre><code class="language-python">import numpy as np' in text
    assert 'href="../../../index.html"' in text
    assert "Problems" not in text  # a sound card
    # Two cards of one short name link to each other, oldest first; the page itself is not a link.
    tree = tmp_path / "tree"
    shutil.copytree(MANIFESTS, tree)
    old = tree / "mindspore/cpu/2.9/lenet_digits.md"
    old.parent.mkdir()
    old.write_text(
        (MANIFESTS / "mindspore/cpu/2.10/lenet_digits.md")
        .read_text()
        .replace("mindspore-version: 2.10", "mindspore-version: 2.9")
    )
    files = render_site(tree)
    new = files["mindspore/cpu/2.10/lenet_digits.html"].decode()
    versions = new[new.index('id="versions"') :]
    assert versions.index("mindspore/cpu/2.9/lenet_digits") < versions.index("mindspore/cpu/2.10/lenet_digits")
    assert '<a href="../../../mindspore/cpu/2.9/lenet_digits.html">' in versions
    assert '<li aria-current="page">mindspore/cpu/2.10/lenet_digits' in versions
    assert (
        '<a href="../../../mindspore/cpu/2.10/lenet_digits.html">'
        in files["mindspore/cpu/2.9/lenet_digits.html"].decode()
    )


def test_hostile_card_is_escaped(site):
    text = (site / (HOSTILE_ID + ".html")).read_text()
    tags = _Elements(text).tags
    assert [a for tag, a in tags if tag == "script"] == [{"src": "../../../site.js", "defer": None}]
    assert not [t for t, a in tags if t in ("img", "svg", "iframe", "object", "embed")]
    assert not [a for _, a in tags if any(k.startswith("on") for k in a)]
    hrefs = [a["href"] for t, a in tags if t == "a"]
    assert hrefs and all(link_ok(h) for h in hrefs), hrefs
    assert "https://example.org/ok" in hrefs and "../../../mindspore/cpu/2.10/lenet_digits.md" in hrefs
    assert "&lt;script&gt;window.pwned = &quot;body&quot;" in text  # shown as text
    # validate's findings are on the page: the digest of zeros, the javascript: links of the front matter.
    problems = text[text.index('id="problems"') : text.index("</section>", text.index('id="problems"'))]
    assert "schema-pattern" in problems and "asset-link" in problems


def test_link_ok():
    for good in ("https://a.org/x", "HTTP://a.org", "x.md", "../a/b.ckpt", "#intro", "//cdn.example/x", "a/b:c"):
        assert link_ok(good), good
    for bad in (
        "javascript:alert(1)",
        " JavaScript:x",
        "\x01javascript:x",
        "data:text/html,x",
        "file:///etc/passwd",
        "vbscript:x",
        "mailto:a@b",
    ):
        assert not link_ok(bad), bad


def test_cli_site(tree, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("site", str(tree), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "wrote 3 model pages and index.html" in proc.stdout and str(out) in proc.stdout
    assert "1 pages list problems" in proc.stdout
    assert (out / "index.html").is_file() and (out / "mindspore/ascend/0.7/ssd_v1_coco2017.html").is_file()
    proc = run_cli("site", str(tmp_path / "missing"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "is not a directory" in proc.stderr
    (tmp_path / "file").write_text("x")
    proc = run_cli("site", str(tree), "-o", str(tmp_path / "file"))
    assert proc.returncode == 2 and "give -o a directory" in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[test]'")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            f"chromium cannot be started: {CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except (WebDriverException, OSError) as exc:  # no browser, a driver of another version, no display...
        pytest.skip(f"chromium cannot be started: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(site):
    with nginx(site, locations=documented_locations()) as url:
        yield url


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def visible_rows(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#models tbody tr')].filter(r => !r.hidden)"
        ".map(r => r.querySelector('small.id').textContent)"
    )


def test_browser_list_filters_and_hash_round_trip(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    browser.get(served)
    assert browser.title == "Models"
    form = browser.find_element(By.ID, "filters")
    assert wait_for(form.is_displayed)
    assert sorted(visible_rows(browser)) == [
        "evil/cpu/2.10/evil_card",
        "mindspore/ascend/0.7/ssd_v1_coco2017",
        "mindspore/cpu/2.10/lenet_digits",
    ]
    # Keyboard only: focus the search box, type, tab to the task filter and choose with the arrow keys.
    search = browser.find_element(By.NAME, "q")
    search.send_keys("digits")  # "lenet" is also in mobi-lenet-V2
    assert wait_for(lambda: visible_rows(browser) == ["mindspore/cpu/2.10/lenet_digits"])
    assert browser.find_element(By.ID, "count").text == "1 of 3 models"
    assert browser.current_url.endswith("#q=digits")
    search.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
    Select(browser.find_element(By.NAME, "ms")).select_by_value("0.7")
    assert wait_for(lambda: visible_rows(browser) == ["mindspore/ascend/0.7/ssd_v1_coco2017"])
    Select(browser.find_element(By.NAME, "ms")).select_by_value("")
    task = browser.find_element(By.NAME, "task")
    search.send_keys(Keys.TAB)
    assert browser.switch_to.active_element == task
    task.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN)  # all -> cv -> cv-classification
    assert wait_for(lambda: browser.current_url.endswith("#task=cv-classification"))
    assert visible_rows(browser) == ["mindspore/cpu/2.10/lenet_digits"]
    # A shared URL restores the filters, and so does editing the hash.
    browser.get(served + "index.html#q=ssd&fmt=air&ms=0.7")
    assert wait_for(lambda: visible_rows(browser) == ["mindspore/ascend/0.7/ssd_v1_coco2017"])
    assert browser.find_element(By.NAME, "q").get_attribute("value") == "ssd"
    assert Select(browser.find_element(By.NAME, "fmt")).first_selected_option.get_attribute("value") == "air"
    browser.execute_script("location.hash = 'fmt=npz'")
    assert wait_for(lambda: visible_rows(browser) == ["mindspore/cpu/2.10/lenet_digits"])
    assert browser.find_element(By.NAME, "q").get_attribute("value") == ""
    browser.execute_script("location.hash = 'q=nothing-like-this'")
    assert wait_for(lambda: browser.find_element(By.ID, "none").is_displayed())
    browser.find_element(By.CSS_SELECTOR, "button[type=reset]").click()
    assert wait_for(lambda: len(visible_rows(browser)) == 3 and "#" not in browser.current_url)


def test_browser_list_without_script(browser, served):
    from selenium.webdriver.common.by import By

    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get(served + "#q=digits")
        rows = browser.find_elements(By.CSS_SELECTOR, "#models tbody tr")
        assert len(rows) == 3 and all(r.is_displayed() for r in rows)  # the whole list, unfiltered
        assert not browser.find_element(By.ID, "filters").is_displayed()  # no controls that would do nothing
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def test_browser_model_page(browser, served):
    from selenium.webdriver.common.by import By

    browser.get(served)
    browser.find_element(By.LINK_TEXT, "lenet_digits lenet").click()
    assert wait_for(lambda: browser.current_url.endswith("mindspore/cpu/2.10/lenet_digits.html"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "LeNet (8x8 digits)"
    card = browser.find_element(By.CSS_SELECTOR, "article.card")
    assert "Held-out accuracy: 98.33%" in card.text and card.find_element(By.TAG_NAME, "pre").is_displayed()
    cells = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in browser.find_elements(By.CSS_SELECTOR, "table.assets tbody tr")
    ]
    assert cells == [
        ["ckpt", "lenet_digits.ckpt", "207.3 KiB", "1c1929f599c2cfff39f4a91b921565d506a342a73c000710010b3aaa3f59014c"],
        [
            "npz",
            "lenet_digits_heldout.npz",
            "10.4 KiB",
            "c1ead5ee34741f927b14f44083504acdc085ca3ff3528cee4359b30ce374274e",
        ],
    ]
    # The asset link is the card's relative link, served beside the page: the bytes are the checkpoint.
    href = browser.find_element(By.LINK_TEXT, "lenet_digits.ckpt").get_attribute("href")
    assert href == served + "mindspore/cpu/2.10/lenet_digits.ckpt"
    button = browser.find_element(By.CSS_SELECTOR, "button.copy")
    assert button.is_displayed()
    button.click()
    assert wait_for(lambda: button.text == "Copied"), button.text
    # The copied text is the command: paste it into a text box.
    browser.execute_script("document.body.insertAdjacentHTML('beforeend', '<textarea id=paste></textarea>')")
    from selenium.webdriver.common.keys import Keys

    box = browser.find_element(By.ID, "paste")
    box.send_keys(Keys.CONTROL, "v")
    assert box.get_attribute("value") == "registry pull mindspore/cpu/2.10/lenet_digits"
    # No CSP violation, no script error (the site has no favicon; browsers ask for one anyway).
    assert [e for e in browser.get_log("browser") if "favicon.ico" not in e["message"]] == []


def test_browser_hostile_card_is_inert(browser, served):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    browser.get(served + quote(HOSTILE_ID) + ".html")
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "button.copy").is_displayed())
    # Every link the card body kept goes to an http(s) URL: none runs script when followed.
    for i in range(len(browser.find_elements(By.CSS_SELECTOR, "article.card a"))):
        link = browser.find_elements(By.CSS_SELECTOR, "article.card a")[i]
        assert link.get_attribute("href").startswith(("http://", "https://")), link.get_attribute("href")
    with pytest.raises(NoAlertPresentException):
        _ = browser.switch_to.alert
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    assert browser.title.startswith("evil_card") and "pwned" not in browser.title
    assert browser.execute_script("return [...document.scripts].map(s => s.getAttribute('src'))") == [
        "../../../site.js"
    ]
    assert (
        browser.execute_script("return document.querySelectorAll('img, svg, iframe, [onerror], [onload]').length") == 0
    )
    body = browser.find_element(By.CSS_SELECTOR, "article.card").text
    assert '<script>window.pwned = "body"' in body and "[click me](javascript:" in body  # shown, not run
    fields = browser.find_element(By.CSS_SELECTOR, "table.fields").text
    assert "<script>window.pwned='name'; alert(1)</script>evil" in fields and "<img src=x onerror=" in fields
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("<img src=x onerror=")
    assert browser.find_elements(By.CSS_SELECTOR, "section.problems li")


def test_browser_corpus_site(browser, tmp_path):
    corpus = require_shared(CORPUS)
    out = tmp_path / "site"
    report = write_site(corpus, out)
    assert report.pages == 2905
    assert report.list_bytes < 2 << 20, report.list_bytes
    with nginx(out, locations=documented_locations()) as url:
        browser.get(url)
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        assert wait_for(lambda: browser.find_element(By.ID, "filters").is_displayed())
        assert browser.execute_script("return document.querySelectorAll('#models tbody tr').length") == 2905
        browser.find_element(By.NAME, "q").send_keys("ssd")
        assert wait_for(
            lambda: (
                re.fullmatch(r"\d+ of 2905 models", browser.find_element(By.ID, "count").text)
                and int(browser.find_element(By.ID, "count").text.split()[0]) < 2905
            )
        )
        ssd = visible_rows(browser)
        assert ssd and browser.execute_script(  # every row shown holds the word, every row hidden lacks it
            "return [...document.querySelectorAll('#models tbody tr')].every(r => r.hidden !== "
            "(r.textContent + ' ' + r.dataset.text).toLowerCase().includes('ssd'))"
        )
        Select(browser.find_element(By.NAME, "ms")).select_by_value("1.8")
        rows = wait_for(lambda: (r := visible_rows(browser)) and all("/1.8/" in i for i in r) and r)
        assert rows and set(rows) < set(ssd)
        browser.get(url + quote(rows[0]) + ".html")
        assert browser.find_element(By.CSS_SELECTOR, "nav").text.endswith(rows[0])
        assert re.fullmatch(r"[0-9a-f]{64}", browser.find_element(By.CSS_SELECTOR, "table.assets code.sha").text)
