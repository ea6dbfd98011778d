// The result view: player, timeline lanes, segment list (synced with the player), summary,
// downloads.

import { request } from "./api.js";
import { clear, clock, h } from "./dom.js";
import { t } from "./i18n.js";
import {
  EMOTION_CLASSES,
  emotionClass,
  emotionLabel,
  emotionText,
  eventLabel,
  eventText,
  languageLabel,
  languageText,
} from "./labels.js";

const QUIET_EMOTIONS = new Set(["NEUTRAL", "EMO_UNKNOWN"]);

let shown = null; // {item, transcript, segmentEls: [[seg, li]], playhead}
let notify = () => {};

export function setNotifier(fn) {
  notify = fn;
}

const $ = (id) => document.getElementById(id);

// Who speaks on a channel: the transcript's own role, the call report's map, the names typed
// in the form, or the channel number.
export function laneName(seg, transcript, roles) {
  if (seg.role) return seg.role;
  if (seg.channel === null || seg.channel === undefined) return t("timeline.all");
  const callRoles = transcript.call && transcript.call.roles;
  if (callRoles && callRoles[String(seg.channel)]) return callRoles[String(seg.channel)];
  if (roles && roles[seg.channel]) return roles[seg.channel];
  return t("timeline.channel", { n: seg.channel + 1 });
}

function lanes(transcript, roles) {
  const names = [];
  for (const seg of transcript.segments) {
    const name = laneName(seg, transcript, roles);
    if (!names.includes(name)) names.push(name);
  }
  return names.length ? names : [t("timeline.all")];
}

function spans(value) {
  // A call report's lists of moments, whatever their nesting: every {start, end} found.
  const out = [];
  const walk = (v) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      if (typeof v.start === "number" && typeof v.end === "number") out.push(v);
      else Object.values(v).forEach(walk);
    }
  };
  walk(value);
  return out;
}

function percent(x, duration) {
  return `${Math.min(100, Math.max(0, (100 * x) / duration)).toFixed(3)}%`;
}

function seek(seconds) {
  const player = $("player");
  player.currentTime = seconds;
  highlight(seconds);
}

function renderTimeline(transcript, roles) {
  const root = $("timeline");
  clear(root);
  const duration = Math.max(transcript.source.duration || 0, 0.001);
  const call = transcript.call || null;
  for (const name of lanes(transcript, roles)) {
    const track = h("div", { class: "lane-track" });
    for (const seg of transcript.segments) {
      if (laneName(seg, transcript, roles) !== name) continue;
      const emo = seg.emotion || "EMO_UNKNOWN";
      const span = h("span", {
        class: `span ${emotionClass(emo)}`,
        title: `${clock(seg.start)}–${clock(seg.end)} ${emotionText(emo)}`,
      });
      span.style.left = percent(seg.start, duration);
      span.style.width = percent(Math.max(seg.end - seg.start, 0.05), duration);
      track.append(span);
      for (const ev of seg.events || []) {
        const mark = h("span", { class: "marker", title: `${clock(seg.start)} ${eventText(ev)}` }, eventLabel(ev));
        mark.style.left = percent(seg.start, duration);
        track.append(mark);
      }
    }
    if (call) {
      const nonTalk = call.non_talk && call.non_talk.instances ? call.non_talk.instances : [];
      for (const gap of nonTalk) {
        const title = gap.hold ? t("timeline.hold") : t("timeline.nontalk");
        const span = h("span", { class: gap.hold ? "gap hold" : "gap", title: `${clock(gap.start)}–${clock(gap.end)} ${title}` });
        span.style.left = percent(gap.start, duration);
        span.style.width = percent(gap.end - gap.start, duration);
        track.append(span);
      }
      const by = (call.interruptions && call.interruptions.by_interrupter) || {};
      for (const moment of spans(by[name])) {
        const mark = h("span", { class: "interrupt", title: `${clock(moment.start)} ${t("timeline.interruption")}` }, "⚡");
        mark.style.left = percent(moment.start, duration);
        track.append(mark);
      }
    }
    const playhead = h("span", { class: "playhead", "aria-hidden": "true" });
    track.append(playhead);
    track.addEventListener("click", (event) => {
      const box = track.getBoundingClientRect();
      seek(((event.clientX - box.left) / box.width) * duration);
    });
    root.append(h("div", { class: "lane" }, h("span", { class: "lane-label" }, name), track));
  }
  const legend = $("legend");
  clear(legend);
  const present = new Set(transcript.segments.map((s) => s.emotion || "EMO_UNKNOWN"));
  for (const emo of EMOTION_CLASSES.filter((e) => present.has(e))) {
    legend.append(h("span", { class: "legend-item" }, h("span", { class: `swatch ${emotionClass(emo)}` }), emotionText(emo)));
  }
}

