// timbrel control surface: plain JavaScript, no build step. Talks JSON to /api/* (timbrel/ui/web.py).
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 100;
const HIDDEN_POLL_MS = 1000;
const PARAM_MS = 16;
const KEY_CODES = ["KeyA", "KeyW", "KeyS", "KeyE", "KeyD", "KeyF", "KeyT", "KeyG", "KeyY", "KeyH", "KeyU", "KeyJ", "KeyK"];
const KEY_LETTERS = "AWSEDFTGYHUJK";
const NAMES = ["C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B"];
const BLACK = new Set([1, 3, 6, 8, 10]);

const state = {
  preset: null, switches: -1, mode: null, busy: 0, presetNames: [],
  filter: { q: "", category: "", tag: "", favourites: false },
  controls: new Map(),
  octave: 4,
  sounding: new Map(),
  pointers: new Map(),
  computerKeys: new Map(),
  online: true,
};

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, { ...init, cache: "no-store", credentials: "same-origin" });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) {
    const error = new Error(data.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

let messageTimer = null;
function say(text, sticky = false) {
  const box = $("message");
  box.textContent = text;
  box.hidden = !text;
  clearTimeout(messageTimer);
  if (text && !sticky) messageTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

function busy(delta) {
  state.busy = Math.max(0, state.busy + delta);
  $("busy").hidden = state.busy === 0;
}

// Values -------------------------------------------------------------------------------------

function toPosition(p, value) {
  if (p.maximum === p.minimum) return 0;
  const v = Math.min(p.maximum, Math.max(p.minimum, value));
  if (p.scale === "log") return Math.log(v / p.minimum) / Math.log(p.maximum / p.minimum);
  return (v - p.minimum) / (p.maximum - p.minimum);
}

function fromPosition(p, position) {
  const x = Math.min(1, Math.max(0, position));
  const v = p.scale === "log" ? p.minimum * (p.maximum / p.minimum) ** x : p.minimum + x * (p.maximum - p.minimum);
  return Math.min(p.maximum, Math.max(p.minimum, v));
}

function formatValue(p, value) {
  if (p.choices.length) return p.choices[Math.round(value)] ?? String(value);
  let unit = p.unit;
  let v = value;
  if (unit === "Hz" && Math.abs(v) >= 1000) { v /= 1000; unit = "kHz"; }
  else if (unit === "s" && Math.abs(v) < 1) { v *= 1000; unit = "ms"; }
  const a = Math.abs(v);
  const text = a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  return unit ? `${text} ${unit}` : text;
}

// Parameters: at most one request per PARAM_MS, carrying the latest value of each knob moved.
const pendingParams = new Map();
let paramTimer = null;
function setParameter(id, value) {
  pendingParams.set(id, value);
  if (paramTimer === null) paramTimer = setTimeout(flushParameters, PARAM_MS);
}
function flushParameters() {
  paramTimer = null;
  const batch = [...pendingParams];
  pendingParams.clear();
  for (const [id, value] of batch) {
    api("/api/parameter", { id, value }).catch((e) => say(e.message));
  }
}

// Controls -----------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) if (child !== null) node.append(child);
  return node;
}

function control(fullId, p) {
  const value = el("output", { class: "value" }, formatValue(p, p.value));
  const label = el("label", { class: "name", for: `param-${fullId}`, title: "Double-click: default" }, p.name);
  const box = el("div", { class: "control", "data-param": fullId }, el("div", { class: "head" }, label, value));
  const update = (v) => {
    p.value = v;
    value.textContent = formatValue(p, v);
    if (p.choices.length) {
      for (const b of box.querySelectorAll(".choice")) b.setAttribute("aria-pressed", String(Number(b.dataset.index) === Math.round(v)));
    } else {
      input.value = String(Math.round(toPosition(p, v) * 1000));
    }
  };
  let input = null;
  if (p.choices.length) {
    const group = el("div", { class: "choices", role: "group", "aria-label": p.name });
    p.choices.forEach((name, i) => group.append(el("button", {
      type: "button", class: "choice", "data-index": i, "aria-pressed": String(Math.round(p.value) === i),
      onclick: () => { update(i); setParameter(fullId, i); },
    }, name)));
    box.append(group);
  } else {
    input = el("input", {
      type: "range", id: `param-${fullId}`, min: 0, max: 1000, step: 1,
      value: Math.round(toPosition(p, p.value) * 1000), "aria-label": `${p.name} (${p.unit || "value"})`,
    });
    input.addEventListener("input", () => {
      const v = fromPosition(p, Number(input.value) / 1000);
      p.value = v;
      value.textContent = formatValue(p, v);
      setParameter(fullId, v);
    });
    box.append(input);
  }
  label.addEventListener("dblclick", () => { update(p.default); setParameter(fullId, p.default); });
  state.controls.set(fullId, { p, update });
  return box;
}

function renderControls(described) {
  state.controls.clear();
  const instrument = $("instrument");
  const effects = $("effects");
  instrument.replaceChildren();
  effects.replaceChildren();
  if (described.instrument) {
    const main = described.mode === "transfer" ? "Transfer" : "Instrument";
    const groups = new Map();
    for (const p of described.instrument) {
      const heading = p.group || main;
      if (!groups.has(heading)) groups.set(heading, []);
      groups.get(heading).push(p);
    }
    for (const [heading, params] of groups) {
      instrument.append(el("section", { class: "card", "data-group": heading },
        el("header", {}, el("h2", {}, heading)), el("div", { class: "grid" }, ...params.map((p) => control(p.id, p)))));
    }
  }
  for (const part of described.parts || []) instrument.append(partCard(part));
  for (const fx of described.effects) {
    const toggle = el("button", {
      type: "button", class: "bypass", "aria-pressed": String(!fx.bypassed), "data-effect": fx.key,
      title: "Switch the effect on or off",
    }, fx.bypassed ? "Off" : "On");
    const card = el("section", { class: "card effect" + (fx.bypassed ? " bypassed" : ""), "data-effect": fx.key },
      el("header", {}, el("h2", {}, fx.key), toggle, fx.fault ? el("span", { class: "fault" }, fx.fault) : null),
      el("div", { class: "grid" }, ...fx.parameters.map((p) => control(`${fx.key}.${p.id}`, p))));
    const show = (bypassed) => {
      toggle.setAttribute("aria-pressed", String(!bypassed));
      toggle.textContent = bypassed ? "Off" : "On";
      card.classList.toggle("bypassed", bypassed);
    };
    toggle.addEventListener("click", async () => {
      const bypassed = toggle.getAttribute("aria-pressed") === "true";
      show(bypassed);
      try { await api("/api/bypass", { key: fx.key, bypassed }); } catch (e) { show(!bypassed); say(e.message); }
    });
    effects.append(card);
  }
}

// One card per part of an ensemble: its preset (a menu to switch it), its level, its settings.
const PART_MAIN = ["volume_db", "pan", "mute", "solo", "reverb_send", "delay_send"];
function partCard(part) {
  const menu = el("select", { class: "part-preset", "data-part": part.part, "aria-label": `Part ${part.part} preset` },
    ...state.presetNames.map((name) => el("option", { value: name, selected: name === part.name }, name)));
  if (!state.presetNames.includes(part.name)) menu.prepend(el("option", { value: part.name, selected: true }, part.name));
  menu.addEventListener("change", async () => {
    menu.disabled = true;
    try { await api("/api/part", { part: part.part, preset: menu.value }); } catch (e) { say(e.message); }
    menu.disabled = false;
    refreshControls();
  });
  const fill = el("div", { class: "fill", id: `meter-part${part.part}` });
  const level = el("div", { class: "meter" }, el("span", {}, "Out"), el("div", { class: "track" }, fill),
    el("span", { class: "db", id: `meter-part${part.part}-db` }, "–∞"));
  const channel = Math.round(part.parameters.find((p) => p.id.endsWith(".midi_channel")).value);
  const main = part.parameters.filter((p) => PART_MAIN.some((id) => p.id.endsWith(`.${id}`)));
  const routing = part.parameters.filter((p) => !main.includes(p));
  return el("section", { class: "card part", "data-group": "Parts", "data-part": part.part },
    el("header", {}, el("h2", {}, `Part ${part.part}`),
      el("span", { class: "part-channel" }, channel ? `channel ${channel}` : "all channels"), menu, level),
    el("div", { class: "grid" }, ...main.map((p) => control(p.id, p))),
    el("details", {}, el("summary", {}, "Channel, keys, velocities, transpose"),
      el("div", { class: "grid" }, ...routing.map((p) => control(p.id, p)))));
}

async function loadPresetNames() {
  try {
    const data = await api("/api/presets");
    state.presetNames = data.presets.filter((p) => p.mode !== "transfer").map((p) => p.name);
  } catch (e) { say(e.message); }
}

async function refreshControls() {
  try {
    const described = await api("/api/describe");
    if (described.parts && !state.presetNames.length) await loadPresetNames();
    state.switches = described.switches;
    renderControls(described);
  } catch (e) { say(e.message); }
}

// Presets ------------------------------------------------------------------------------------

let presetRequest = 0;
async function refreshPresets() {
  const f = state.filter;
  const query = new URLSearchParams({ q: f.q, category: f.category, tag: f.tag, favourites: f.favourites ? "1" : "0" });
  const ticket = ++presetRequest;
  let data;
  try { data = await api(`/api/presets?${query}`); } catch (e) { say(e.message); return; }
  if (ticket !== presetRequest) return;
  if (data.problem) say(data.problem);
  renderChips($("categories"), [["", "All"], ...data.categories.map((c) => [c, c]), ["*", "★ Favourites"]],
    f.favourites ? "*" : f.category, (value) => {
      if (value === "*") { f.favourites = !f.favourites; f.category = ""; }
      else { f.category = value; f.favourites = false; }
      refreshPresets();
    });
  renderChips($("tags"), data.tags.map((t) => [t, t]), f.tag, (value) => {
    f.tag = f.tag === value ? "" : value;
    refreshPresets();
  });
  const list = $("presets");
  list.replaceChildren(...data.presets.map(presetItem));
  if (!data.presets.length) list.append(el("li", { class: "empty" }, "No preset matches."));
  markCurrent();
}

function renderChips(box, items, selected, choose) {
  box.replaceChildren(...items.map(([value, label]) => el("button", {
    type: "button", class: "chip", "aria-pressed": String(value === selected), onclick: () => choose(value),
  }, label)));
}

function presetItem(p) {
  const star = el("button", {
    type: "button", class: "fav", "aria-pressed": String(p.favourite), "aria-label": `Favourite ${p.name}`,
  }, p.favourite ? "★" : "☆");
  const show = (favourite) => {
    star.setAttribute("aria-pressed", String(favourite));
    star.textContent = favourite ? "★" : "☆";
  };
  star.addEventListener("click", async () => {
    const favourite = star.getAttribute("aria-pressed") !== "true";
    show(favourite);
    try {
      await api("/api/favourite", { name: p.name, favourite });
      if (state.filter.favourites) refreshPresets();
    } catch (e) { show(!favourite); say(e.message); }
  });
  const meta = [p.category, ...p.tags].join(" · ") + (p.mode === "transfer" ? " · mic" : "");
  const load = el("button", { type: "button", class: "load", title: p.description || p.name },
    el("span", { class: "name" }, p.name), el("span", { class: "meta" }, meta));
  load.addEventListener("click", () => loadPreset(p.name));
  const audition = el("button", { type: "button", class: "audition", "aria-label": `Audition ${p.name}`, title: "Audition" }, "▶");
  audition.addEventListener("click", async () => {
    busy(1);
    try { await api("/api/audition", { name: p.name }); } catch (e) { say(e.message); } finally { busy(-1); }
  });
  return el("li", { class: "preset", "data-name": p.name }, star, load, audition);
}

async function loadPreset(name) {
  busy(1);
  try { await api("/api/load", { name }); } catch (e) { say(e.message); busy(-1); return; }
  const began = performance.now();
  const wait = () => {
    if (state.preset === name || performance.now() - began > 30000) busy(-1);
    else setTimeout(wait, 50);
  };
  wait();
}

function markCurrent() {
  for (const li of $("presets").querySelectorAll("li.preset")) {
    li.classList.toggle("current", li.dataset.name === state.preset);
  }
}

async function savePreset(event) {
  event.preventDefault();
  const name = $("save-name").value.trim();
  if (!name) return;
  busy(1);
  try {
    try {
      await api("/api/save", { name });
    } catch (e) {
      if (e.status !== 409 || !confirm(`Replace your preset "${name}"?`)) throw e;
      await api("/api/save", { name, force: true });
    }
    say(`Saved "${name}".`);
    $("save-name").value = "";
    refreshPresets();
  } catch (e) { say(e.message); } finally { busy(-1); }
}

// Status -------------------------------------------------------------------------------------

function setText(id, text) {
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
}

function meter(id, peak) {
  const db = peak > 0 ? 20 * Math.log10(peak) : -Infinity;
  const scale = Math.max(0, Math.min(1, (db + 60) / 60)).toFixed(3);
  const fill = $(id);
  if (fill.dataset.scale !== scale) {
    fill.dataset.scale = scale;
    fill.style.transform = `scaleX(${scale})`;
  }
  if (fill.classList.contains("hot") !== db > -3) fill.classList.toggle("hot", db > -3);
  setText(`${id}-db`, Number.isFinite(db) && db > -100 ? db.toFixed(0) : "–∞");
}

let lastProblem = "";
function showStatus(s) {
  setText("stat-cpu", `${(100 * s.cpu_load).toFixed(1)}%`);
  $("stat-cpu").title = `peak ${(100 * s.peak_load).toFixed(0)}% of a block`;
  setText("stat-voices", String(s.voices));
  setText("stat-xruns", String(s.xruns));
  setText("stat-late", String(s.late_blocks));
  setText("stat-latency", `${s.latency_ms.toFixed(1)} ms`);
  meter("meter-in", s.input_peak);
  meter("meter-out", s.output_peak);
  for (const part of s.parts || []) if ($(`meter-part${part.part}`)) meter(`meter-part${part.part}`, part.peak);
  for (const b of document.querySelectorAll(".mode button")) {
    const pressed = String(b.dataset.mode === s.mode);
    if (b.getAttribute("aria-pressed") !== pressed) b.setAttribute("aria-pressed", pressed);
  }
  if (s.preset !== state.preset) {
    state.preset = s.preset;
    $("current").textContent = s.preset ?? "–";
    markCurrent();
  }
  if (s.switches !== state.switches) {
    state.switches = s.switches;
    refreshControls();
  }
  const problem = [...s.faults, s.last_error].filter(Boolean).join(" · ");
  if (problem !== lastProblem) {
    lastProblem = problem;
    if (problem) say(problem, true);
  }
}

// One request per tick brings the meters and, while the page is visible, the spectrum.
const spectrum = { data: null };
async function poll() {
  const visible = document.visibilityState === "visible";
  try {
    const live = await api(visible ? "/api/live" : "/api/status");
    showStatus(visible ? live.status : live);
    if (visible) showSpectrum(live.spectrum);
    if (!state.online) { state.online = true; say(""); }
  } catch (e) {
    if (state.online) { state.online = false; say(`Lost the connection to timbrel (${e.message}); retrying…`, true); }
  }
  setTimeout(poll, visible ? POLL_MS : HIDDEN_POLL_MS);
}

function showSpectrum(data) {
  const changed = !spectrum.data || data.level_db.some((v, i) => v !== spectrum.data.level_db[i]);
  spectrum.data = data;
  if (changed) requestAnimationFrame(drawSpectrum);
}

function drawSpectrum() {
  const canvas = $("spectrum");
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, h);
  const data = spectrum.data;
  if (!data) return;
  const low = Math.log(20), high = Math.log(data.sample_rate / 2);
  const x = (hz) => (Math.log(hz) - low) / (high - low) * w;
  const y = (db) => Math.min(h, Math.max(0, (-db / 96) * h));
  g.strokeStyle = "rgba(255,255,255,0.08)";
  g.fillStyle = "rgba(255,255,255,0.35)";
  g.lineWidth = ratio;
  g.font = `${11 * ratio}px system-ui, sans-serif`;
  for (const hz of [50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000]) {
    if (hz >= data.sample_rate / 2) continue;
    g.beginPath(); g.moveTo(x(hz), 0); g.lineTo(x(hz), h); g.stroke();
    g.fillText(hz >= 1000 ? `${hz / 1000}k` : String(hz), x(hz) + 3 * ratio, h - 4 * ratio);
  }
  for (let db = -24; db > -96; db -= 24) {
    g.beginPath(); g.moveTo(0, y(db)); g.lineTo(w, y(db)); g.stroke();
    g.fillText(`${db} dB`, 4 * ratio, y(db) - 3 * ratio);
  }
  const gradient = g.createLinearGradient(0, 0, 0, h);
  gradient.addColorStop(0, "rgba(255,176,59,0.85)");
  gradient.addColorStop(1, "rgba(255,176,59,0.05)");
  g.beginPath();
  g.moveTo(0, h);
  data.bands_hz.forEach((hz, i) => g.lineTo(x(hz), y(data.level_db[i])));
  g.lineTo(w, h);
  g.closePath();
  g.fillStyle = gradient;
  g.fill();
  g.strokeStyle = "#ffb03b";
  g.lineWidth = 1.5 * ratio;
  g.beginPath();
  data.bands_hz.forEach((hz, i) => (i ? g.lineTo : g.moveTo).call(g, x(hz), y(data.level_db[i])));
  g.stroke();
}

// Keyboard -----------------------------------------------------------------------------------

// While keys are down the page says so every HEARTBEAT_MS; the engine releases the surface's
// notes itself when it hears nothing for a second (a closed tab, a lost connection).
const HEARTBEAT_MS = 250;
setInterval(() => { if (state.sounding.size) api("/api/heartbeat", {}).catch(() => {}); }, HEARTBEAT_MS);

let noteChain = Promise.resolve();
function sendNote(note, velocity) {
  noteChain = noteChain.then(() => api("/api/note", { note, velocity })).catch((e) => say(e.message));
}

function keyElement(note) { return $("keyboard").querySelector(`[data-note="${note}"]`); }

function press(note, velocity, source) {
  const holders = state.sounding.get(note) || new Set();
  if (!holders.size) sendNote(note, velocity);
  holders.add(source);
  state.sounding.set(note, holders);
  keyElement(note)?.classList.add("down");
}

function release(note, source) {
  const holders = state.sounding.get(note);
  if (!holders || !holders.delete(source)) return;
  if (!holders.size) {
    state.sounding.delete(note);
    sendNote(note, 0);
    keyElement(note)?.classList.remove("down");
  }
}

function releaseAll() {
  for (const [note, holders] of state.sounding) for (const source of [...holders]) release(note, source);
  state.pointers.clear();
  state.computerKeys.clear();
}

function baseNote() { return 12 * (state.octave + 1); }

function buildKeyboard() {
  const board = $("keyboard");
  const whites = Math.max(8, Math.min(29, Math.floor(board.clientWidth / 52) || 15));
  board.replaceChildren();
  let white = 0;
  const notes = [];
  const first = whites >= 22 ? Math.max(0, baseNote() - 12) : baseNote();
  for (let note = first; white < whites && note < 128; note++) {
    if (!BLACK.has(note % 12)) white++;
    notes.push(note);
  }
  const width = 100 / notes.filter((n) => !BLACK.has(n % 12)).length;
  let index = 0;
  for (const note of notes) {
    const black = BLACK.has(note % 12);
    const offset = note - baseNote();
    const key = el("div", { class: black ? "key black" : "key white", "data-note": note, role: "button",
      "aria-label": `${NAMES[note % 12]}${Math.floor(note / 12) - 1}` });
    if (offset >= 0 && offset < KEY_LETTERS.length) key.append(el("span", { class: "hint" }, KEY_LETTERS[offset]));
    if (note % 12 === 0) key.append(el("span", { class: "c" }, `C${Math.floor(note / 12) - 1}`));
    if (black) {
      key.style.left = `${(index - 0.32) * width}%`;
      key.style.width = `${width * 0.64}%`;
    } else {
      key.style.left = `${index * width}%`;
      key.style.width = `${width}%`;
      index++;
    }
    if (state.sounding.has(note)) key.classList.add("down");
    board.append(key);
  }
  $("octave-label").textContent = `C${state.octave}`;
}

function keyAt(x, y) {
  const target = document.elementFromPoint(x, y)?.closest?.(".key");
  if (!target) return null;
  const rect = target.getBoundingClientRect();
  const depth = Math.min(1, Math.max(0, (y - rect.top) / rect.height));
  return { note: Number(target.dataset.note), velocity: Math.round(45 + 82 * depth) };
}

function setupKeyboard() {
  const board = $("keyboard");
  board.addEventListener("pointerdown", (e) => {
    const hit = keyAt(e.clientX, e.clientY);
    if (!hit) return;
    e.preventDefault();
    board.setPointerCapture(e.pointerId);
    state.pointers.set(e.pointerId, hit.note);
    press(hit.note, hit.velocity, `p${e.pointerId}`);
  });
  board.addEventListener("pointermove", (e) => {
    if (!state.pointers.has(e.pointerId)) return;
    const hit = keyAt(e.clientX, e.clientY);
    const held = state.pointers.get(e.pointerId);
    if (!hit || hit.note === held) return;
    release(held, `p${e.pointerId}`);
    state.pointers.set(e.pointerId, hit.note);
    press(hit.note, hit.velocity, `p${e.pointerId}`);
  });
  const up = (e) => {
    if (!state.pointers.has(e.pointerId)) return;
    release(state.pointers.get(e.pointerId), `p${e.pointerId}`);
    state.pointers.delete(e.pointerId);
  };
  board.addEventListener("pointerup", up);
  board.addEventListener("pointercancel", up);
  board.addEventListener("lostpointercapture", up);
  board.addEventListener("contextmenu", (e) => e.preventDefault());

  const typing = (e) => e.target.closest?.("input:not([type=range]), select, textarea, dialog[open]")
    || e.ctrlKey || e.metaKey || e.altKey;
  window.addEventListener("keydown", (e) => {
    if (typing(e)) return;
    if (e.code === "KeyZ" || e.code === "KeyX") {
      if (!e.repeat) shiftOctave(e.code === "KeyZ" ? -1 : 1);
      e.preventDefault();
      return;
    }
    const offset = KEY_CODES.indexOf(e.code);
    if (offset < 0) return;
    e.preventDefault();
    if (e.repeat || state.computerKeys.has(e.code)) return;
    const note = baseNote() + offset;
    if (note > 127) return;
    state.computerKeys.set(e.code, note);
    press(note, 100, e.code);
  });
  window.addEventListener("keyup", (e) => {
    const note = state.computerKeys.get(e.code);
    if (note === undefined) return;
    state.computerKeys.delete(e.code);
    release(note, e.code);
  });
  window.addEventListener("blur", releaseAll);
  document.addEventListener("visibilitychange", () => { if (document.hidden) releaseAll(); });
  $("panic").addEventListener("click", () => {
    state.sounding.clear();
    board.querySelectorAll(".key.down").forEach((k) => k.classList.remove("down"));
    api("/api/panic", {}).then(() => say("all notes off")).catch((e) => say(e.message));
  });
  $("octave-down").addEventListener("click", () => shiftOctave(-1));
  $("octave-up").addEventListener("click", () => shiftOctave(1));
  new ResizeObserver(() => buildKeyboard()).observe(board);
}

function shiftOctave(delta) {
  state.octave = Math.max(0, Math.min(8, state.octave + delta));
  buildKeyboard();
}

// Mode and devices ---------------------------------------------------------------------------

async function setMode(mode) {
  busy(1);
  try { await api("/api/mode", { mode }); } catch (e) { say(e.message); } finally { busy(-1); }
}

function fillSelect(select, devices, current, wants) {
  select.replaceChildren(el("option", { value: "" }, "Default"),
    ...devices.filter(wants).map((d) => el("option", { value: d.name, selected: d.name === current }, `${d.name} (${d.host_api})`)));
}

async function openSetup() {
  const dialog = $("setup");
  dialog.showModal();
  busy(1);
  try {
    const devices = await api("/api/devices");
    const current = devices.current || {};
    fillSelect($("output-device"), devices.audio, current.output, (d) => d.outputs > 0);
    fillSelect($("input-device"), devices.audio, current.input, (d) => d.inputs > 0);
    $("midi-inputs").replaceChildren(...(devices.midi.length ? devices.midi : ["none"]).map((n) => el("li", {}, n)));
  } catch (e) { say(e.message); } finally { busy(-1); }
}

async function applyDevices() {
  busy(1);
  try {
    await api("/api/devices", { output: $("output-device").value || null, input: $("input-device").value || null });
    $("setup").close();
    say("Audio devices switched.");
  } catch (e) { say(e.message); } finally { busy(-1); }
}

// Start --------------------------------------------------------------------------------------

function start() {
  let searchTimer = null;
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { state.filter.q = $("search").value; refreshPresets(); }, 120);
  });
  $("save-form").addEventListener("submit", savePreset);
  for (const b of document.querySelectorAll(".mode button")) b.addEventListener("click", () => setMode(b.dataset.mode));
  $("open-setup").addEventListener("click", openSetup);
  $("apply-devices").addEventListener("click", applyDevices);
  window.addEventListener("resize", () => requestAnimationFrame(drawSpectrum));
  setupKeyboard();
  buildKeyboard();
  refreshPresets();
  poll();
}

start();
