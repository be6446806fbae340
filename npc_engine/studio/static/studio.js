// npc-engine studio: plain JavaScript, no build step. Every call goes to the studio's /api/*,
// which forwards it over the protocol. Text from the server is only ever set as textContent.
"use strict";

const POLL_MS = 300;
const STATS_MS = 1000;
const MAX_FEED = 50;
const MAX_FRAMES = 240;

const state = {
  since: 0, characters: [], selected: null, says: new Map(), frames: [], queue: [],
  budgetMs: null, p50: 0, p99: 0, templates: [], refreshTimer: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// The per-launch token from the address `npc-engine studio` printed; every API call carries it.
const TOKEN = new URLSearchParams(location.search).get("token") || "";

async function api(path, body) {
  const headers = {"x-studio-token": TOKEN};
  const options = body === undefined ? {headers} : {
    method: "POST", headers: {...headers, "content-type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) {
    const error = new Error(data.error ? `${data.error.code}: ${data.error.message}` : response.statusText);
    error.body = data.error;
    throw error;
  }
  return data;
}

function setConnected(isConnected, why) {
  const badge = $("connection");
  badge.textContent = isConnected ? "live" : "offline";
  badge.className = "badge " + (isConnected ? "ok" : "bad");
  badge.title = why || "";
}

// -- characters -------------------------------------------------------------------------------

async function loadCharacters() {
  const data = await api("/api/characters");
  state.characters = data.characters;
  const list = $("character-list");
  list.replaceChildren(...state.characters.map((c) => {
    const item = el("li", {"class": "character" + (c.id === state.selected ? " selected" : ""),
                           "data-id": c.id},
      el("span", {"class": "name", text: c.name}), el("span", {"class": "mood", text: c.mood}));
    item.addEventListener("click", () => { state.selected = c.id; loadCharacters(); });
    return item;
  }));
  fillSelect($("talk-character"), state.characters.map((c) => [c.id, c.name]), true);
  if (!state.selected && state.characters.length) state.selected = state.characters[0].id;
  renderDetail();
}

function bar(label, value, min, max) {
  const fraction = (value - min) / (max - min);
  const zero = (0 - min) / (max - min);
  const fill = el("span", {"class": "bar-fill " + (value < 0 ? "neg" : "pos")});
  fill.style.left = `${Math.min(fraction, zero) * 100}%`;
  fill.style.width = `${Math.abs(fraction - zero) * 100}%`;
  return el("div", {"class": "bar-row"}, el("span", {"class": "bar-label", text: label}),
    el("span", {"class": "bar"}, fill), el("span", {"class": "bar-value", text: String(value)}));
}

function renderDetail() {
  const detail = $("character-detail");
  const c = state.characters.find((x) => x.id === state.selected);
  if (!c) { detail.replaceChildren(el("p", {"class": "muted", text: "no character selected"})); return; }
  const relationships = Object.entries(c.relationships).map(([other, r]) =>
    el("div", {"class": "relationship", "data-other": other}, el("h4", {text: other}),
      bar("trust", r.trust, -100, 100), bar("affinity", r.affinity, -100, 100),
      bar("familiarity", r.familiarity, 0, 100)));
  const memories = c.memories.map((m) => el("li", {text: `${m.text} (salience ${m.salience})`}));
  const flags = Object.entries(c.flags).map(([k, v]) => el("li", {text: `${k} = ${JSON.stringify(v)}`}));
  const turns = c.recent_turns.slice(-8).map((t) =>
    el("li", {"class": t.kind, text: t.kind === "event" ? `[event] ${t.text}` : `${t.speaker_id}: ${t.text}`}));
  const section = (title, items) => [el("h3", {text: title}),
    items.length ? el("ul", {}, ...items) : el("p", {"class": "muted", text: "none"})];
  detail.replaceChildren(
    el("h3", {"class": "detail-name", text: `${c.name} (${c.id})`}),
    el("p", {"class": "persona", text: c.persona}),
    el("p", {}, "Mood: ", el("strong", {"class": "detail-mood", text: c.mood})),
    el("h3", {text: "Relationships"}),
    ...(relationships.length ? relationships : [el("p", {"class": "muted", text: "none yet"})]),
    ...section("Memories", memories), ...section("Flags", flags), ...section("Recent turns", turns));
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => loadCharacters().catch(() => {}), 200);
}

function fillSelect(select, options, keepValue) {
  const previous = select.value;
  select.replaceChildren(...options.map(([value, label]) => el("option", {value, text: label})));
  if (keepValue && options.some(([value]) => value === previous)) select.value = previous;
}

// -- the live feed ------------------------------------------------------------------------------

function sayItem(sayId) {
  let say = state.says.get(sayId);
  if (say) return say;
  const node = el("li", {"class": "say", "data-say-id": sayId});
  say = {node, start: null, draft: null, steps: [], reply: null, error: null, isOpen: false};
  node.addEventListener("click", (event) => {
    if (event.target.closest(".say-body")) return;
    say.isOpen = !say.isOpen; renderSay(say);
  });
  state.says.set(sayId, say);
  $("feed").prepend(node);
  while (state.says.size > MAX_FEED) {
    const [oldest] = state.says.keys();
    state.says.get(oldest).node.remove();
    state.says.delete(oldest);
  }
  return say;
}

function fieldsLine(fields) {
  return Object.entries(fields || {}).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(" · ");
}

function renderSay(say) {
  const s = say.start;
  const head = el("div", {"class": "say-head"},
    el("span", {"class": "who", text: s ? `${s.speaker_id || "(event)"} → ${s.character_id}` : "say"}),
    el("span", {"class": "what", text: s ? (s.is_event ? `[event] ${s.text}` : `“${s.text}”`) : ""}),
    el("span", {"class": "muted", text: s ? s.template : ""}));
  const parts = [head];
  if (say.error) {
    parts.push(el("div", {"class": "say-error", text: `${say.error.code}: ${say.error.message}`}));
  } else if (say.reply) {
    const r = say.reply;
    parts.push(el("div", {"class": "say-reply", text: fieldsLine(r.fields)}));
    const changes = r.changes.map((c) => `${c.path}: ${JSON.stringify(c.old)} → ${JSON.stringify(c.new)}`);
    parts.push(el("div", {"class": "say-changes", text: changes.length ? changes.join(" · ") : "no state change"}));
    parts.push(el("div", {"class": "muted", text: `${r.finish_reason} · ${r.num_steps} steps · ` +
      `${r.elapsed_ms.toFixed(0)} ms · prompt ${r.num_prompt_tokens} tokens (${r.num_cached_prompt_tokens} cached)`}));
  } else if (say.draft) {
    parts.push(el("div", {"class": "say-draft", text: `step ${say.draft.num_steps}: ${fieldsLine(say.draft.fields)}`}));
  }
  if (say.isOpen) parts.push(sayBody(say));
  say.node.className = "say" + (say.reply ? " done" : "") + (say.error ? " failed" : "") + (say.isOpen ? " open" : "");
  say.node.replaceChildren(...parts);
}

function sayBody(say) {
  const body = el("div", {"class": "say-body"});
  if (say.steps.length) {
    const table = el("div", {"class": "steps"});
    for (const step of say.steps) {
      const row = el("div", {"class": "step"}, el("span", {"class": "step-number", text: String(step.step)}));
      step.tokens.forEach((token, i) => {
        const shown = token === "<pad>" ? "·" : token.replace(/\n/g, "⏎");
        row.append(el("span", {"class": `tok ${step.states[i]}`, text: shown}));
      });
      table.append(row);
    }
    body.append(el("h4", {text: "Canvas, step by step (green: accepted, grey: renoised, blue: skeleton)"}), table);
  } else {
    body.append(el("p", {"class": "muted", text: "no canvas recorded (tick 'record each step's canvas' before sending)"}));
  }
  const prompt = say.reply && say.reply.prompt;
  if (prompt) {
    body.append(el("h4", {text: `Prompt: ${prompt.num_tokens} tokens, dropped ${prompt.num_turns_dropped} turns ` +
                                 `and ${prompt.num_facts_dropped} facts for the budget`}));
    const lines = prompt.lines.map((line) => el("li", {"class": line.is_kept ? "kept" : "dropped",
      text: `${line.is_kept ? "kept" : "dropped"} · ${line.section} · ${line.text}` +
            (line.score === null ? "" : ` (score ${line.score.toFixed(2)})`)}));
    body.append(lines.length ? el("ul", {"class": "prompt-lines"}, ...lines)
                             : el("p", {"class": "muted", text: "nothing droppable: persona, mood and the line only"}));
  }
  return body;
}

function onEvent(event) {
  if (event.kind === "frames") { onFrames(event.frames); return; }
  const say = sayItem(event.say_id);
  if (event.kind === "say.start") say.start = event.start;
  else if (event.kind === "say.draft") { say.draft = event.draft; say.steps.push(...event.draft.canvas); }
  else if (event.kind === "say.reply") { say.reply = event.reply; scheduleRefresh(); }
  else if (event.kind === "say.error") say.error = event.error;
  renderSay(say);
}

async function pollObserve() {
  try {
    const data = await api("/api/observe", {since: state.since, debug: $("debug-canvas").checked});
    setConnected(true);
    if (data.num_dropped) $("feed-dropped").textContent = `(${data.num_dropped} older events dropped)`;
    data.events.forEach(onEvent);
    state.since = data.next_seq;
  } catch (error) {
    setConnected(false, error.message);
  }
  setTimeout(pollObserve, POLL_MS);
}

// -- frames and queue ----------------------------------------------------------------------------

function onFrames(frames) {
  state.frames.push(...frames.frame_device_ms);
  state.frames.splice(0, Math.max(0, state.frames.length - MAX_FRAMES));
  state.budgetMs = frames.frame_budget_ms;
  state.p50 = frames.frame_device_ms_p50;
  state.p99 = frames.frame_device_ms_p99;
  drawFrames();
}

function drawFrames() {
  const canvas = $("frame-chart");
  const g = canvas.getContext("2d");
  const {width, height} = canvas;
  g.clearRect(0, 0, width, height);
  const top = Math.max(state.budgetMs || 0, state.p99, ...state.frames, 1) * 1.15;
  const y = (ms) => height - (ms / top) * height;
  const barWidth = width / MAX_FRAMES;
  state.frames.forEach((ms, i) => {
    g.fillStyle = state.budgetMs !== null && ms > state.budgetMs ? "#d9534f" : "#4a90d9";
    g.fillRect(i * barWidth, y(ms), Math.max(barWidth - 0.5, 0.5), height - y(ms));
  });
  const line = (ms, color, label) => {
    g.strokeStyle = color; g.beginPath(); g.moveTo(0, y(ms)); g.lineTo(width, y(ms)); g.stroke();
    g.fillStyle = color; g.fillText(label, 4, y(ms) - 3);
  };
  if (state.budgetMs !== null) line(state.budgetMs, "#e67e22", `budget ${state.budgetMs} ms`);
  $("frame-summary").textContent = state.frames.length
    ? `device ms per frame: p50 ${state.p50.toFixed(2)}, p99 ${state.p99.toFixed(2)}` +
      (state.budgetMs === null ? " (no budget: frames run to completion)" : `, budget ${state.budgetMs}`)
    : "no frames yet: send a line";
}

async function pollStats() {
  try {
    const stats = await api("/api/stats");
    const engine = stats.engine;
    state.queue.push([engine.num_waiting || 0, engine.num_active || 0]);
    state.queue.splice(0, Math.max(0, state.queue.length - 120));
    drawQueue();
    $("queue-summary").textContent = `queue: ${engine.num_waiting} waiting, ${engine.num_active} active · ` +
      `${engine.num_overruns || 0} overruns of ${engine.num_frames} frames`;
  } catch (error) { /* the observe poll shows the connection state */ }
  setTimeout(pollStats, STATS_MS);
}

function drawQueue() {
  const canvas = $("queue-chart");
  const g = canvas.getContext("2d");
  const {width, height} = canvas;
  g.clearRect(0, 0, width, height);
  const top = Math.max(1, ...state.queue.map(([w, a]) => w + a));
  const step = width / 120;
  state.queue.forEach(([waiting, active], i) => {
    const hActive = (active / top) * height, hWaiting = (waiting / top) * height;
    g.fillStyle = "#5cb85c"; g.fillRect(i * step, height - hActive, step - 0.5, hActive);
    g.fillStyle = "#f0ad4e"; g.fillRect(i * step, height - hActive - hWaiting, step - 0.5, hWaiting);
  });
}

// -- talk box and template editor ------------------------------------------------------------------

async function onTalk(event) {
  event.preventDefault();
  const text = $("talk-text").value.trim();
  const status = $("talk-status");
  if (!text) { status.textContent = "say something first"; return; }
  status.className = "status"; status.textContent = "sending…";
  try {
    const reply = await api("/api/say", {character_id: $("talk-character").value,
      speaker_id: $("talk-speaker").value, text, template: $("talk-template").value});
    status.className = "status ok"; status.textContent = `${reply.finish_reason}: ${fieldsLine(reply.fields)}`;
    $("talk-text").value = "";
  } catch (error) {
    status.className = "status error"; status.textContent = error.message;
  }
}

let checkTimer = null;
function onTemplateInput() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(checkTemplate, 300);
}