function badge(cls, visible, readableText) {
  return h("span", { class: `badge ${cls}`, title: readableText, "aria-label": readableText }, visible);
}

function renderSegments(transcript, roles) {
  const list = $("segments");
  clear(list);
  const els = [];
  if (!transcript.segments.length) list.append(h("li", { class: "hint" }, t("segments.none")));
  const split = transcript.options && transcript.options.channels === "split";
  for (const seg of transcript.segments) {
    const text = h("p", { class: "seg-text" });
    if (seg.words && seg.words.length) {
      seg.words.forEach((word, i) => {
        if (i) text.append(" ");
        text.append(
          h("button", {
            type: "button",
            class: "word",
            dataset: { start: word.start },
            title: clock(word.start),
            onclick: (event) => {
              event.stopPropagation();
              seek(word.start);
            },
          }, word.text),
        );
      });
    } else {
      text.textContent = seg.text;
    }
    const tags = h("span", { class: "tags" });
    if (split || seg.role) tags.append(badge("who", laneName(seg, transcript, roles), laneName(seg, transcript, roles)));
    if (seg.language) tags.append(badge("lang", languageLabel(seg.language), languageText(seg.language)));
    if (seg.emotion && !QUIET_EMOTIONS.has(seg.emotion)) {
      tags.append(badge(`emo ${emotionClass(seg.emotion)}`, emotionLabel(seg.emotion), emotionText(seg.emotion)));
    }
    for (const ev of seg.events || []) tags.append(badge("event", eventLabel(ev), eventText(ev)));
    const li = h(
      "li",
      { class: "seg", dataset: { start: seg.start, end: seg.end, id: seg.id } },
      h("button", {
        type: "button",
        class: "seg-time",
        "aria-label": t("segments.play", { t: clock(seg.start) }),
        onclick: (event) => {
          event.stopPropagation();
          seek(seg.start);
        },
      }, `${clock(seg.start)} – ${clock(seg.end)}`),
      tags,
      text,
    );
    li.addEventListener("click", () => seek(seg.start));
    list.append(li);
    els.push([seg, li]);
  }
  return els;
}

function entries(obj, fmt) {
  const items = Object.entries(obj || {});
  if (!items.length) return h("dd", {}, t("summary.none"));
  return h("dd", {}, h("ul", { class: "plain" }, items.map(([k, v]) => h("li", {}, fmt(k, v)))));
}

