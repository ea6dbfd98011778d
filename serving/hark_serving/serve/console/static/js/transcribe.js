// The transcribe view: a queue of files (dropped, picked or recorded), sent one at a time.

import { upload } from "./api.js";
import { bytes, clear, h } from "./dom.js";
import { t } from "./i18n.js";
import { show } from "./result.js";

const $ = (id) => document.getElementById(id);
const queue = [];
let running = false;
let counter = 0;
let onUnauthorized = () => {};

export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function statusText(item) {
  switch (item.state) {
    case "uploading":
      return t("queue.uploading", { p: Math.round(item.progress * 100) });
    case "processing":
      return t("queue.processing");
    case "done":
      return t("queue.done", { n: item.transcript.segments.length });
    case "error":
      return item.error;
    default:
      return t("queue.waiting");
  }
}

function renderQueue() {
  const list = $("queue");
  clear(list);
  $("queue-empty").hidden = queue.length > 0;
  for (const item of queue) {
    const progress = h("progress", {
      max: "1",
      value: item.state === "uploading" ? String(item.progress) : item.state === "waiting" ? "0" : undefined,
      "aria-label": item.name,
      class: item.state === "done" || item.state === "error" ? "spent" : null,
    });
    list.append(
      h(
        "li",
        { class: `queue-item state-${item.state}`, dataset: { id: item.id } },
        h("span", { class: "name" }, item.name),
        h("span", { class: "size hint" }, bytes(item.file.size)),
        progress,
        h("span", { class: item.state === "error" ? "status error" : "status", role: item.state === "error" ? "alert" : null }, statusText(item)),
        item.state === "done" ? h("button", { type: "button", class: "secondary show", onclick: () => show(item) }, t("queue.show")) : null,
        item.state === "waiting" || item.state === "error" || item.state === "done"
          ? h("button", { type: "button", class: "link remove", "aria-label": t("queue.remove", { name: item.name }), onclick: () => remove(item) }, "✕")
          : null,
      ),
    );
  }
}

function remove(item) {
  const i = queue.indexOf(item);
  if (i >= 0) queue.splice(i, 1);
  renderQueue();
}

export function addFiles(files) {
  for (const file of files) {
    counter += 1;
    queue.push({ id: `f${counter}`, file, name: file.name, url: URL.createObjectURL(file), state: "waiting", progress: 0 });
  }
  renderQueue();
}

function options() {
  const split = $("opt-split").checked;
  const roles = split ? [$("opt-role-0").value.trim() || "agent", $("opt-role-1").value.trim() || "customer"] : null;
  return {
    language: $("opt-language").value,
    use_itn: $("opt-itn").checked ? "true" : "false",
    timestamps: $("opt-words").checked ? "word" : "segment",
    channels: split ? "split" : "mix",
    roles,
  };
}

async function transcribeOne(item, opts) {
  const form = new FormData();
  form.append("file", item.file, item.name);
  for (const key of ["language", "use_itn", "timestamps", "channels"]) form.append(key, opts[key]);
  if (opts.roles) form.append("roles", opts.roles.join(","));
  item.roles = opts.roles;
  item.state = "uploading";
  renderQueue();
  try {
    item.transcript = await upload("v1/transcribe", form, {
      onProgress: (p) => {
        item.progress = p;
        renderQueue();
      },
      onUploaded: () => {
        item.state = "processing";
        renderQueue();
      },
    });
    item.state = "done";
    renderQueue();
    show(item);
  } catch (exc) {
    item.state = "error";
    item.error = exc.retryAfter ? `${exc.message} — ${t("queue.busy", { s: exc.retryAfter })}` : exc.code === "network" ? t("queue.network") : exc.message;
    item.errorCode = exc.code;
    renderQueue();
    if (exc.status === 401) onUnauthorized(exc.message);
  }
}

export async function start() {
  if (running) return;
  const waiting = queue.filter((item) => item.state === "waiting");
  if (!waiting.length) {
    $("notice").textContent = t("start.none");
    return;
  }
  $("notice").textContent = "";
  running = true;
  $("start").disabled = true;
  const opts = options();
  try {
    for (const item of waiting) await transcribeOne(item, opts);
  } finally {
    running = false;
    $("start").disabled = false;
  }
}

// Recording: MediaRecorder's own format (WebM/Opus in Chromium, which the API decodes).
let recorder = null;
let timer = null;

async function toggleRecording() {
  const button = $("record");
  if (recorder) {
    recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (exc) {
    $("record-state").textContent = t("record.denied", { message: exc.message || exc.name });
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.addEventListener("dataavailable", (event) => event.data.size && chunks.push(event.data));
  recorder.addEventListener("stop", () => {
    stream.getTracks().forEach((track) => track.stop());
    clearInterval(timer);
    const type = recorder.mimeType || "audio/webm";
    const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
    addFiles([new File(chunks, `${t("record.name")}-${stamp}.${ext}`, { type })]);
    recorder = null;
    button.textContent = t("record.start");
    button.setAttribute("aria-pressed", "false");
    $("record-state").textContent = "";
  });
  const began = Date.now();
  recorder.start(250);
  button.textContent = t("record.stop");
  button.setAttribute("aria-pressed", "true");
  $("record-state").textContent = t("record.on", { s: 0 });
  timer = setInterval(() => {
    $("record-state").textContent = t("record.on", { s: Math.round((Date.now() - began) / 1000) });
  }, 500);
}

export function initTranscribe() {
  const drop = $("drop");
  const input = $("files");
  // The input sits inside the drop zone: its own click bubbles here and must not open a
  // second picker.
  drop.addEventListener("click", (event) => event.target !== input && input.click());
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    addFiles([...event.dataTransfer.files]);
  });
  $("opt-split").addEventListener("change", () => {
    $("roles").hidden = !$("opt-split").checked;
  });
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    start();
  });
  const record = $("record");
  if (!navigator.mediaDevices || !window.MediaRecorder) record.disabled = true;
  record.addEventListener("click", toggleRecording);
  renderQueue();
}

export function refreshQueue() {
  renderQueue();
}