function editorTemplate() {
  try { return {template: JSON.parse($("template-editor").value)}; }
  catch (error) { return {problem: `not JSON yet: ${error.message}`}; }
}

function canvasesOf(plan) {
  const numBlocks = plan.num_blocks || 1;  // a server before num_blocks: one canvas
  return numBlocks === 1 ? ` of one ${plan.canvas_length}-token canvas`
    : ` over ${numBlocks} canvases of ${plan.canvas_length} (denoised one after another)`;
}

async function checkTemplate() {
  const out = $("template-check");
  const {template, problem} = editorTemplate();
  if (problem) { out.className = "status error"; out.textContent = problem; return; }
  try {
    const plan = await api("/api/template/check", {template});
    out.className = "status ok";
    out.textContent = `valid: ${plan.name}, ${plan.slots.length} slots (` +
      plan.slots.map((s) => `${s.name} ${s.kind} ${s.num_tokens}`).join(", ") +
      `), ${plan.num_slot_tokens + plan.num_skeleton_tokens} positions` + canvasesOf(plan);
  } catch (error) {
    out.className = "status error"; out.textContent = `server: ${error.message}`;
  }
}

async function tryTemplate() {
  const out = $("template-try-result");
  const {template, problem} = editorTemplate();
  if (problem) { out.className = "status error"; out.textContent = problem; return; }
  const text = $("talk-text").value.trim() || "Hello there.";
  out.className = "status"; out.textContent = "trying…";
  try {
    const reply = await api("/api/template/try", {template, text,
      character_id: $("talk-character").value, speaker_id: $("talk-speaker").value});
    out.className = "status ok"; out.textContent = `${reply.finish_reason}: ${fieldsLine(reply.fields)}`;
    loadTemplates().catch(() => {});
  } catch (error) {
    out.className = "status error"; out.textContent = error.message;
  }
}

