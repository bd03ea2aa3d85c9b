// Index: every feature as [id, frequency, "mi words", "logit tokens", "input summary tokens", "top-context peak
// tokens", content output score, input score, SAE]; filtering happens here, client-side. A word matches any of the
// four word lists, in every SAE of the site. "steers only" keeps each SAE's top 10 % by content output score
// (explain.steerability).
const rows = document.getElementById("rows"), q = document.getElementById("q"), sort = document.getElementById("sort");
const steersOnly = document.getElementById("steers");
SAE_INDEX.forEach((f, i) => { f.row = i; });  // the search's postings name rows
const many = SAE_META.saes.length > 1, only = document.getElementById("sae");
const steerCut = SAE_META.saes.map((_, k) => {
  const scored = saeRows(k).filter(f => f[6] !== null && f[6] !== undefined).map(f => f[6]).sort((a, b) => b - a);
  return scored.length ? scored[Math.max(0, Math.floor(scored.length / 10) - 1)] : Infinity;
});
if (many) {  // one column and one filter saying whose each feature is
  document.querySelector("thead tr").insertBefore(mk("th", "", "SAE"), document.querySelector("thead th:nth-child(2)"));
  only.hidden = false;
  SAE_META.saes.forEach((m, k) => { const o = mk("option", "", m.label); o.value = k; only.appendChild(o); });
}
if (steerCut.every(c => c === Infinity)) { steersOnly.disabled = true; steersOnly.parentElement.title = "these explanations carry no output scores"; }
const LIMIT = 300;
document.getElementById("meta").textContent = SAE_META.title;
for (const line of qualityLines(SAE_META.saes)) document.getElementById("quality").appendChild(mk("div", "", line));

function cell(text, cls) { const td = document.createElement("td"); if (cls) td.className = cls; td.textContent = text; return td; }

// The search: the same logic as explain/search.py over the index it built (SAE_SEARCH): a query word matches its
// own stem fully and, from min_prefix letters on, every indexed word it starts at prefix_weight; a feature
// scores its best-matching stem per query word, summed over the query's words.
const S = window.SAE_SEARCH || {stem: {}, postings: {}, fields: [], prefix_weight: 0.5, min_prefix: 3};
const indexWords = Object.keys(S.stem);
const words = (t) => t.toLowerCase().match(/[0-9a-zà-ÿ]+/g) || [];
function matches(word) {
  const out = new Map();
  const own = S.stem[word] || (S.forms || {})[word] || stemGuess(word);
  if (S.postings[own]) out.set(own, 1);
  if (word.length >= S.min_prefix)
    for (const w of indexWords) if (w.startsWith(word) && !out.has(S.stem[w]) && S.postings[S.stem[w]]) out.set(S.stem[w], S.prefix_weight);
  return out;
}
// A query word that is neither indexed nor among the frequent English forms: its stem is unknown here, so take the
// longest indexed stem (of at least min_prefix letters) that the query starts with (songwriting → songwrit).
function stemGuess(word) {
  let best = word;
  for (const w of indexWords) if (word.startsWith(S.stem[w]) && S.stem[w].length >= S.min_prefix && S.stem[w].length > (S.stem[best] || "").length) best = w;
  return S.stem[best] || word;
}
function search(query) {
  const score = new Map(), bits = new Map(), hit = new Map();
  for (const word of new Set(words(query))) {
    const best = new Map();
    for (const [stem, weight] of matches(word)) for (const [row, v, b] of S.postings[stem]) {
      best.set(row, Math.max(best.get(row) || 0, weight * v)); bits.set(row, (bits.get(row) || 0) | b);
      if (!hit.has(row)) hit.set(row, new Set()); hit.get(row).add(stem);
    }
    for (const [row, v] of best) score.set(row, (score.get(row) || 0) + v);
  }
  return {score, bits, hit};
}

function chips(td, list, hits) {
  for (const w of list.split(" ").filter(Boolean)) {
    const s = document.createElement("span"); s.textContent = w;
    if (hits && [...hits].some(h => w.toLowerCase().startsWith(h))) s.className = "hit";
    td.appendChild(s);
  }
}

