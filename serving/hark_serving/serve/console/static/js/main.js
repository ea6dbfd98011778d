// Wiring: language, tag style, the token prompt, the views.

import { ApiError, getJSON, setToken, token } from "./api.js";
import { initialLanguage, onLanguageChange, setLanguage, t } from "./i18n.js";
import { initJobs, rerenderJobs, watchJobs } from "./jobs.js";
import { setLabelStyle } from "./labels.js";
import { initResult, rerender, setNotifier } from "./result.js";
import { initTranscribe, refreshQueue, setUnauthorizedHandler } from "./transcribe.js";

const $ = (id) => document.getElementById(id);
const STYLE_KEY = "hark.label-style";

function notify(message, isError = false) {
  const el = $("notice");
  el.textContent = message;
  el.classList.toggle("error", isError);
}

function showView(name) {
  for (const view of ["transcribe", "jobs"]) {
    const on = view === name;
    $(`view-${view}`).hidden = !on;
    $(`tab-${view}`).setAttribute("aria-pressed", String(on));
  }
  watchJobs(name === "jobs");
}

// The page itself is public; the API is not. Ask for the token once, check it against a
// guarded route, and keep it in sessionStorage (this tab only).
function askToken(message = "") {
  return new Promise((resolve) => {
    const dialog = $("token-dialog");
    const input = $("token-input");
    const error = $("token-error");
    error.textContent = message;
    input.value = "";
    const submit = async (event) => {
      event.preventDefault();
      const given = input.value.trim();
      if (!given) return;
      try {
        const config = await getJSON("v1/console/config", { tokenOverride: given });
        setToken(given);
        $("token-form").removeEventListener("submit", submit);
        dialog.close();
        resolve(config);
      } catch (exc) {
        error.textContent = exc instanceof ApiError && exc.status === 401 ? t("auth.refused", { message: exc.message }) : exc.message;
        input.select();
      }
    };
    $("token-form").addEventListener("submit", submit);
    dialog.addEventListener("cancel", (event) => event.preventDefault());
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

async function connect() {
  const auth = await getJSON("console/auth.json");
  if (auth.token_required && !token()) return askToken();
  try {
    return await getJSON("v1/console/config");
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 401) {
      setToken("");
      return askToken(t("auth.refused", { message: exc.message }));
    }
    throw exc;
  }
}

function applyConfig(config) {
  $("tab-jobs").hidden = !config.jobs;
  $("forget-token").hidden = !token();
  const d = config.defaults || {};
  if (d.language) $("opt-language").value = d.language;
  if (typeof d.use_itn === "boolean") $("opt-itn").checked = d.use_itn;
  $("opt-words").checked = d.timestamps === "word";
  $("opt-split").checked = d.channels === "split";
  $("roles").hidden = !$("opt-split").checked;
  document.body.dataset.ready = "true";
}

async function main() {
  setLanguage(initialLanguage());
  $("ui-lang").value = document.documentElement.lang.startsWith("zh") ? "zh" : "en";
  $("ui-lang").addEventListener("change", () => setLanguage($("ui-lang").value, true));
  const style = localStorage.getItem(STYLE_KEY) || "text";
  setLabelStyle(style);
  $("label-style").value = style;
  $("label-style").addEventListener("change", () => {
    setLabelStyle($("label-style").value);
    localStorage.setItem(STYLE_KEY, $("label-style").value);
    rerender();
  });
  onLanguageChange(() => {
    rerender();
    refreshQueue();
    rerenderJobs();
  });
  setNotifier(notify);
  initResult();
  initTranscribe();
  initJobs();
  $("tab-transcribe").addEventListener("click", () => showView("transcribe"));
  $("tab-jobs").addEventListener("click", () => showView("jobs"));
  $("forget-token").addEventListener("click", () => {
    setToken("");
    location.reload();
  });
  setUnauthorizedHandler(async (message) => {
    setToken("");
    applyConfig(await askToken(t("auth.refused", { message })));
  });
  try {
    applyConfig(await connect());
  } catch (exc) {
    notify(exc.message, true);
  }
}

main();
