// A feature page (feature.html?id=N[&sae=K]): its record is loaded lazily from its shard file (works from a local
// folder, no fetch).
// Every piece of corpus text is set with textContent, never innerHTML, so markup in the corpus stays text.
const id = parseInt(new URLSearchParams(location.search).get("id"), 10);
const META = SAE_META.saes[PAGE_SAE];  // undefined when ?sae= names no SAE of this site
document.getElementById("meta").textContent = META ? META.label : SAE_META.title;
const text = (el, t) => { el.textContent = t; return el; };
const make = (tag, cls, t) => { const e = document.createElement(tag); if (cls) e.className = cls; if (t !== undefined) e.textContent = t; return e; };

let shownWith; const shown = new Promise(resolve => { shownWith = resolve; });
const whenShown = (fn) => shown.then(fn);  // run fn(record) once the feature's record is on the page

window.showFeature = function (rec) {
  document.title = "feature #" + rec.feature;
  text(document.getElementById("title"), "feature #" + rec.feature);
  const summary = rec.input_summary || {tokens: [], ngrams: []};
  for (const [t, share] of summary.tokens) document.getElementById("in-tokens").appendChild(make("span", "chip", `${JSON.stringify(t)} ${(100 * share).toFixed(0)}%`));
  if (!summary.tokens.length) document.getElementById("in-tokens").appendChild(make("span", "muted", "never fired on the corpus"));
  for (const [g, frac] of summary.ngrams) document.getElementById("in-ngrams").appendChild(make("span", "chip", `${JSON.stringify(g)} ${(100 * frac).toFixed(0)}%`));
  if (!summary.ngrams.length) document.getElementById("in-ngrams").appendChild(make("span", "muted", "none recurs"));
  const key = (t) => t.trim().toLowerCase();
  const heldOut = (rec.quantile_contexts || []).filter(q => q.quantile[0] >= 0.5).flatMap(q => q.contexts);
  if (heldOut.length) {
    const peaks = new Set(heldOut.map(c => key(c.tokens[c.peak])));
    const hit = summary.tokens.filter(([t]) => peaks.has(key(t))).map(([t]) => JSON.stringify(t));
    text(document.getElementById("in-check"), hit.length
      ? `✓ names the peak token of a held-out example (upper activation quantiles): ${hit.join(", ")}`
      : "✗ names none of the peak tokens of the held-out examples (upper activation quantiles)");
    document.getElementById("in-check").title = "A check of the summary on examples it did not see: the contexts sampled " +
      "from the upper activation quantiles (below). ✗ means none of their peak tokens is among the summary's tokens — " +
      "the summary may be right about the top contexts yet miss how the feature fires lower down.";
  }
  if (rec.mi_output_gain !== undefined) text(document.getElementById("mi-check"),
    `output-side score: steering with this feature raises these words' log-probability by ${rec.mi_output_gain.toFixed(2)} nats more than random words'`);
  showSteerability(rec);
  for (const line of qualityLines([META])) document.getElementById("quality").appendChild(make("div", "", line));
  const mi = document.getElementById("mi");
  for (const [w, s] of rec.mi_words) mi.appendChild(make("span", "chip", `${w} ${s.toFixed(3)}`));
  const variants = document.getElementById("mi-variants");
  for (const [name, words] of Object.entries(rec.mi_variants || {})) {
    const row = make("div", "variant"); row.appendChild(make("span", "muted", name + ": "));
    for (const [w] of words) row.appendChild(make("span", "chip", w));
    variants.appendChild(row);
  }
  showLens(rec);
  text(document.getElementById("topact"), rec.topact_tokens.map(([t, c]) => `${JSON.stringify(t)}×${c}`).join("  "));
  const box = document.getElementById("contexts");
  const max = Math.max(rec.max_act, 1e-9);
  const context = (c) => {
    const div = make("div", "ctx");
    div.appendChild(make("span", "actval", c.acts[c.peak].toFixed(2)));  // the peak's activation, always visible
    c.tokens.forEach((t, i) => {
      const s = make("span", "tok" + (i === c.peak ? " peak" : ""), t);
      const a = Math.max(0, c.acts[i]) / max;
      if (a > 0) s.style.background = `rgba(230, 97, 0, ${0.12 + 0.78 * a})`;
      s.title = c.acts[i].toFixed(3);
      div.appendChild(s);
    });
    return div;
  };
  for (const c of rec.top_contexts) box.appendChild(context(c));
  if (!rec.top_contexts.length) box.appendChild(make("div", "muted", "never fired on the corpus"));
  const qbox = document.getElementById("quantiles");
  for (const q of [...(rec.quantile_contexts || [])].reverse()) {  // highest quantile first
    qbox.appendChild(make("div", "muted", `activation quantile ${Math.round(100 * q.quantile[0])}–${Math.round(100 * q.quantile[1])}%`));
    for (const c of q.contexts) qbox.appendChild(context(c));
  }
  text(document.getElementById("density"), `fires on ${(100 * rec.frequency).toFixed(3)}% of tokens, max activation ${rec.max_act.toFixed(3)}`);
  // Neuronpedia's activation density: counts per activation bin, with axes, ticks and units
  const counts = rec.histogram.counts, edges = rec.histogram.edges, top = Math.max(...counts, 1);
  const W = 460, H = 150, L = 48, B = 34, pw = W - L - 24, ph = H - B - 8, bw = pw / counts.length;
  const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
  const el = (tag, attrs, txt) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (txt !== undefined) e.textContent = txt; svg.appendChild(e); return e; };
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "activation histogram");
  counts.forEach((n, i) => {
    const h = ph * n / top;
    const r = el("rect", {x: L + i * bw + 1, y: 8 + ph - h, width: Math.max(bw - 2, 1), height: h});
    r.appendChild(document.createElementNS(ns, "title")).textContent = `${n} tokens with activation ${edges[i].toPrecision(3)}–${edges[i + 1].toPrecision(3)}`;
  });
  el("line", {x1: L, y1: 8 + ph, x2: L + pw, y2: 8 + ph, class: "axis"});
  el("line", {x1: L, y1: 8, x2: L, y2: 8 + ph, class: "axis"});
  for (const f of [0, 0.5, 1]) {
    const x = L + f * pw, v = edges[0] + f * (edges[edges.length - 1] - edges[0]);
    el("line", {x1: x, y1: 8 + ph, x2: x, y2: 12 + ph, class: "axis"});
    el("text", {x, y: 24 + ph, "text-anchor": "middle", class: "tick"}, v.toPrecision(3));
    const y = 8 + ph - f * ph;
    el("text", {x: L - 4, y: y + 4, "text-anchor": "end", class: "tick"}, String(Math.round(f * top)));
  }
  el("text", {x: L + pw / 2, y: H - 1, "text-anchor": "middle", class: "label"}, "activation (SAE units), tokens where it fired");
  el("text", {x: 10, y: 8 + ph / 2, "text-anchor": "middle", class: "label", transform: `rotate(-90 10 ${8 + ph / 2})`}, "tokens");
  document.getElementById("hist").appendChild(svg);
  shownWith(rec);
};