async function loadTemplates() {
  const data = await api("/api/templates");
  state.templates = data.templates;
  const names = state.templates.map((t) => [t.name, t.name]);
  fillSelect($("talk-template"), names, true);
  fillSelect($("editor-load"), [["", "load a registered template…"], ...names], false);
}

function loadIntoEditor() {
  const template = state.templates.find((t) => t.name === $("editor-load").value);
  if (!template) return;
  $("template-editor").value = JSON.stringify(template, null, 2);
  checkTemplate();
}

async function start() {
  $("talk-form").addEventListener("submit", onTalk);
  $("template-editor").addEventListener("input", onTemplateInput);
  $("template-try").addEventListener("click", tryTemplate);
  $("editor-load").addEventListener("change", loadIntoEditor);
  try {
    const hello = await api("/api/hello");
    const budget = hello.frame_budget_ms === null ? "no frame budget" : `${hello.frame_budget_ms} ms per frame`;
    $("server-info").textContent = `server ${hello.server_version} · protocol ${hello.protocol_version} · ` +
      `model ${(hello.model.num_parameters / 1e6).toFixed(2)}M parameters on ${hello.model.device} · ${budget}`;
    state.budgetMs = hello.frame_budget_ms;
    const speakers = (await api("/api/speakers")).speakers;
    await loadCharacters();
    fillSelect($("talk-speaker"), [...speakers.map((s) => [s.id, `${s.name} (${s.id})`]),
                                   ...state.characters.map((c) => [c.id, `${c.name} (character)`])], true);
    await loadTemplates();
    setConnected(true);
  } catch (error) {
    setConnected(false, error.message);
    $("server-info").textContent = `cannot reach the server: ${error.message}`;
  }
  drawFrames();
  pollObserve();
  pollStats();
}

document.addEventListener("DOMContentLoaded", start);