function render() {
  const term = q.value.trim();
  let list = SAE_INDEX, found = null;
  const nothing = document.getElementById("nothing"); nothing.hidden = true;
  if (term.startsWith("#") || /^\d+$/.test(term)) {
    const id = parseInt(term.replace("#", ""), 10);
    list = list.filter(f => f[0] === id);
  } else if (words(term).length) {
    found = search(term);
    list = list.filter(f => found.score.has(f.row));
    if (!list.length) {
      const near = indexWords.filter(w => w.slice(0, 2) === words(term)[0].slice(0, 2)).slice(0, 8);
      nothing.textContent = `Nothing found for "${term}": searched what each of the ${SAE_INDEX.length} features` +
        (many ? ` of ${SAE_META.saes.length} SAEs` : "") + ` fires on, ` +
        `its top contexts, MI words and logit lens. Try a shorter prefix, a related word` +
        (near.length ? ` (indexed words like: ${near.join(", ")})` : "") + `, or #id.`;
      nothing.hidden = false;
    }
  }
  if (many && only.value !== "") list = list.filter(f => f[8] === Number(only.value));
  if (steersOnly.checked) list = list.filter(f => f[6] !== null && f[6] >= steerCut[f[8]] && f[6] > 0);
  if (sort.value === "relevance" && found) list = [...list].sort((a, b) => found.score.get(b.row) - found.score.get(a.row) || a.row - b.row);
  if (sort.value === "writes") list = [...list].sort((a, b) => (b[6] ?? -1) - (a[6] ?? -1));
  if (sort.value === "reads") list = [...list].sort((a, b) => (b[7] ?? -1) - (a[7] ?? -1));
  if (sort.value === "freq") list = [...list].sort((a, b) => b[1] - a[1]);
  if (sort.value === "rare") list = [...list].sort((a, b) => a[1] - b[1]);
  rows.replaceChildren();
  for (const f of list.slice(0, LIMIT)) {
    const tr = document.createElement("tr");
    const a = document.createElement("a");
    a.href = saeLink(f[8], f[0]); a.textContent = "#" + f[0]; a.className = "feature-link";
    const td = document.createElement("td"); td.appendChild(a); tr.appendChild(td);
    if (many) tr.appendChild(cell(SAE_META.saes[f[8]].label, "sae"));
    const fields = found ? S.fields.filter((_, b) => (found.bits.get(f.row) >> b) & 1).join(", ") : "";
    tr.appendChild(cell(fields, "matched"));
    tr.appendChild(cell((100 * f[1]).toFixed(3) + "%"));
    const hits = found ? found.hit.get(f.row) : null;
    for (const words of [f[4] || "", f[2]]) {  // input side (what fires it), then output side (what it writes)
      const td = document.createElement("td"); td.className = "words"; chips(td, words, hits); tr.appendChild(td);
    }
    tr.appendChild(cell(f[3]));
    tr.appendChild(cell(f[6] === null || f[6] === undefined ? "–" : f[6].toPrecision(2), "num"));
    rows.appendChild(tr);
  }
  document.getElementById("count").textContent =
    `${list.length} features` + (list.length > LIMIT ? ` (first ${LIMIT} shown)` : "");
}
for (const el of [sort, steersOnly, only]) el.addEventListener("change", render);
q.addEventListener("input", render);
const params = new URLSearchParams(location.search); if (params.get("q")) q.value = params.get("q");
render();

// --- live: the top features of every token of a typed text, each linking to its page ------------------------
liveInit((k) => {
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
        for (const [f, a] of r.top[i]) { const l = mk("a", "chip feature-link", `#${f} ${a.toFixed(2)}`); l.href = saeLink(k, f); td.appendChild(l); }
        tr.appendChild(td); table.appendChild(tr);
      });
    } catch (x) { e.textContent = String(x.message || x); }
  };
});
