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

// tokens coloured by one activation per token (acts) on a 0..max scale
function renderTokens(box, tokens, acts, max, extra) {
  box.replaceChildren();
  tokens.forEach((t, i) => {
    const s = mk("span", "tok", t);
    const a = acts && acts.length ? acts[i] : 0;
    s.dataset.act = a; s.title = acts && acts.length ? a.toFixed(3) : "";
    if (a > 0) s.style.background = `rgba(230, 97, 0, ${0.12 + 0.78 * Math.min(1, a / Math.max(max, 1e-9))})`;
    if (extra) extra(s, i);
    box.appendChild(s);
  });
}

async function liveInit(onReady) {
  try { window.LIVE = await api("api/health"); } catch (e) { return; }  // static: the live cards stay hidden
  for (const el of document.querySelectorAll(".live")) el.hidden = false;
  const m = document.getElementById("live-meta");
  if (m) m.textContent = `live: ${LIVE.model}, ${LIVE.sae} (${LIVE.d_sae} features)`;
  onReady();
}
