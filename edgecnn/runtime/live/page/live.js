// The edgecnn live page: pulls the newest frame, polls /status.json for the overlay, and (record) sends the
// human's commands. Every request carries the token from this page's own URL when there is one.
"use strict";
const TOKEN = new URLSearchParams(location.search).get("token");
const TQ = TOKEN ? "&token=" + encodeURIComponent(TOKEN) : "";
const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let info = {};
let kind = "";

async function post(name, body) {
  const headers = { "Content-Type": "application/json" };
  if (TOKEN) headers["X-Edgecnn-Token"] = TOKEN;
  try {
    const r = await fetch("api/" + name, { method: "POST", headers, body: JSON.stringify(body) });
    return r.ok ? await r.json() : null;
  } catch (e) { return null; }
}

// The image: one request after the previous image is shown, so a slow link gets fewer frames, never old ones.
async function pullFrames() {
  const img = $("live");
  let seq = 0, url = null;
  for (;;) {
    try {
      const r = await fetch("frame.jpg?after=" + seq + TQ, { cache: "no-store" });
      if (r.status === 200) {
        seq = parseInt(r.headers.get("X-Frame-Seq"), 10) || seq + 1;
        const next = URL.createObjectURL(await r.blob());
        await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = next; });
        if (url) URL.revokeObjectURL(url);
        url = next;
        img.dataset.seq = String(seq);
        img.dataset.age = r.headers.get("X-Frame-Age-Ms") || "";
      } else if (r.status === 401) { banner("this page needs its token: open the URL edgecnn printed"); return; }
      else await sleep(r.status === 204 ? 0 : 300);
    } catch (e) { banner("connection lost, retrying"); await sleep(500); }
  }
}

function banner(text) { const b = $("banner"); b.hidden = !text; b.textContent = text || ""; }

function drawGauge(human, model) {
  const c = $("gauge"), g = c.getContext("2d"), w = c.width, h = c.height;
  c.hidden = false;
  g.clearRect(0, 0, w, h);
  g.fillStyle = "#0008"; g.fillRect(0, 0, w, h);
  g.strokeStyle = "#888"; g.beginPath(); g.moveTo(w / 2, 2); g.lineTo(w / 2, h - 2); g.stroke();
  const mark = (v, color, y0, y1) => {
    if (typeof v !== "number") return;
    const x = w / 2 + Math.max(-1, Math.min(1, v)) * (w / 2 - 4);
    g.fillStyle = color; g.fillRect(x - 3, y0, 6, y1 - y0);
  };
  mark(human, "#3d8", 2, h / 2);
  mark(model, "#f90", h / 2, h - 2);
}

function fmt(v, d = 2) { return typeof v === "number" ? v.toFixed(d) : "-"; }

async function pollStatus() {
  for (;;) {
    try {
      const r = await fetch("status.json?" + TQ.slice(1), { cache: "no-store" });
      if (r.status === 401) { banner("this page needs its token: open the URL edgecnn printed"); return; }
      const s = await r.json();
      if (kind !== s.kind) setup(s);
      const o = s.overlay || {};
      const parts = [];
      if (o.label !== undefined) parts.push(o.label + (typeof o.score === "number" ? " " + o.score.toFixed(2) : ""));
      if (o.human) parts.push("you " + fmt(o.human.angle) + " / " + fmt(o.human.throttle));
      if (typeof o.steering === "number") parts.push("model " + fmt(o.steering));
      if (o.state) parts.push(o.state);
      if (o.recording) parts.push("\u25cf REC");
      $("label").textContent = parts.join("  ");
      if (o.human || typeof o.steering === "number") drawGauge(o.human ? o.human.angle : null, o.steering);
      const lat = o.latency_ms || {};
      $("latency").textContent = Object.keys(lat).map((k) => k + " " + fmt(lat[k], 1) + " ms").join(" · ");
      const fps = typeof o.fps === "number" ? o.fps : s.fps;
      $("stats").textContent = "frame " + s.frame + " · " + fmt(fps, 1) + " FPS · age " + fmt(s.frame_age_ms, 0) +
        " ms · " + s.clients + " stream client(s)";
      if (o.camera_stale) banner("camera stalled: not recording"); else if ($("banner").textContent.startsWith("camera")) banner("");
      if (kind === "drive") showDrive(o);
      if (kind === "images") showCounts(o);
    } catch (e) { /* the next poll retries */ }
    await sleep(250);
  }
}

function setup(s) {
  kind = s.kind; info = s.info || {};
  $("title").textContent = s.title; $("kind").textContent = s.kind;
  document.title = "edgecnn " + s.kind + ": " + s.title;
  if (kind === "drive") setupDrive();
  if (kind === "images") setupImages();
}

