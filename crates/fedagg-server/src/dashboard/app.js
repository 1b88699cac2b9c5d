// fedagg's read-only dashboard: the federations, a federation's rounds, epsilon spent against the
// budget, the accuracy the operator reported, and the open round live. Everything comes from the
// admin API with the admin token, which stays in this tab's session storage. No dependencies,
// no inline script (the server's Content-Security-Policy allows only this file), and data is
// only ever set as text, never as HTML.
"use strict";

const state = { token: null, selected: null, federations: [], timer: null };
const $ = (id) => document.getElementById(id);

function readToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("fedagg-token", hash.get("token"));
    hash.delete("token");
    const rest = hash.toString();
    history.replaceState(null, "", location.pathname + (rest ? "#" + rest : ""));
  }
  if (hash.get("federation")) state.selected = Number(hash.get("federation"));
  return sessionStorage.getItem("fedagg-token");
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  if (!r.ok) {
    let detail = r.statusText;
    try { const e = await r.json(); detail = e.error + ": " + e.detail; } catch (_) { /* not JSON */ }
    const err = new Error(`${r.status} ${detail}`);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, classes = []) {
  const tr = document.createElement("tr");
  cells.forEach((c, i) => tr.appendChild(el("td", c, classes[i] || "")));
  return tr;
}

const fmt = {
  eps: (e) => (e === null || e === undefined ? "–" : e.toFixed(3)),
  pct: (a) => (a === null || a === undefined ? "–" : (a * 100).toFixed(2) + " %"),
  secs: (s) => (s === null || s === undefined ? "–" : s.toFixed(1) + " s"),
};

function budgetOf(f) {
  const m = f.spec.mode;
  return m.epsilon_budget === undefined ? null : m.epsilon_budget;
}

function renderFederations() {
  const body = $("federation-rows");
  body.replaceChildren();
  for (const f of state.federations) {
    const budget = budgetOf(f);
    const spent = f.privacy ? f.privacy.epsilon : budget === null ? null : 0;
    const tr = row(
      [f.id, f.spec.name, f.spec.mode.kind, f.spec.vector_len, f.participants, "v" + f.model_version,
        f.open_round === null ? "–" : "round " + f.open_round,
        budget === null ? "–" : `${fmt.eps(spent)} of ${budget}`],
      ["num", "", "", "num", "num", "num", f.open_round === null ? "" : "status-open", "num"]);
    tr.classList.add("selectable");
    if (f.id === state.selected) tr.classList.add("selected");
    tr.addEventListener("click", () => { state.selected = f.id; refresh(); });
    body.appendChild(tr);
  }
  $("federations").hidden = false;
}

function renderLive(info) {
  const live = $("live");
  if (!info || info.status !== "open") { live.hidden = true; return; }
  const dropped = Math.max(0, info.cohort - info.expected);
  const left = info.deadline_in_ms === null ? "no deadline" :
    Math.ceil(info.deadline_in_ms / 1000) + " s left in the phase";
  live.replaceChildren(
    el("strong", `Round ${info.round} open`),
    el("span", ` · phase ${info.phase} · ${info.received}/${info.expected} submissions · ` +
      `${dropped} dropped of ${info.cohort} picked · ${left}`));
  const bar = el("div", null, "bar");
  const fill = el("div");
  fill.style.width = (info.expected ? (100 * info.received) / info.expected : 0) + "%";
  bar.appendChild(fill);
  live.appendChild(bar);
  live.hidden = false;
}

function renderRounds(rounds) {
  const body = $("round-rows");
  body.replaceChildren();
  for (const r of rounds) {
    const i = r.info, rec = i.record;
    body.appendChild(row(
      [i.round, i.status, i.phase, rec ? rec.participants : `${i.received} so far`,
        rec ? rec.dropouts : "–", rec ? fmt.secs(rec.duration_secs) : "–",
        rec ? fmt.eps(rec.epsilon_spent) : "–", fmt.pct(r.metrics && r.metrics.accuracy)],
      ["num", "status-" + i.status, "", "num", "num", "num", "num", "num"]));
  }
}

