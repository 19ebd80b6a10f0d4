// The steering playground served at `/`: one page of HTML, CSS and JavaScript, no build step
// and no external assets. It speaks the same HTTP API as any client (token from `?token=`).
enum Playground {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>repengd playground</title>
<style>
  :root { --fg: #1d232a; --muted: #5b6673; --line: #d5dbe1; --accent: #2f6fdb; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; gap: 16px; align-items: center; padding: 10px 18px; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 16px; margin: 0; }
  header .status { margin-left: auto; color: var(--muted); }
  main { display: grid; grid-template-columns: 320px 1fr; gap: 16px; padding: 16px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; margin-bottom: 16px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 8px; }
  label { display: block; margin: 6px 0 2px; color: var(--muted); }
  input[type=number], input[type=text], select, textarea { width: 100%; padding: 5px 7px; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
  textarea { resize: vertical; }
  button { padding: 6px 12px; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; font: inherit; cursor: pointer; }
  button.secondary { background: #fff; color: var(--accent); }
  button:disabled { opacity: .5; cursor: default; }
  .vector { display: grid; grid-template-columns: 1fr 60px; gap: 4px 8px; align-items: center; padding: 4px 0; border-bottom: 1px dashed var(--line); }
  .vector .name { font-weight: 600; overflow-wrap: anywhere; }
  .vector input[type=range] { grid-column: 1 / span 2; width: 100%; }
  .vector.bad .name { color: #b3261e; }
  .row { display: flex; gap: 8px; align-items: center; }
  .row > * { flex: 1; }
  .outputs { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
  .sweep { display: grid; grid-template-columns: repeat(5, 1fr); gap: 8px; }
  .out { white-space: pre-wrap; min-height: 90px; padding: 8px; border: 1px solid var(--line); border-radius: 4px; background: #fbfcfd; font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; overflow-wrap: anywhere; }
  .out.error { color: #b3261e; }
  .caption { color: var(--muted); font-size: 12px; margin-bottom: 4px; }
  progress { width: 100%; height: 14px; }
  .muted { color: var(--muted); }
  .error-text { color: #b3261e; white-space: pre-wrap; }
</style>
</head>
<body>
<header>
  <h1>repengd playground</h1>
  <label for="model" style="margin:0">model</label>
  <select id="model" style="width:auto"></select>
  <span class="status" id="status" data-state="idle">connecting…</span>
</header>
<main>
  <div>
    <section>
      <h2>Vectors</h2>
      <div id="vectors"><span class="muted">loading…</span></div>
      <label>layers (empty: each vector's own)</label>
      <div class="row"><input id="layer-from" type="number" placeholder="from, e.g. -20"><input id="layer-to" type="number" placeholder="to, e.g. -5"></div>
      <label><input id="normalize" type="checkbox" style="width:auto"> normalize</label>
      <label>slider range ±</label>
      <input id="range" type="number" value="4" min="0.1" step="0.5">
    </section>
    <section>
      <h2>Train a vector</h2>
      <label for="train-name">name</label>
      <input id="train-name" type="text" placeholder="e.g. happy">
      <label for="train-pairs">pairs: one per line, positive | negative</label>
      <textarea id="train-pairs" rows="6" placeholder="You are happy. | You are sad.&#10;Act extremely cheerful. | Act extremely gloomy."></textarea>
      <label><input id="train-chat" type="checkbox" style="width:auto" checked> lay pairs out as chat (the model's template)</label>
      <label><input id="train-overwrite" type="checkbox" style="width:auto"> overwrite</label>
      <div class="row" style="margin-top:8px"><button id="train-go">Train</button></div>
      <progress id="train-progress" value="0" max="1"></progress>
      <div id="train-status" class="muted"></div>
    </section>
  </div>
  <div>
    <section>
      <h2>Prompt</h2>
      <textarea id="prompt" rows="3">Tell me about your day.</textarea>
      <div class="row" style="margin-top:8px">
        <div><label>max tokens</label><input id="max-tokens" type="number" value="48" min="1"></div>
        <div><label>temperature</label><input id="temperature" type="number" value="0" min="0" step="0.1"></div>
        <div><label>seed</label><input id="seed" type="number" value="1"></div>
        <div><label>&nbsp;</label><button id="go">Generate</button></div>
      </div>
    </section>
    <section>
      <h2>Baseline and steered</h2>
      <div class="outputs">
        <div><div class="caption">baseline (no control)</div><div class="out" id="baseline"></div></div>
        <div><div class="caption" id="steered-caption">steered</div><div class="out" id="steered"></div></div>
      </div>
    </section>
    <section>
      <h2>Sweep</h2>
      <div class="row">
        <div><label>vector</label><select id="sweep-vector"></select></div>
        <div><label>k (coefficients −k … +k in 5 steps)</label><input id="sweep-k" type="number" value="4" min="0" step="0.5"></div>
        <div><label>&nbsp;</label><button id="sweep-go" class="secondary">Sweep</button></div>
      </div>
      <div class="sweep" id="sweep" style="margin-top:10px"></div>
    </section>
  </div>
</main>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token");
const $ = (id) => document.getElementById(id);
let vectors = [];
let coefficients = {};
let busy = 0;

function headers() {
  const h = { "Content-Type": "application/json" };
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function setStatus(text, state) {
  $("status").textContent = text;
  if (state) $("status").dataset.state = state;
}

async function getJSON(path) {
  const r = await fetch(path, { headers: headers() });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
  return body;
}

// POSTs and reads server-sent events: calls onEvent(kind, data) for each.
async function postEvents(path, body, onEvent) {
  const r = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!r.ok) {
    const e = await r.json().catch(() => ({}));
    throw new Error((e.error && e.error.message) || r.statusText);
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let i;
    while ((i = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      let kind = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      onEvent(kind, data);
    }
  }
}

// Streams one chat completion into element `out`; resolves with the text.
async function streamInto(out, control) {
  out.textContent = "";
  out.classList.remove("error");
  out.dataset.state = "streaming";
  const body = {
    model: $("model").value,
    messages: [{ role: "user", content: $("prompt").value }],
    max_tokens: Number($("max-tokens").value) || 48,
    temperature: Number($("temperature").value) || 0,
    seed: Number($("seed").value) || 0,
    stream: true,
    control: control,
  };
  const from = $("layer-from").value.trim(), to = $("layer-to").value.trim();
  if (control.length > 0) {
    if (from !== "" && to !== "") body.layers = from + ".." + to;
    if ($("normalize").checked) body.normalize = true;
  }
  let text = "";
  try {
    await postEvents("/v1/chat/completions", body, (kind, data) => {
      if (data === "[DONE]" || data === "") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      for (const c of chunk.choices || []) {
        if (c.delta && c.delta.content) { text += c.delta.content; out.textContent = text; }
      }
    });
    out.dataset.state = "done";
  } catch (e) {
    out.textContent = e.message;
    out.classList.add("error");
    out.dataset.state = "error";
  }
  return text;
}

function steeringTerms() {
  return vectors.filter((v) => v.status !== "error" && !v.sae_features && (coefficients[v.name] || 0) !== 0)
    .map((v) => ({ vector: v.name, coeff: coefficients[v.name] }));
}

async function run(task) {
  busy++;
  setStatus("generating…", "busy");
  for (const b of ["go", "sweep-go"]) $(b).disabled = true;
  try { await task(); } finally {
    busy--;
    if (busy === 0) {
      for (const b of ["go", "sweep-go"]) $(b).disabled = false;
      setStatus("ready", "done");
    }
  }
}

// Baseline and steered are sent together, so the daemon decodes them in one batch.
function generate() {
  const terms = steeringTerms();
  $("steered-caption").textContent = terms.length ? "steered: " + terms.map((t) => t.vector + " × " + t.coeff).join(" + ") : "steered (no slider moved: same as baseline)";
  return run(() => Promise.all([streamInto($("baseline"), []), streamInto($("steered"), terms)]));
}

function sweep() {
  const name = $("sweep-vector").value, k = Number($("sweep-k").value) || 0;
  if (!name) return Promise.resolve();
  const grid = $("sweep");
  grid.innerHTML = "";
  const jobs = [];
  for (let i = 0; i < 5; i++) {
    const c = Math.round((-k + (2 * k * i) / 4) * 1000) / 1000;
    const cell = document.createElement("div");
    cell.innerHTML = '<div class="caption"></div><div class="out"></div>';
    cell.querySelector(".caption").textContent = name + " × " + c;
    const out = cell.querySelector(".out");
    out.dataset.coeff = String(c);
    grid.appendChild(cell);
    jobs.push(() => streamInto(out, c === 0 ? [] : [{ vector: name, coeff: c }]));
  }
  return run(() => Promise.all(jobs.map((j) => j())));
}

function renderVectors() {
  const box = $("vectors");
  const range = Math.max(0.1, Number($("range").value) || 4);
  box.innerHTML = "";
  if (vectors.length === 0) box.innerHTML = '<span class="muted">no vectors yet: train one below, or put a .gguf/.json file into the vector directory</span>';
  const sweepSelect = $("sweep-vector"), chosen = sweepSelect.value;
  sweepSelect.innerHTML = "";
  for (const v of vectors) {
    const usable = v.status !== "error" && !v.sae_features;
    const row = document.createElement("div");
    row.className = "vector" + (usable ? "" : " bad");
    row.innerHTML = '<span class="name"></span><input type="number" step="0.1" class="coeff-number"><input type="range" class="coeff">';
    row.querySelector(".name").textContent = v.name;
    row.title = usable ? v.file + " (" + v.layers.length + " layers" + (v.method ? ", " + v.method : "") + ")" : (v.error || "feature-space vector: decode it to steer");
    const slider = row.querySelector(".coeff"), number = row.querySelector(".coeff-number");
    slider.min = -range; slider.max = range; slider.step = range / 40;
    slider.dataset.vector = v.name;
    slider.disabled = number.disabled = !usable;
    slider.value = number.value = coefficients[v.name] || 0;
    const set = (x) => { coefficients[v.name] = Number(x) || 0; slider.value = number.value = coefficients[v.name]; };
    slider.addEventListener("input", () => set(slider.value));
    number.addEventListener("change", () => set(number.value));
    box.appendChild(row);
    if (usable) {
      const o = document.createElement("option");
      o.value = o.textContent = v.name;
      sweepSelect.appendChild(o);
    }
  }
  if (chosen && vectors.some((v) => v.name === chosen)) sweepSelect.value = chosen;
}

// The watched directory changes under the daemon: poll its listing.
let lastListing = "";
async function refreshVectors() {
  try {
    const list = await getJSON("/v1/vectors");
    const text = JSON.stringify(list.data);
    if (text !== lastListing) {
      lastListing = text;
      vectors = list.data;
      renderVectors();
    }
  } catch (e) {
    setStatus("vectors: " + e.message, "error");
  }
}

async function train() {
  const name = $("train-name").value.trim();
  const dataset = [];
  for (const line of $("train-pairs").value.split("\n")) {
    if (!line.trim()) continue;
    const bar = line.indexOf("|");
    if (bar < 0) { $("train-status").textContent = "each line needs 'positive | negative'"; return; }
    dataset.push({ positive: line.slice(0, bar).trim(), negative: line.slice(bar + 1).trim() });
  }
  const bar = $("train-progress");
  $("train-go").disabled = true;
  $("train-status").className = "muted";
  $("train-status").textContent = "starting…";
  bar.value = 0;
  try {
    await postEvents("/v1/train", {
      model: $("model").value, name: name, dataset: dataset, chat: $("train-chat").checked,
      overwrite: $("train-overwrite").checked, method: "pca_center",
    }, (kind, data) => {
      const d = JSON.parse(data);
      if (kind === "progress") {
        bar.max = d.total; bar.value = d.done;
        $("train-status").textContent = d.stage + ": " + d.done + " / " + d.total;
      } else if (kind === "result") {
        bar.value = bar.max;
        $("train-status").textContent = "trained " + d.vector.name + " (" + d.vector.layers.length + " layers) in " + d.seconds.toFixed(1) + " s";
        refreshVectors();
      } else if (kind === "error") {
        throw new Error(d.error.message);
      }
    });
  } catch (e) {
    $("train-status").className = "error-text";
    $("train-status").textContent = e.message;
  } finally {
    $("train-go").disabled = false;
  }
}

async function start() {
  try {
    const models = await getJSON("/v1/models");
    for (const m of models.data) {
      const o = document.createElement("option");
      o.value = m.id;
      o.textContent = m.id + " (" + m.architecture + ", " + m.layers + " layers)";
      if (m.default) o.selected = true;
      $("model").appendChild(o);
    }
    await refreshVectors();
    setStatus("ready", "ready");
  } catch (e) {
    setStatus(e.message, "error");
    return;
  }
  setInterval(refreshVectors, 2000);
  $("go").addEventListener("click", generate);
  $("sweep-go").addEventListener("click", sweep);
  $("train-go").addEventListener("click", train);
  $("range").addEventListener("change", renderVectors);
  // Set up from the URL: ?prompt=…&coeff.NAME=1.5&layers=-20..-5&sweep=NAME&k=4&max_tokens=…&run=1
  if (params.has("prompt")) $("prompt").value = params.get("prompt");
  if (params.has("max_tokens")) $("max-tokens").value = params.get("max_tokens");
  if (params.has("layers")) {
    const [a, b] = params.get("layers").split("..");
    $("layer-from").value = a; $("layer-to").value = b;
  }
  for (const [key, value] of params) {
    if (key.startsWith("coeff.")) coefficients[key.slice(6)] = Number(value) || 0;
  }
  const largest = Math.max(0, ...Object.values(coefficients).map(Math.abs));
  if (largest > Number($("range").value)) $("range").value = largest;
  renderVectors();
  if (params.has("sweep")) { $("sweep-vector").value = params.get("sweep"); if (params.has("k")) $("sweep-k").value = params.get("k"); }
  if (params.get("run") === "1") {
    // One after the other: a browser opens at most 6 connections to one host.
    await generate();
    if (params.has("sweep")) await sweep();
    setStatus("ready", "done");
  }
}
start();
</script>
</body>
</html>
"""#
}
