"""The static gallery: a card per clip, paginated, offline, filterable by subset and phase, checked in a real
headless Chromium; and the same builder on a plain folder of generated mp4 + json/txt."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ophora.dataset.shards import iter_subset
from ophora.inspection.export import export_pairs
from ophora.inspection.gallery import build_gallery, folder_items, shard_items

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_SIZE = 5


@pytest.fixture(scope="module")
def site(shard_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = build_gallery(shard_items(str(shard_root)), out, title="Fixture clips", page_size=PAGE_SIZE)
    assert result.cards == 12 and result.problems == []
    return out


def _cards(html: str) -> list[str]:
    return re.findall(r'<article class="card"[^>]*>', html)


def test_gallery_has_a_card_per_clip_on_pages(site):
    pages = [site / "index.html", site / "page-0002.html", site / "page-0003.html"]
    assert [len(_cards(p.read_text())) for p in pages] == [5, 5, 2]
    assert not (site / "page-0004.html").exists()
    p2ft = [c for p in pages for c in _cards(p.read_text()) if "p2ft" in c]
    assert len(p2ft) == 7  # p2ft clips are shown once, badged with both subsets
    assert len(list((site / "thumbs").glob("*.jpg"))) == 12 and len(list((site / "previews").glob("*.webp"))) == 12


def test_gallery_needs_no_network(site):
    for path in [*site.glob("*.html"), *site.glob("*.js"), *(site / "assets").iterdir()]:
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), f"{path.name} reaches out"
    pages = json.loads((site / "pages.js").read_text().split("=", 1)[1].rstrip().rstrip(";"))
    assert [p["n"] for p in pages] == [5, 5, 2]


def test_folder_of_generated_videos(shard_root, tmp_path):
    folder = tmp_path / "generated"
    export_pairs(str(shard_root), folder, subsets=("p2ft",))
    first = sorted(folder.glob("*.mp4"))[0]
    first.with_suffix(".json").write_text(
        json.dumps({"prompt": "Polish the posterior capsule.", "phase": "capsule polishing", "seed": 7})
    )
    (folder / "broken.mp4").write_bytes(b"not a video")
    result = build_gallery(folder_items(folder), tmp_path / "site", title="Generated")
    assert result.cards == 8 and any("broken" in p for p in result.problems)
    html = (tmp_path / "site" / "index.html").read_text()
    assert "Polish the posterior capsule." in html and 'data-phase="capsule polishing"' in html
    assert "no preview" in html  # the undecodable one still has its card


def test_gallery_in_headless_chromium(site, shard_root, artifacts_dir):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    on_page_1 = list(iter_subset(str(shard_root), "tpt"))[:PAGE_SIZE]
    want_p2ft = sum(1 for s in on_page_1 if "p2ft" in s.meta["subsets"])
    phase = on_page_1[0].meta["phase"]
    want_phase = sum(1 for s in on_page_1 if s.meta["phase"] == phase)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto((site / "index.html").as_uri())
            visible = ".card:not(.hidden)"
            assert page.locator(visible).count() == PAGE_SIZE
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            widths = page.eval_on_selector_all("img.strip", "imgs => imgs.map(i => i.naturalWidth)")
            assert len(widths) == PAGE_SIZE and all(w > 0 for w in widths)
            page.screenshot(path=str(artifacts_dir / "gallery.png"))

            page.select_option("#subset", "p2ft")
            assert page.locator(visible).count() == want_p2ft < PAGE_SIZE
            assert page.locator("#shown").inner_text() == str(want_p2ft)
            page.select_option("#subset", "")
            page.select_option("#phase", phase)
            assert page.locator(visible).count() == want_phase < PAGE_SIZE
            assert set(page.eval_on_selector_all(visible, "cs => cs.map(c => c.dataset.phase)")) == {phase}
            pages_with_phase = {
                i // PAGE_SIZE + 1
                for i, s in enumerate(iter_subset(str(shard_root), "tpt"))
                if s.meta["phase"] == phase
            }
            listed = page.eval_on_selector_all(".pager a:not(.empty)", "as => as.map(a => Number(a.dataset.page))")
            assert set(listed) == pages_with_phase | {1} and len(listed) < 3  # pages.js knows the other pages

            # the filter travels with the page links, and pages without a match are hidden from the pager
            page.select_option("#phase", "")
            page.select_option("#subset", "p2ft")
            page.click(".pager a[data-page='2']")
            page.wait_for_url(re.compile(r"page-0002\.html\?subset=p2ft"))
            assert page.locator("#subset").input_value() == "p2ft"
            assert page.locator(visible).count() == sum(
                1
                for s in list(iter_subset(str(shard_root), "tpt"))[PAGE_SIZE : 2 * PAGE_SIZE]
                if "p2ft" in s.meta["subsets"]
            )
            page.screenshot(path=str(artifacts_dir / "gallery-p2ft-page2.png"))
        finally:
            browser.close()