// A line chart of (x, y) points in an SVG, with an optional horizontal limit line.
function chart(svg, points, { yMax, limit, label, asPct }) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 220, L = 48, R = 12, T = 12, B = 28;
  svg.replaceChildren();
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  const xs = points.map((p) => p[0]);
  const x0 = Math.min(...xs, 1), x1 = Math.max(...xs, x0 + 1);
  const top = asPct ? 1 : Math.max(yMax || 0, limit || 0, ...points.map((p) => p[1])) * 1.08 || 1;
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => H - B - (y / top) * (H - T - B);
  mk("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#9aa4b2" });
  mk("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#9aa4b2" });
  for (const f of [0, 0.5, 1]) {
    const v = top * f;
    mk("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end" }, asPct ? (v * 100).toFixed(0) + "%" : v.toFixed(2));
  }
  mk("text", { x: L, y: H - 8 }, "round " + x0);
  mk("text", { x: W - R, y: H - 8, "text-anchor": "end" }, "round " + x1);
  if (limit) {
    mk("line", { x1: L, y1: Y(limit), x2: W - R, y2: Y(limit), stroke: "#b42318", "stroke-dasharray": "5 4" });
    mk("text", { x: W - R, y: Y(limit) - 4, "text-anchor": "end", fill: "#b42318" }, label + " " + limit);
  }
  if (points.length) {
    mk("polyline", { points: points.map((p) => `${X(p[0])},${Y(p[1])}`).join(" "),
      fill: "none", stroke: "#175cd3", "stroke-width": 2 });
    for (const p of points) mk("circle", { cx: X(p[0]), cy: Y(p[1]), r: 3, fill: "#175cd3" });
  }
}

function renderCharts(fed, rounds) {
  const ordered = rounds.slice().reverse();
  const eps = ordered.filter((r) => r.info.record && r.info.record.epsilon_spent !== null)
    .map((r) => [r.info.round, r.info.record.epsilon_spent]);
  const budget = budgetOf(fed);
  $("epsilon-figure").hidden = budget === null;
  if (budget !== null) chart($("epsilon-chart"), eps, { limit: budget, label: "budget" });
  const acc = ordered.filter((r) => r.metrics && r.metrics.accuracy !== undefined)
    .map((r) => [r.info.round, r.metrics.accuracy]);
  $("accuracy-figure").hidden = acc.length === 0;
  if (acc.length) chart($("accuracy-chart"), acc, { yMax: 1, asPct: true });
}

async function refresh() {
  clearTimeout(state.timer);
  try {
    state.federations = (await api("/v1/federations")).federations;
    if (!state.federations.some((f) => f.id === state.selected)) {
      const open = state.federations.find((f) => f.open_round !== null);
      const last = state.federations[state.federations.length - 1];
      state.selected = (open || last || { id: null }).id;
    }
    renderFederations();
    const fed = state.federations.find((f) => f.id === state.selected);
    if (fed) {
      const rounds = (await api(`/v1/federations/${fed.id}/rounds?limit=200`)).rounds;
      $("federation-title").textContent = `Federation ${fed.id}: ${fed.spec.name} (${fed.spec.mode.kind})`;
      renderLive(rounds.length ? rounds[0].info : null);
      renderRounds(rounds);
      renderCharts(fed, rounds);
      $("federation").hidden = false;
    }
    $("error").hidden = true;
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("error").textContent = "Could not read the server: " + e.message;
    $("error").hidden = false;
    if (e.status === 401 || e.status === 403) {
      sessionStorage.removeItem("fedagg-token");
      state.token = null;
      $("login").hidden = false;
      return;
    }
  }
  state.timer = setTimeout(refresh, 2000);
}

function start() {
  $("server").textContent = location.host;
  state.token = readToken();
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("fedagg-token", state.token);
    $("login").hidden = true;
    refresh();
  });
  if (state.token) refresh(); else $("login").hidden = false;
}

document.addEventListener("DOMContentLoaded", start);
