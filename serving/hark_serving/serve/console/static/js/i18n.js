// UI text in English and Chinese; the browser's language picks one, the switch overrides it.

const STRINGS = {
  en: {
    "skip": "Skip to content",
    "nav.label": "Views",
    "tab.transcribe": "Transcribe",
    "tab.jobs": "Jobs",
    "pref.labels": "Tags",
    "pref.labels.text": "Words",
    "pref.labels.emoji": "Emoji",
    "pref.ui": "Interface",
    "drop.aria": "Add audio files",
    "drop.title": "Drop audio or video files here",
    "drop.hint": "or press Enter to choose files; several at once are fine",
    "drop.pick": "Choose files",
    "record.start": "Record from microphone",
    "record.stop": "Stop recording",
    "record.on": "Recording… {s} s",
    "record.denied": "The microphone is not available: {message}",
    "record.name": "recording",
    "opt.legend": "Options",
    "opt.language": "Spoken language",
    "opt.itn": "Punctuation and numbers (ITN)",
    "opt.words": "Word timestamps",
    "opt.split": "Split channels (one speaker per channel)",
    "opt.role0": "Channel 1 (left) is",
    "opt.role1": "Channel 2 (right) is",
    "lang.auto": "Detect automatically",
    "lang.zh": "Mandarin",
    "lang.en": "English",
    "lang.yue": "Cantonese",
    "lang.ja": "Japanese",
    "lang.ko": "Korean",
    "lang.nospeech": "No speech",
    "start": "Transcribe",
    "start.none": "Add a file first.",
    "queue.title": "Files",
    "queue.empty": "No files yet.",
    "queue.waiting": "Waiting",
    "queue.uploading": "Uploading {p}%",
    "queue.processing": "Transcribing…",
    "queue.done": "Done: {n} segments",
    "queue.show": "Show",
    "queue.remove": "Remove {name}",
    "queue.busy": "The server is busy; try again in {s} s.",
    "queue.network": "The server could not be reached.",
    "player.label": "Audio player",
    "timeline.label": "Timeline: emotions and sound events",
    "timeline.all": "All",
    "timeline.channel": "Channel {n}",
    "timeline.nontalk": "Non-talk",
    "timeline.hold": "Hold",
    "timeline.interruption": "Interruption",
    "segments.title": "Segments",
    "segments.play": "Play from {t}",
    "segments.none": "No speech was found.",
    "summary.title": "Summary",
    "summary.duration": "Duration",
    "summary.speech": "Speech",
    "summary.format": "Format",
    "summary.languages": "Languages",
    "summary.emotions": "Emotions",
    "summary.events": "Sound events",
    "summary.flags": "Flags",
    "summary.none": "none",
    "summary.call": "Call report",
    "summary.talk": "Talk time",
    "summary.nontalk": "Non-talk",
    "summary.interruptions": "Interruptions",
    "summary.categories": "Matched categories",
    "download.label": "Download",
    "download.failed": "The download failed: {message}",
    "jobs.title": "Transcription jobs",
    "jobs.refresh": "Refresh",
    "jobs.name": "Job",
    "jobs.phase": "Phase",
    "jobs.done": "Done",
    "jobs.failed": "Failed",
    "jobs.age": "Age",
    "jobs.report": "QA report",
    "jobs.none": "No TranscriptionJobs in {ns}.",
    "jobs.loaded": "Jobs in {ns}: {n}.",
    "jobs.failures": "Recent failures ({n})",
    "jobs.copy": "Copy",
    "auth.title": "API token",
    "auth.hint": "This server needs an API token. It is kept in this browser tab only.",
    "auth.label": "Token",
    "auth.submit": "Continue",
    "auth.forget": "Forget token",
    "auth.refused": "Refused: {message}",
    "error": "{message}",
  },
  zh: {
    "skip": "跳到内容",
    "nav.label": "视图",
    "tab.transcribe": "转写",
    "tab.jobs": "任务",
    "pref.labels": "标签",
    "pref.labels.text": "文字",
    "pref.labels.emoji": "表情",
    "pref.ui": "界面",
    "drop.aria": "添加音频文件",
    "drop.title": "把音频或视频文件拖到这里",
    "drop.hint": "或按回车选择文件，可一次选多个",
    "drop.pick": "选择文件",
    "record.start": "用麦克风录音",
    "record.stop": "停止录音",
    "record.on": "正在录音… {s} 秒",
    "record.denied": "无法使用麦克风：{message}",
    "record.name": "录音",
    "opt.legend": "选项",
    "opt.language": "语种",
    "opt.itn": "标点和数字（ITN）",
    "opt.words": "逐词时间戳",
    "opt.split": "分声道（每个声道一位说话人）",
    "opt.role0": "声道 1（左）是",
    "opt.role1": "声道 2（右）是",
    "lang.auto": "自动识别",
    "lang.zh": "普通话",
    "lang.en": "英语",
    "lang.yue": "粤语",
    "lang.ja": "日语",
    "lang.ko": "韩语",
    "lang.nospeech": "无语音",
    "start": "开始转写",
    "start.none": "请先添加文件。",
    "queue.title": "文件",
    "queue.empty": "还没有文件。",
    "queue.waiting": "等待中",
    "queue.uploading": "上传中 {p}%",
    "queue.processing": "正在转写…",
    "queue.done": "完成：{n} 个片段",
    "queue.show": "查看",
    "queue.remove": "移除 {name}",
    "queue.busy": "服务器繁忙，请 {s} 秒后再试。",
    "queue.network": "无法连接服务器。",
    "player.label": "音频播放器",
    "timeline.label": "时间轴：情绪与声音事件",
    "timeline.all": "全部",
    "timeline.channel": "声道 {n}",
    "timeline.nontalk": "静默",
    "timeline.hold": "等待音乐",
    "timeline.interruption": "插话",
    "segments.title": "片段",
    "segments.play": "从 {t} 播放",
    "segments.none": "没有检测到语音。",
    "summary.title": "概要",
    "summary.duration": "时长",
    "summary.speech": "语音",
    "summary.format": "格式",
    "summary.languages": "语种",
    "summary.emotions": "情绪",
    "summary.events": "声音事件",
    "summary.flags": "标记",
    "summary.none": "无",
    "summary.call": "通话报告",
    "summary.talk": "说话时长",
    "summary.nontalk": "静默",
    "summary.interruptions": "插话",
    "summary.categories": "命中的类别",
    "download.label": "下载",
    "download.failed": "下载失败：{message}",
    "jobs.title": "转写任务",
    "jobs.refresh": "刷新",
    "jobs.name": "任务",
    "jobs.phase": "阶段",
    "jobs.done": "完成",
    "jobs.failed": "失败",
    "jobs.age": "已运行",
    "jobs.report": "质检报告",
    "jobs.none": "{ns} 中没有转写任务。",
    "jobs.loaded": "{ns} 中有 {n} 个任务。",
    "jobs.failures": "最近的失败（{n}）",
    "jobs.copy": "复制",
    "auth.title": "API 令牌",
    "auth.hint": "此服务器需要 API 令牌。令牌只保存在当前浏览器标签页中。",
    "auth.label": "令牌",
    "auth.submit": "继续",
    "auth.forget": "清除令牌",
    "auth.refused": "被拒绝：{message}",
    "error": "{message}",
  },
};

const KEY = "hark.ui-lang";
let current = "en";
const listeners = [];

export function initialLanguage() {
  const saved = localStorage.getItem(KEY);
  if (saved && STRINGS[saved]) return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  for (const tag of wanted) {
    const base = String(tag || "").toLowerCase().split("-")[0];
    if (STRINGS[base]) return base;
  }
  return "en";
}

export function language() {
  return current;
}

export function t(key, vars = {}) {
  const text = (STRINGS[current] && STRINGS[current][key]) ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export function onLanguageChange(fn) {
  listeners.push(fn);
}

export function setLanguage(lang, remember = false) {
  current = STRINGS[lang] ? lang : "en";
  if (remember) localStorage.setItem(KEY, current);
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
  for (const fn of listeners) fn(current);
}
