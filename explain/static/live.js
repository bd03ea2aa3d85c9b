// Live parts of the browser: shown only when the page is served by `python -m explain.browse serve --live`
// (GET /api/health answers). Text from the model or the user is set with textContent only, never innerHTML.
window.LIVE = null;
const mk = (tag, cls, t) => { const e = document.createElement(tag); if (cls) e.className = cls; if (t !== undefined) e.textContent = t; return e; };

// How far each explanation can be trusted, measured when the site was built (shared by both pages): each given
// SAE's lines (labelled when there are several), then the note on what each side describes, once.
function qualityLines(saes) {
  const pct = (x) => (100 * x).toFixed(1) + "%", out = [];
  for (const {label, quality: q} of saes) {
    const say = (line) => out.push((saes.length > 1 ? `${label}: ` : "") + line);
    if (q && q.input && q.input.n) say(`Fires on (input side): for ${pct(q.input.rate)} of ${q.input.n} features ` +
      `[95% CI ${pct(q.input.low)}–${pct(q.input.high)}] the summary names the peak token of a held-out example ` +
      `(chance, another feature's summary: ${pct(q.input.chance)}).`);
    if (q && q.output && q.output.n) say(`MI words (output side): steering with the feature raises their ` +
      `log-probability by ${q.output.mean.toFixed(2)} nats more than random words [95% CI ${q.output.low.toFixed(2)}–` +
      `${q.output.high.toFixed(2)}], ${q.output.n} features.`);
  }
  out.push("MI words describe what a feature writes (what steering with it produces), not what it reads; " +
           "the input summary describes what fires it.");
  return out;
}

async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || r.statusText));
  return data;
}

// tokens coloured by one activation per token (acts) on a 0..max scale; `excluded` tokens (attention sinks,
// special tokens: left out of training) are shown struck through, uncoloured, and do not set the scale
function renderTokens(box, tokens, acts, max, extra, excluded) {
  box.replaceChildren();
  tokens.forEach((t, i) => {
    const s = mk("span", "tok", t);
    const a = acts && acts.length ? acts[i] : 0;
    s.dataset.act = a; s.title = acts && acts.length ? a.toFixed(3) : "";
    if (excluded && excluded[i]) {
      s.classList.add("excluded");
      s.title = `${s.title} (left out: an attention-sink or special token, as in training)`;
    } else if (a > 0) s.style.background = `rgba(230, 97, 0, ${0.12 + 0.78 * Math.min(1, a / Math.max(max, 1e-9))})`;
    if (extra) extra(s, i);
    box.appendChild(s);
  });
}

// the largest activation over the tokens that are not excluded: the colour scale
const keptMax = (acts, excluded) => Math.max(...acts.filter((_, i) => !(excluded && excluded[i])), 1e-9);

// A site can hold several SAEs (one per layer, say): SAE_META.saes, and SAE_INDEX rows end with their SAE's
// position. A page about one SAE says which with ?sae=K (default 0); PAGE_SAE is -1 when K names none.
const PAGE_SAE = (() => {
  const k = Number(new URLSearchParams(location.search).get("sae") ?? 0);
  return Number.isInteger(k) && k >= 0 && k < SAE_META.saes.length ? k : -1;
})();
const saeLink = (k, f) => `feature.html?id=${f}` + (k ? `&sae=${k}` : "");
const saeRows = (k) => SAE_INDEX.filter(r => r[8] === k);

// The SAE the live server runs: the one whose label names it, or the only one.
const liveSae = () => SAE_META.saes.length === 1 ? 0 : SAE_META.saes.findIndex(m => m.label.includes(LIVE.sae));

// `forSae`: the SAE the page's live parts act on (undefined: the page is about all of them, e.g. the index).
async function liveInit(onReady, forSae) {
  try { window.LIVE = await api("api/health"); } catch (e) { return; }  // static: the live cards stay hidden
  const m = document.getElementById("live-meta"), k = liveSae();
  if (k < 0 || (forSae !== undefined && forSae !== k)) {  // another SAE's page: say which one is live
    if (m) m.textContent = `live server runs ${LIVE.sae}: open its features for test-your-text and steering`;
    return;
  }
  for (const el of document.querySelectorAll(".live")) el.hidden = false;
  const sameSae = SAE_META.saes[k].label.includes(LIVE.sae) || SAE_META.title.includes(LIVE.sae);  // said once
  if (m) m.textContent = sameSae ? `live: ${LIVE.model}` : `live: ${LIVE.model}, ${LIVE.sae} (${LIVE.d_sae} features)`;
  onReady(k);
}

