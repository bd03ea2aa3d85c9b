// Live parts of the browser: shown only when the page is served by `python -m explain.browse serve --live`
// (GET /api/health answers). Text from the model or the user is set with textContent only, never innerHTML.
window.LIVE = null;
const mk = (tag, cls, t) => { const e = document.createElement(tag); if (cls) e.className = cls; if (t !== undefined) e.textContent = t; return e; };

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

async function liveInit(onReady) {
  try { window.LIVE = await api("api/health"); } catch (e) { return; }  // static: the live cards stay hidden
  for (const el of document.querySelectorAll(".live")) el.hidden = false;
  const m = document.getElementById("live-meta");
  if (m) m.textContent = `live: ${LIVE.model}, ${LIVE.sae} (${LIVE.d_sae} features)`;
  onReady();
}

// The steer panel (feature page and steer.html): `own()` gives the page's own features, #st-more adds others.
function steerPanel(own) {
  const err = (el, e) => { el.textContent = e ? String(e.message || e) : ""; };
  const sel = document.getElementById("st-saved");
  for (const name of LIVE.saved) { const o = mk("option", "", name); o.value = name; sel.appendChild(o); }
  document.getElementById("st-go").onclick = async () => {
    const e = document.getElementById("st-err"); err(e);
    const more = document.getElementById("st-more").value.split(",").map(s => s.trim()).filter(Boolean).map(Number);
    try {
      const r = await api("api/steer", {prompt: document.getElementById("st-prompt").value, features: [...own(), ...more],
        saved: sel.value || null, operator: document.getElementById("st-op").value,
        strength: parseFloat(document.getElementById("st-strength").value), positions: document.getElementById("st-pos").value,
        max_new_tokens: parseInt(document.getElementById("st-n").value, 10)});
      const max = Math.max(...r.unsteered_trace, ...r.steered_trace, 1e-9);  // [] when only a saved file steers
      renderTokens(document.getElementById("st-plain"), r.unsteered_tokens, r.unsteered_trace, max);
      renderTokens(document.getElementById("st-steered"), r.steered_tokens, r.steered_trace, max);
      document.getElementById("st-snippet").textContent = r.snippet;
    } catch (x) { err(e, x); }
  };
}
