// The jobs view: TranscriptionJobs and their progress, read-only.

import { getJSON } from "./api.js";
import { age, clear, h } from "./dom.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
let last = null;
let timer = null;

function row(job) {
  const c = job.counts;
  const done = c.succeeded;
  const total = c.total;
  const failures = job.recent_failures || [];
  const name = h("td", {}, h("strong", {}, job.name), h("span", { class: "hint" }, ` ${job.namespace}`));
  if (job.input) name.append(h("div", { class: "hint uri" }, `${job.input} → ${job.output || ""}`));
  if (failures.length) {
    name.append(
      h(
        "details",
        { class: "failures" },
        h("summary", {}, t("jobs.failures", { n: failures.length })),
        h("ul", { class: "plain" }, failures.map((f) => h("li", {}, h("code", {}, f.key), ` ${f.reason}`, f.message ? h("div", { class: "hint" }, f.message) : null))),
      ),
    );
  }
  const progress = h("progress", { max: String(Math.max(total, 1)), value: String(done), "aria-label": `${job.name} ${done}/${total}` });
  return h(
    "tr",
    { dataset: { job: `${job.namespace}/${job.name}` } },
    name,
    h("td", {}, h("span", { class: `phase phase-${job.phase}` }, job.phase)),
    h("td", { class: "done" }, progress, h("span", { class: "count" }, ` ${done}/${total}`)),
    h("td", { class: c.failed ? "failed bad" : "failed" }, String(c.failed)),
    h("td", { title: job.created || "" }, age(job.created)),
    h("td", { class: "uri" }, job.report_uri ? h("code", { title: job.summary_uri || "" }, job.report_uri) : "–"),
  );
}

function render() {
  const body = $("jobs-body");
  clear(body);
  if (!last) return;
  const ns = last.namespaces.join(", ");
  for (const job of last.jobs) body.append(row(job));
  $("jobs-state").textContent = last.jobs.length ? t("jobs.loaded", { n: last.jobs.length, ns }) : t("jobs.none", { ns });
}

export async function loadJobs() {
  try {
    last = await getJSON("v1/jobs");
    render();
  } catch (exc) {
    $("jobs-state").textContent = exc.message;
  }
}

export function initJobs() {
  $("jobs-refresh").addEventListener("click", loadJobs);
}

export function watchJobs(on) {
  clearInterval(timer);
  timer = null;
  if (on) {
    loadJobs();
    timer = setInterval(loadJobs, 10000);
  }
}

export function rerenderJobs() {
  render();
}