// ---- drive: joystick, keyboard, commands at 10 Hz while the page is visible ----
const human = { angle: 0, throttle: 0, keys: new Set(), pad: null };
function setupDrive() {
  $("drive").hidden = false;
  $("dropn").textContent = info.drop_seconds || 5;
  const pad = $("pad"), knob = $("knob");
  const place = (x, y) => { knob.style.left = (85 + x * 85) + "px"; knob.style.top = (85 - y * 85) + "px"; };
  const fromEvent = (e) => {
    const r = pad.getBoundingClientRect();
    let x = (e.clientX - r.left) / r.width * 2 - 1, y = 1 - (e.clientY - r.top) / r.height * 2;
    x = Math.max(-1, Math.min(1, x)); y = Math.max(-1, Math.min(1, y));
    human.pad = { x, y }; place(x, y);
  };
  pad.addEventListener("pointerdown", (e) => { pad.setPointerCapture(e.pointerId); fromEvent(e); });
  pad.addEventListener("pointermove", (e) => { if (human.pad) fromEvent(e); });
  const release = () => { human.pad = null; place(0, 0); };
  pad.addEventListener("pointerup", release); pad.addEventListener("pointercancel", release);
  $("rec").addEventListener("click", () => post("record", { toggle: true }));
  $("drop").addEventListener("click", () => post("drop", {}));
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT") return;
    if (e.key.startsWith("Arrow")) { human.keys.add(e.key); e.preventDefault(); }
    else if (e.key === " ") { human.keys.clear(); release(); e.preventDefault(); }
    else if (e.key === "d" && !e.repeat) post("drop", {});
    else if (e.key === "r" && !e.repeat) post("record", { toggle: true });
  });
  document.addEventListener("keyup", (e) => human.keys.delete(e.key));
  window.addEventListener("blur", () => { human.keys.clear(); release(); });
  setInterval(sendControl, 100);
}

function sendControl() {
  if (document.visibilityState !== "visible") return;  // stop sending: the device goes neutral on its deadline
  let angle = 0, throttle = 0;
  if (human.pad) { angle = human.pad.x; throttle = human.pad.y; }
  const ks = parseFloat($("kbdsteer").value), kt = parseFloat($("kbdthr").value), k = human.keys;
  if (k.has("ArrowLeft")) angle -= ks;
  if (k.has("ArrowRight")) angle += ks;
  if (k.has("ArrowUp")) throttle += kt;
  if (k.has("ArrowDown")) throttle -= kt;
  human.angle = Math.max(-1, Math.min(1, angle)); human.throttle = Math.max(-1, Math.min(1, throttle));
  post("control", { angle: human.angle, throttle: human.throttle });
}

function showDrive(o) {
  const h = o.human || {};
  $("human").textContent = "angle " + fmt(h.angle) + " · throttle " + fmt(h.throttle) + " · " + (h.state || "-");
  $("recstate").textContent = (o.paused ? "paused" : (o.recording ? "RECORDING" : "waiting for throttle")) +
    " · " + (o.records || 0) + " records, " + (o.deleted || 0) + " dropped";
  $("rec").textContent = o.paused ? "resume recording (r)" : "pause recording (r)";
  $("rec").classList.toggle("on", !!o.recording);
}

// ---- images: one button per class; tap = snapshot, hold = burst (heartbeats while held) ----
let holding = null;
// Capture posts go one after another: sent side by side, a tap's release could reach the server before its press
// (seen on a loaded machine), and the server then took the tap for a hold and saved a burst.
// A heartbeat is skipped while a post is still on its way, so a slow server does not make the queue grow.
let captureQueue = Promise.resolve(), captureInFlight = 0;
function postCapture(body) {
  captureInFlight += 1;
  captureQueue = captureQueue.then(() => post("capture", body)).finally(() => { captureInFlight -= 1; });
  return captureQueue;
}
function setupImages() {
  $("images").hidden = false;
  const box = $("classes");
  (info.classes || []).forEach((name, i) => {
    const b = document.createElement("button");
    b.type = "button"; b.id = "class-" + name; b.dataset.name = name;
    b.innerHTML = (i < 9 ? "<b>" + (i + 1) + "</b> " : "") + name + " <span class='count'>0</span>";
    b.addEventListener("pointerdown", () => startHold(name));
    b.addEventListener("pointerup", stopHold); b.addEventListener("pointerleave", stopHold);
    box.appendChild(b);
  });
  document.addEventListener("keydown", (e) => {
    const i = parseInt(e.key, 10) - 1, names = info.classes || [];
    if (!e.repeat && i >= 0 && i < names.length) startHold(names[i]);
  });
  document.addEventListener("keyup", (e) => { if (parseInt(e.key, 10) > 0) stopHold(); });
  window.addEventListener("blur", stopHold);
  setInterval(() => { if (holding && captureInFlight === 0 && document.visibilityState === "visible") postCapture({ label: holding, hold: true }); }, 100);
}
function startHold(name) {
  holding = name; const b = $("class-" + name); if (b) b.classList.add("held");
  postCapture({ label: name, hold: true });
}
function stopHold() {
  if (!holding) return;
  const b = $("class-" + holding); if (b) b.classList.remove("held");
  postCapture({ label: holding, hold: false }); holding = null;
}
function showCounts(o) {
  const counts = o.counts || {};
  for (const name of Object.keys(counts)) {
    const b = $("class-" + name); if (b) b.querySelector(".count").textContent = counts[name];
  }
}

pullFrames();
pollStatus();