function renderSummary(transcript) {
  const body = $("summary-body");
  clear(body);
  const s = transcript.summary || {};
  const src = transcript.source || {};
  const dl = h(
    "dl",
    {},
    h("dt", {}, t("summary.duration")),
    h("dd", {}, clock(src.duration)),
    h("dt", {}, t("summary.speech")),
    h("dd", {}, clock(s.speech_seconds)),
    h("dt", {}, t("summary.format")),
    h("dd", {}, `${src.format || ""}, ${src.sample_rate || "?"} Hz, ${src.channels || "?"} ch`),
    h("dt", {}, t("summary.languages")),
    entries(s.languages, (k, v) => `${languageLabel(k)} ${languageLabel(k) !== languageText(k) ? languageText(k) : ""} ${clock(v)}`.replace(/\s+/g, " ")),
    h("dt", {}, t("summary.emotions")),
    entries(s.emotions, (k, v) => h("span", {}, h("span", { class: `swatch ${emotionClass(k)}` }), ` ${emotionLabel(k)} ${emotionLabel(k) !== emotionText(k) ? emotionText(k) : ""} ${clock(v)}`)),
    h("dt", {}, t("summary.events")),
    entries(s.events, (k, v) => `${eventLabel(k)} ${eventLabel(k) !== eventText(k) ? eventText(k) : ""} × ${v}`.replace(/\s+/g, " ")),
    h("dt", {}, t("summary.flags")),
    (s.flags || []).length ? h("dd", {}, (s.flags || []).map((f) => h("span", { class: "badge flag" }, f))) : h("dd", {}, t("summary.none")),
  );
  body.append(dl);
  const call = transcript.call;
  if (call) {
    const rows = h("dl", {});
    if (call.talk_time) {
      rows.append(h("dt", {}, t("summary.talk")), entries(call.talk_time, (role, v) => {
        const share = v && typeof v.share === "number" ? ` (${Math.round(v.share * 100)}%)` : "";
        return `${role}: ${clock(v && v.seconds)}${share}`;
      }));
    }
    if (call.non_talk) {
      rows.append(h("dt", {}, t("summary.nontalk")), h("dd", {}, clock(call.non_talk.total_seconds)));
    }
    if (call.interruptions) {
      rows.append(h("dt", {}, t("summary.interruptions")), h("dd", {}, String(call.interruptions.total ?? 0)));
    }
    const matched = (call.categories && call.categories.matched) || [];
    rows.append(
      h("dt", {}, t("summary.categories")),
      matched.length ? h("dd", {}, matched.map((c) => h("span", { class: "badge flag" }, c))) : h("dd", {}, t("summary.none")),
    );
    body.append(h("h4", {}, t("summary.call")), rows);
  }
}

export function highlight(seconds) {
  if (!shown) return;
  const duration = Math.max(shown.transcript.source.duration || 0, 0.001);
  for (const head of document.querySelectorAll("#timeline .playhead")) head.style.left = percent(seconds, duration);
  for (const [seg, li] of shown.segmentEls) {
    const on = seconds >= seg.start && seconds < seg.end;
    li.classList.toggle("current", on);
    if (on) li.setAttribute("aria-current", "true");
    else li.removeAttribute("aria-current");
  }
}

async function download(format) {
  if (!shown) return;
  try {
    const response = await request(`v1/console/render?format=${format}`, {
      method: "POST",
      body: JSON.stringify(shown.transcript),
    });
    const blob = await response.blob();
    const base = (shown.item.name || "transcript").replace(/\.[^.]+$/, "");
    const link = h("a", { href: URL.createObjectURL(blob), download: `${base}.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (exc) {
    notify(t("download.failed", { message: exc.message }), true);
  }
}

export function show(item) {
  const transcript = item.transcript;
  shown = { item, transcript, segmentEls: [] };
  $("result").hidden = false;
  $("result-title").textContent = item.name;
  const player = $("player");
  if (player.dataset.for !== item.id) {
    player.src = item.url;
    player.dataset.for = item.id;
  }
  renderTimeline(transcript, item.roles);
  shown.segmentEls = renderSegments(transcript, item.roles);
  renderSummary(transcript);
  highlight(player.currentTime || 0);
}

export function rerender() {
  if (shown) show(shown.item);
}

export function initResult() {
  const player = $("player");
  for (const name of ["timeupdate", "seeked", "seeking"]) {
    player.addEventListener(name, () => highlight(player.currentTime));
  }
  for (const button of document.querySelectorAll("#downloads button[data-format]")) {
    button.addEventListener("click", () => download(button.dataset.format));
  }
}