// The steer panel (feature page and steer.html): `own()` gives the page's own features, #st-more adds others.
// The operators are the server's (`operators()` in explain/live.py: the catalogue of feature operators). The
// default strength is the server's multiple
// (`steer_defaults()`) of `scale`, the feature's largest activation on the corpus (`whose` says whose it is), or for
// add, where the feature's record carries a measured steering curve (`curve`), the smallest multiple at which it
// wrote its own words; the line under the controls says which.
function steerPanel(own, scale, whose, curve) {
  const err = (el, e) => { el.textContent = e ? String(e.message || e) : ""; };
  const op = document.getElementById("st-op"), strength = document.getElementById("st-strength");
  if (!op.options.length) for (const name of LIVE.operators) op.appendChild(mk("option", "", name));
  const setDefault = () => {
    const d = LIVE.steer_defaults[op.value], note = document.getElementById("st-scale");
    if (op.value === "add" && curve && curve.first_writes && scale > 0) {
      strength.value = +(curve.first_writes * scale).toPrecision(3);
      note.textContent = `default strength ${strength.value} = ${curve.first_writes} × ${whose} largest activation ` +
        `(${scale.toFixed(2)}): the smallest multiple at which steering wrote its own words in at least half of ` +
        `the measured prompts (its steering curve, below).`;
    } else if (d.of === "max_act" && scale > 0) {
      strength.value = +(d.times * scale).toPrecision(3);
      note.textContent = `default strength ${strength.value} = ${d.times} × ${whose} largest activation on the corpus ` +
        `(${scale.toFixed(2)}); strength is in the SAE's activation units.`;
    } else {
      strength.value = d.times;
      note.textContent = d.of === "max_act" ? `default strength ${d.times} (no activation scale known)` :
        `amplify scales the text's projection on the features' decoder directions by 1 + strength: its effect ` +
        `depends on the text, not on the features' activation scale (inject adds a feature that is absent).`;
    }
  };
  op.addEventListener("change", setDefault); setDefault();
  const sel = document.getElementById("st-saved");
  for (const name of LIVE.saved) { const o = mk("option", "", name); o.value = name; sel.appendChild(o); }
  const outputs = ["st-plain", "st-steered", "st-snippet", "st-notice"].map(x => document.getElementById(x));
  document.getElementById("st-go").onclick = async () => {
    const e = document.getElementById("st-err"); err(e);
    for (const o of outputs) { o.replaceChildren(); if (o.id === "st-notice") o.hidden = true; }  // no stale run
    const more = document.getElementById("st-more").value.split(",").map(s => s.trim()).filter(Boolean).map(Number);
    const value = parseFloat(strength.value);
    if (!Number.isFinite(value)) { err(e, "strength: enter a number (the line below gives the scale)"); return; }
    try {
      const r = await api("api/steer", {prompt: document.getElementById("st-prompt").value, features: [...own(), ...more],
        saved: sel.value || null, operator: op.value,
        strength: value, positions: document.getElementById("st-pos").value,
        max_new_tokens: parseInt(document.getElementById("st-n").value, 10)});
      const max = Math.max(...r.unsteered_trace, ...r.steered_trace, 1e-9);  // [] when only a saved file steers
      const [gone, added] = tokenDiff(r.unsteered_tokens, r.steered_tokens);
      document.getElementById("st-out").hidden = false;  // the two columns appear with the first answer
      renderTokens(outputs[0], r.unsteered_tokens, r.unsteered_trace, max, (el, i) => gone.has(i) && el.classList.add("del"));
      renderTokens(outputs[1], r.steered_tokens, r.steered_trace, max, (el, i) => added.has(i) && el.classList.add("ins"));
      outputs[2].textContent = r.snippet;
      const notice = outputs[3];
      if (!added.size && !gone.size) {
        const next = nextStrength(op.value, value, scale, curve);
        notice.textContent = `No change at this strength: the steered text is the unsteered text. ` +
          (next !== null ? `Try ${next} (the next step up${curve && op.value === "add" ? " of this feature's measured curve" : ""}).` : "");
        notice.hidden = false;
      } else {
        notice.textContent = `${added.size} of ${r.steered_tokens.length} steered tokens differ from the unsteered text ` +
          `(highlighted; the first at token ${Math.min(...added, r.steered_tokens.length) + 1}).`;
        notice.hidden = false;
      }
    } catch (x) { err(e, x); }
  };
}

// The positions of the tokens only in `a` and only in `b` (a longest-common-subsequence diff; ≤ 64 tokens each).
function tokenDiff(a, b) {
  const L = Array.from({length: a.length + 1}, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--)
    L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const onlyA = new Set(), onlyB = new Set();
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) { i++; j++; } else if (L[i + 1][j] >= L[i][j + 1]) onlyA.add(i++); else onlyB.add(j++);
  }
  while (i < a.length) onlyA.add(i++);
  while (j < b.length) onlyB.add(j++);
  return [onlyA, onlyB];
}

// The next strength to try after a steer that changed nothing: the feature's measured curve's next multiple (add),
// else twice the strength (Amplify from 0: 1).
function nextStrength(operator, value, scale, curve) {
  if (operator === "add" && curve && scale > 0) {
    const up = curve.factors.map(m => m * scale).find(m => m > value * 1.001);
    if (up !== undefined) return +up.toPrecision(3);
  }
  return value === 0 ? 1 : +(2 * value).toPrecision(3);
}