// Neuronpedia's promote/suppress tables; a note when most promoted tokens are word pieces (no leading space, or
// not letters), which the logit lens gives for many features of small byte-level-BPE models.
function showLens(rec) {
  const values = rec.logit_values || {};
  for (const side of ["pos", "neg"]) {
    const table = document.getElementById("l" + side);
    rec.logit_tokens[side].forEach((t, i) => {
      const tr = make("tr"), td = make("td");
      td.appendChild(make("span", "chip" + (side === "neg" ? " neg" : ""), JSON.stringify(t))); tr.appendChild(td);
      const v = (values[side] || [])[i];
      tr.appendChild(make("td", "num", v === undefined ? "–" : (v > 0 ? "+" : "") + v.toFixed(2)));
      table.appendChild(tr);
    });
  }
  const pieces = rec.logit_tokens.pos.filter(t => !/^ [A-Za-z]{2,}$/.test(t));
  if (pieces.length * 2 >= rec.logit_tokens.pos.length && pieces.length) {
    const note = document.getElementById("lens-note"); note.hidden = false;
    note.textContent = `${pieces.length} of the ${rec.logit_tokens.pos.length} promoted tokens are word pieces or symbols ` +
      `(${pieces.slice(0, 4).map(t => JSON.stringify(t)).join(", ")}): on this model the logit lens often reads as sub-word junk. ` +
      `"Fires on" says what the feature reads; the Steering card says whether steering with it writes words.`;
  }
}

