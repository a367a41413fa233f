// Ophora gallery: filters cards on this page by subset and phase, keeps the filter in the URL so page links
// carry it, and uses pages.js (per-page counts) to show only the pages that hold matches. Works from file://.
(function () {
  "use strict";
  var subsetSel = document.getElementById("subset");
  var phaseSel = document.getElementById("phase");
  var cards = Array.prototype.slice.call(document.querySelectorAll(".card"));
  var pages = window.GALLERY_PAGES || [];

  function params() { return new URLSearchParams(window.location.search); }

  function matches(subsets, phase) {
    var s = subsetSel.value, p = phaseSel.value;
    return (!s || subsets.indexOf(s) >= 0) && (!p || phase === p);
  }

  function pageMatches(page) {
    if (!subsetSel.value && !phaseSel.value) { return page.n; }
    var n = 0;
    page.combos.forEach(function (combo) {  // [subsets, phase, cards]
      if (matches(combo[0], combo[1])) { n += combo[2]; }
    });
    return n;
  }

  function apply() {
    var shown = 0;
    cards.forEach(function (card) {
      var ok = matches((card.dataset.subsets || "").split(" "), card.dataset.phase || "");
      card.classList.toggle("hidden", !ok);
      if (ok) { shown += 1; }
    });
    document.getElementById("shown").textContent = String(shown);
    var q = new URLSearchParams();
    if (subsetSel.value) { q.set("subset", subsetSel.value); }
    if (phaseSel.value) { q.set("phase", phaseSel.value); }
    var query = q.toString() ? "?" + q.toString() : "";
    document.querySelectorAll(".pager a").forEach(function (a) {
      var page = pages[Number(a.dataset.page) - 1];
      a.href = a.getAttribute("href").split("?")[0] + query;
      if (page) {
        var n = pageMatches(page);
        a.classList.toggle("empty", n === 0 && !a.classList.contains("current"));
        a.title = n + " matching clips";
      }
    });
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname + query);
    }
  }

  var p = params();
  if (p.get("subset")) { subsetSel.value = p.get("subset"); }
  if (p.get("phase")) { phaseSel.value = p.get("phase"); }
  subsetSel.addEventListener("change", apply);
  phaseSel.addEventListener("change", apply);

  // animated preview while hovered, the still strip otherwise
  document.querySelectorAll("img.strip[data-preview]").forEach(function (img) {
    var still = img.getAttribute("src");
    img.addEventListener("mouseenter", function () { img.src = img.dataset.preview; });
    img.addEventListener("mouseleave", function () { img.src = still; });
  });
  apply();
})();
