// Index: every feature as [id, frequency, "mi words", "logit tokens", "input summary tokens", "top-context peak
// tokens", content output score, input score]; filtering happens here, client-side. A word matches any of the four
// word lists. "steers only" keeps the top 10 % by content output score (explain.steerability).
const rows = document.getElementById("rows"), q = document.getElementById("q"), sort = document.getElementById("sort");
const steersOnly = document.getElementById("steers");
const scored = SAE_INDEX.filter(f => f[6] !== null && f[6] !== undefined).map(f => f[6]).sort((a, b) => b - a);
const steerCut = scored.length ? scored[Math.max(0, Math.floor(scored.length / 10) - 1)] : Infinity;
if (!scored.length) { steersOnly.disabled = true; steersOnly.parentElement.title = "these explanations carry no output scores"; }
const LIMIT = 300;
document.getElementById("meta").textContent = SAE_META.title;
for (const line of qualityLines(SAE_META.quality)) document.getElementById("quality").appendChild(mk("div", "", line));

function cell(text, cls) { const td = document.createElement("td"); if (cls) td.className = cls; td.textContent = text; return td; }

function render() {
  const term = q.value.trim().toLowerCase();
  let list = SAE_INDEX;
  if (term.startsWith("#") || /^\d+$/.test(term)) {
    const id = parseInt(term.replace("#", ""), 10);
    list = list.filter(f => f[0] === id);
  } else if (term) {
    const has = (words) => (words || "").toLowerCase().split(" ").includes(term);
    list = list.filter(f => has(f[2]) || has(f[4]) || has(f[5]) || f[3].toLowerCase().includes(term));
  }
  if (steersOnly.checked) list = list.filter(f => f[6] !== null && f[6] >= steerCut && f[6] > 0);
  if (sort.value === "writes") list = [...list].sort((a, b) => (b[6] ?? -1) - (a[6] ?? -1));
  if (sort.value === "reads") list = [...list].sort((a, b) => (b[7] ?? -1) - (a[7] ?? -1));
  if (sort.value === "freq") list = [...list].sort((a, b) => b[1] - a[1]);
  if (sort.value === "rare") list = [...list].sort((a, b) => a[1] - b[1]);
  rows.replaceChildren();
  for (const f of list.slice(0, LIMIT)) {
    const tr = document.createElement("tr");
    const a = document.createElement("a");
    a.href = "feature.html?id=" + f[0]; a.textContent = "#" + f[0]; a.className = "feature-link";
    const td = document.createElement("td"); td.appendChild(a); tr.appendChild(td);
    tr.appendChild(cell((100 * f[1]).toFixed(3) + "%"));
    for (const list of [f[4] || "", f[2]]) {  // input side (what fires it), then output side (what it writes)
      const words = document.createElement("td"); words.className = "words";
      for (const w of list.split(" ").filter(Boolean)) { const s = document.createElement("span"); s.textContent = w; words.appendChild(s); }
      tr.appendChild(words);
    }
    tr.appendChild(cell(f[3]));
    tr.appendChild(cell(f[6] === null || f[6] === undefined ? "–" : f[6].toPrecision(2), "num"));
    rows.appendChild(tr);
  }
  document.getElementById("count").textContent =
    `${list.length} features` + (list.length > LIMIT ? ` (first ${LIMIT} shown)` : "");
}
q.addEventListener("input", render); sort.addEventListener("change", render); steersOnly.addEventListener("change", render);
const params = new URLSearchParams(location.search); if (params.get("q")) q.value = params.get("q");
render();

// --- live: the top features of every token of a typed text, each linking to its page ------------------------
liveInit(() => {
  document.getElementById("tt-go").onclick = async () => {
    const e = document.getElementById("tt-err"); e.textContent = "";
    try {
      const r = await api("api/activations", {text: document.getElementById("tt-text").value});
      const best = r.top.map(t => (t.length ? t[0][1] : 0));
      renderTokens(document.getElementById("tt-out"), r.tokens, best, keptMax(best, r.excluded), null, r.excluded);
      const table = document.getElementById("tt-table"); table.replaceChildren();
      r.tokens.forEach((tok, i) => {
        const tr = mk("tr"); tr.appendChild(mk("td", "tok", JSON.stringify(tok)));
        const td = mk("td", "words");
        for (const [f, a] of r.top[i]) { const l = mk("a", "chip feature-link", `#${f} ${a.toFixed(2)}`); l.href = `feature.html?id=${f}`; td.appendChild(l); }
        tr.appendChild(td); table.appendChild(tr);
      });
    } catch (x) { e.textContent = String(x.message || x); }
  };
});
