"""The search page: one HTML document with its style and script (no build step, no CDN)."""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamer search</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1c2430; }
  header { background: #1c2430; color: #fff; padding: 12px 20px; font-weight: 600; }
  form { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr));
         gap: 10px; padding: 16px 20px; background: #fff; border-bottom: 1px solid #dde1e6; }
  label { display: flex; flex-direction: column; font-size: 12px; color: #556; gap: 4px; }
  input, select, textarea, button { font: inherit; padding: 6px 8px; border: 1px solid #c7ccd4;
         border-radius: 6px; }
  textarea { min-height: 34px; }
  button { background: #2d6cdf; color: #fff; border: none; cursor: pointer; align-self: end; }
  .verdict { display: inline-block; margin: 4px 4px 0 0; padding: 1px 6px; border-radius: 4px;
             font-size: 12px; }
  .verdict.yes { background: #e3f5e6; color: #1d6b2c; }
  .verdict.no { background: #eef0f3; color: #5b6270; }
  #message { margin: 12px 20px; padding: 10px 12px; border-radius: 6px; display: none; }
  #message.error { display: block; background: #fde8e8; color: #8a1c1c; }
  #message.info { display: block; background: #e8f0fd; color: #1c3f8a; }
  #results { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr));
         gap: 14px; padding: 0 20px 30px; }
  .hit { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; overflow: hidden; }
  .hit img { width: 100%; height: 180px; object-fit: cover; background: #eef0f3; display: block; }
  .hit .text { padding: 10px; height: 160px; overflow: auto; font-size: 13px; }
  .hit .meta { padding: 8px 10px; font-size: 12px; color: #445; border-top: 1px solid #eef0f3; }
  .hit .id { font-weight: 600; word-break: break-all; }
  .hit input[type=range] { width: 100%; box-sizing: border-box; margin: 6px 0 0; }
  .hit .why { font-size: 11px; color: #667; }
  #trainer { margin: 0 20px 30px; padding: 14px; background: #fff; border: 1px solid #dde1e6;
         border-radius: 8px; }
  #trainer h2 { margin: 0 0 10px; font-size: 17px; }
  #trainer .controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: end; }
  #round { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr));
         gap: 12px; margin-top: 12px; }
  #train-status { margin-top: 10px; font-size: 13px; color: #334; }
</style>
</head>
<body>
<header>streamer &middot; search</header>
<form id="search">
  <label>topology <select name="topology" id="topology"></select></label>
  <label>text <input name="text" id="text" placeholder="a cup of coffee"></label>
  <label>or a photo <input type="file" name="image" id="image" accept="image/*"></label>
  <label>or an asset id <input name="id" id="asset" placeholder="photo-coffee"></label>
  <label>filter (key=value, one a line) <textarea name="filter" id="filter"></textarea></label>
  <label>top-k <input name="top_k" id="topk" type="number" min="1" max="100" value="12"></label>
  <button type="submit" id="go">Search</button>
</form>
<div id="message"></div>
<div id="results"></div>
<section id="trainer">
  <h2>Train a classifier on these results</h2>
  <div class="controls">
    <button type="button" id="train-start">Start from the query above</button>
    <label>or a saved classifier <select id="saved"></select></label>
    <button type="button" id="train-saved">Go on training it</button>
    <button type="button" id="train" disabled>Train on my labels</button>
    <button type="button" id="reset" disabled>Reset</button>
    <input id="name" placeholder="a name, e.g. coffee-cups">
    <button type="button" id="save" disabled>Save</button>
  </div>
  <div id="train-status">Search, then start: each round shows results not seen yet; move a
  slider from -1 (no) to +1 (yes) on those you can tell, then train.</div>
  <div id="round"></div>
  <h3>Saved classifiers</h3>
  <ul id="classifiers"></ul>
</section>
<script>
const form = document.getElementById("search");
const message = document.getElementById("message");
const results = document.getElementById("results");

function say(text, kind) {
  message.textContent = text;
  message.className = text ? kind : "";
}

function card(hit, topology) {
  const div = document.createElement("div");
  div.className = "hit";
  div.dataset.id = hit.id;
  if (hit.thumbnail) {
    const img = document.createElement("img");
    img.alt = hit.id;
    img.loading = "lazy";
    const query = new URLSearchParams({topology: topology, id: hit.id});
    img.src = "/thumb?" + query.toString();
    div.appendChild(img);
  } else {
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = hit.text || hit.uri || "";
    div.appendChild(text);
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  const id = document.createElement("div");
  id.className = "id";
  id.textContent = hit.id;
  const score = document.createElement("div");
  score.className = "score";
  score.textContent = "score " + hit.score.toFixed(3);
  const fields = document.createElement("div");
  const {classifiers: verdicts, ...own} = hit.metadata || {};
  fields.textContent = Object.entries(own).map(([k, v]) =>
    k + ": " + (typeof v === "object" ? JSON.stringify(v) : v)).join(" · ");
  meta.append(id, score, fields);
  // what the classifiers attached to the stream said of it
  for (const [name, verdict] of Object.entries(verdicts || {})) {
    const label = document.createElement("div");
    label.className = "verdict " + (verdict.label ? "yes" : "no");
    label.dataset.classifier = name;
    label.textContent = name + ": " + (verdict.label ? "yes" : "no") + " (" +
      Number(verdict.score).toFixed(2) + ")";
    meta.appendChild(label);
  }
  div.appendChild(meta);
  return div;
}

async function topologies() {
  const answer = await fetch("/api/topologies");
  const list = await answer.json();
  const select = document.getElementById("topology");
  for (const t of list) {
    const option = document.createElement("option");
    option.value = t.name;
    option.textContent = t.name + " (" + t.media_type + "; filters: " + t.fields.join(", ") + ")";
    select.appendChild(option);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  say("searching…", "info");
  results.replaceChildren();
  let answer;
  try {
    answer = await fetch("/api/search", {method: "POST", body: new FormData(form)});
  } catch (failure) {
    say("the server cannot be reached: " + failure, "error");
    return;
  }
  let body;
  try {
    body = await answer.json();
  } catch (failure) {
    say("the server answered " + answer.status + " without a message", "error");
    return;
  }
  if (!answer.ok) {
    say(body.error || ("error " + answer.status), "error");
    return;
  }
  const found = body.hits.length + " results from " + body.collection;
  say(found + ", searched with " + body.via, "info");
  for (const hit of body.hits) results.appendChild(card(hit, body.topology));
  document.body.dataset.searches = String(Number(document.body.dataset.searches || 0) + 1);
});

let session = null;
const round = document.getElementById("round");
const status = document.getElementById("train-status");

async function call(url, options) {
  let answer;
  try {
    answer = await fetch(url, options);
  } catch (failure) {
    say("the server cannot be reached: " + failure, "error");
    return null;
  }
  let body = null;
  try { body = await answer.json(); } catch (failure) { body = null; }
  if (!answer.ok) {
    say((body && body.error) || ("error " + answer.status), "error");
    return null;
  }
  return body;
}

function json(body) {
  return {method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify(body)};
}

function showRound(body) {
  round.replaceChildren();
  for (const c of body.candidates) {
    const hit = card({id: c.id, score: c.logit, thumbnail: c.thumbnail, text: c.uri,
                      metadata: {}}, body.topology);
    const why = document.createElement("div");
    why.className = "why";
    why.textContent = c.why === "boundary" ? "near the boundary" : "top of the ranking";
    const slider = document.createElement("input");
    slider.type = "range"; slider.min = "-1"; slider.max = "1"; slider.step = "0.5";
    slider.value = "0"; slider.dataset.id = c.id; slider.className = "label";
    hit.querySelector(".meta").append(why, slider);
    round.appendChild(hit);
  }
  status.textContent = "round " + body.round + ": " + body.candidates.length + " results; " +
    body.labels + " labels so far (" + body.positives + " positive)";
  for (const id of ["train", "reset", "save"]) document.getElementById(id).disabled = false;
  document.body.dataset.rounds = String(body.round);
}

async function classifiers() {
  const list = await call("/api/classifiers");
  if (!list) return;
  const ul = document.getElementById("classifiers");
  const saved = document.getElementById("saved");
  ul.replaceChildren(); saved.replaceChildren();
  for (const c of list) {
    const li = document.createElement("li");
    li.dataset.name = c.name;
    li.dataset.attached = String(c.attached);
    li.textContent = c.name + " (" + c.topology + ", " + c.model_version + ", " + c.labels +
      " labels, " + c.positives + " positive)" +
      (c.attached ? ": labels the stream, search with label:" + c.name + "=true " : " ");
    const toggle = document.createElement("button");
    toggle.type = "button"; toggle.className = "attach";
    toggle.textContent = c.attached ? "Detach" : "Attach to the stream";
    toggle.addEventListener("click", async () => {
      const step = c.attached ? "detach" : "attach";
      const body = await call("/api/classifiers/" + encodeURIComponent(c.name) + "/" + step,
                              json({}));
      if (!body) return;
      say(c.name + (body.attached ? " labels every new upload of " + c.topology
                                  : " no longer labels the stream"), "info");
      classifiers();
    });
    li.appendChild(toggle);
    ul.appendChild(li);
    const option = document.createElement("option");
    option.value = c.name; option.textContent = c.name;
    saved.appendChild(option);
  }
}

document.getElementById("train-start").addEventListener("click", async () => {
  say("starting a training session…", "info");
  const body = await call("/api/trainer", {method: "POST", body: new FormData(form)});
  if (!body) return;
  session = body.session;
  say("training from " + body.via, "info");
  showRound(body);
});

document.getElementById("train-saved").addEventListener("click", async () => {
  const name = document.getElementById("saved").value;
  const topology = document.getElementById("topology").value;
  const body = await call("/api/trainer", json({topology: topology, classifier: name}));
  if (!body) return;
  session = body.session;
  say("training from " + body.via, "info");
  showRound(body);
});

document.getElementById("train").addEventListener("click", async () => {
  const labels = {};
  for (const slider of round.querySelectorAll("input.label")) {
    if (Number(slider.value) !== 0) labels[slider.dataset.id] = Number(slider.value);
  }
  const body = await call("/api/trainer/" + session + "/train", json({labels: labels}));
  if (body) { say("trained on " + Object.keys(labels).length + " new labels", "info");
              showRound(body); }
});

document.getElementById("reset").addEventListener("click", async () => {
  const body = await call("/api/trainer/" + session + "/reset", json({}));
  if (body) { say("started again from the query", "info"); showRound(body); }
});

document.getElementById("save").addEventListener("click", async () => {
  const name = document.getElementById("name").value.trim();
  const body = await call("/api/trainer/" + session + "/save", json({name: name}));
  if (body) { say("saved " + body.saved + " (" + body.labels + " labels)", "info");
              classifiers(); }
});

topologies();
classifiers();
</script>
</body>
</html>
"""