// Input / output scores (explain.steerability, Arad et al. 2025), where this feature ranks among all of them, a
// plain note when steering with it rarely writes what it fires on, and its measured steering curve if it has one.
function showSteerability(rec) {
  const box = document.getElementById("steerability");
  if (rec.output_score === undefined) { box.appendChild(make("div", "muted", "no scores: explain again with `python -m explain` (it scores every feature)")); return; }
  const pct = (v, key) => { const all = saeRows(PAGE_SAE).map(r => r[key]); return 100 * all.filter(x => x < v).length / all.length; };
  const line = (label, v, help) => { const d = make("div", "score", `${label}: ${v === null ? "–" : v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(1) : v.toPrecision(3)}`); d.title = help; box.appendChild(d); return d; };
  line("output score", rec.output_score, "Arad et al.: steer it on “From my experience,” — (1 − best rank of its logit-lens tokens / vocabulary) × their top probability");
  const c = line("content output score", rec.content_output_score, "the same over its logit lens's whole content words, counting only the probability the steer added");
  c.appendChild(make("span", "muted", ` (higher than ${pct(rec.content_output_score, 6).toFixed(0)}% of this SAE's features)`));
  line("input score", rec.input_score, "share of its top contexts whose peak token is among its logit-lens tokens: it reads what it writes");
  const fires = (rec.input_summary?.tokens || []).slice(0, 3).map(([t]) => JSON.stringify(t.trim())).join(", ");
  if (pct(rec.content_output_score, 6) < 50) box.appendChild(make("div", "note",
    `Fires on ${fires || "its top contexts"}, but steering with it rarely writes that: its output score is in the lower half of this SAE's features. ` +
    `For steering, pick a feature from the index sorted by "writes most".`));
  const cv = rec.steer_curve;
  if (!cv) return;
  const t = make("table", "curve"), head = make("tr");
  for (const h of ["strength (× max act)", "continuations changed", "contain its own words", "log-prob / token"]) head.appendChild(make("th", "", h));
  t.appendChild(head);
  const row = (cells) => { const tr = make("tr"); for (const x of cells) tr.appendChild(make("td", "", x)); t.appendChild(tr); };
  row(["0 (unsteered)", "–", `${(100 * cv.unsteered_words).toFixed(0)}%`, cv.unsteered_logprob.toFixed(2)]);
  cv.factors.forEach((m, i) => row([`${m}×`, `${(100 * cv.changed[i]).toFixed(0)}%`, `${(100 * cv.writes[i]).toFixed(0)}%`, cv.logprob[i].toFixed(2)]));
  box.appendChild(make("h4", "", "Measured steering curve (add, greedy, neutral prompts)"));
  box.appendChild(t);
}

const n = META ? META.n_features : 0, where = SAE_META.saes.length > 1 ? ` in ${META ? META.label : "this site"}` : "";
if (META && Number.isInteger(id) && id >= 0 && id < n) {
  const s = document.createElement("script");
  s.src = `${META.shards}${Math.floor(id / SAE_META.shard)}.js`;
  const missing = () => text(document.getElementById("title"), `no feature ${id}${where || " in this site"}`);
  s.onload = () => (window.SAE_SHARD && window.SAE_SHARD[id] ? window.showFeature(window.SAE_SHARD[id]) : missing());
  s.onerror = missing;
  document.body.appendChild(s);
} else {  // one clear message, no empty cards and no API calls
  const asked = new URLSearchParams(location.search);
  text(document.getElementById("title"), META ? `no feature ${asked.get("id")}: ids are 0..${n - 1}${where}`
                                              : `no SAE ${asked.get("sae")} in this site`);
  for (const card of document.querySelectorAll("main > .card, #quality")) card.hidden = true;
  const msg = make("div", "card note", META
    ? `There is no feature "${asked.get("id") ?? ""}"${where || " here"}: open feature.html?id=N with N from 0 to ${n - 1}, or search the index.`
    : `This site holds SAEs 0 to ${SAE_META.saes.length - 1} (${SAE_META.saes.map(m => m.label).join(", ")}): open feature.html?id=N&sae=K, or search the index.`);
  document.querySelector("main").prepend(msg);
}

// --- live: test your text, steer, nearest features --------------------------------------------------------
if (META && Number.isInteger(id)) liveInit(() => {
  const err = (el, e) => { el.textContent = e ? String(e.message || e) : ""; };
  document.getElementById("tt-go").onclick = async () => {
    const e = document.getElementById("tt-err"); err(e);
    try {
      const r = await api("api/activations", {text: document.getElementById("tt-text").value, feature: id});
      renderTokens(document.getElementById("tt-out"), r.tokens, r.acts, keptMax(r.acts, r.excluded), null, r.excluded);
    } catch (x) { err(e, x); }
  };
  // the record (max_act) loads asynchronously; the panel waits for it to set the default strength
  whenShown(rec => steerPanel(() => document.getElementById("st-self").checked ? [id] : [], rec.max_act, "this feature's",
                              rec.steer_curve));
  api(`api/nearest/${id}`).then(list => {
    const box = document.getElementById("nearest");
    for (const [f, c] of list) {  // each labelled with what it fires on (the index's input summary)
      const fires = (saeRows(PAGE_SAE).find(r => r[0] === f) || [])[4] || "";
      const a = mk("a", "chip", `#${f} cos ${c.toFixed(2)}` + (fires ? ` — ${fires.split(" ").slice(0, 3).join(" ")}` : ""));
      a.href = saeLink(PAGE_SAE, f); box.appendChild(a);
    }
  }).catch(() => {});
}, PAGE_SAE);
