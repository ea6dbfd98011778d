// Readable labels for SenseVoice's tags, or the emoji the SenseVoice demo shows.

import { language, t } from "./i18n.js";

const EMOTIONS = {
  HAPPY: { emoji: "😊", en: "Happy", zh: "开心" },
  SAD: { emoji: "😔", en: "Sad", zh: "悲伤" },
  ANGRY: { emoji: "😡", en: "Angry", zh: "生气" },
  NEUTRAL: { emoji: "😐", en: "Neutral", zh: "平静" },
  FEARFUL: { emoji: "😰", en: "Fearful", zh: "害怕" },
  DISGUSTED: { emoji: "🤢", en: "Disgusted", zh: "厌恶" },
  SURPRISED: { emoji: "😮", en: "Surprised", zh: "惊讶" },
  EMO_UNKNOWN: { emoji: "❔", en: "Unknown emotion", zh: "情绪不明" },
};

const EVENTS = {
  BGM: { emoji: "🎼", en: "Music", zh: "背景音乐" },
  Applause: { emoji: "👏", en: "Applause", zh: "掌声" },
  Laughter: { emoji: "😀", en: "Laughter", zh: "笑声" },
  Cry: { emoji: "😭", en: "Crying", zh: "哭声" },
  Sneeze: { emoji: "🤧", en: "Sneeze", zh: "喷嚏" },
  Breath: { emoji: "😮‍💨", en: "Breath", zh: "呼吸" },
  Cough: { emoji: "😷", en: "Cough", zh: "咳嗽" },
  Event_UNK: { emoji: "❓", en: "Other sound", zh: "其他声音" },
  Speech: { emoji: "🗣️", en: "Speech", zh: "语音" },
};

const LANGUAGES = {
  zh: "🇨🇳",
  en: "🇬🇧",
  yue: "🇭🇰",
  ja: "🇯🇵",
  ko: "🇰🇷",
  nospeech: "🔇",
};

// Colours of emotion spans; each is dark or light enough for its text colour (see the CSS).
export const EMOTION_CLASSES = Object.keys(EMOTIONS);
export const EVENT_NAMES = Object.keys(EVENTS);

let style = "text";

export function setLabelStyle(value) {
  style = value === "emoji" ? "emoji" : "text";
}

export function labelStyle() {
  return style;
}

function readable(entry, fallback) {
  if (!entry) return fallback;
  return entry[language()] || entry.en;
}

export function emotionText(code) {
  return readable(EMOTIONS[code], code);
}

export function eventText(code) {
  return readable(EVENTS[code], code);
}

export function languageText(code) {
  return code && ["zh", "en", "yue", "ja", "ko", "nospeech"].includes(code) ? t(`lang.${code}`) : code || "";
}

// What a badge shows under the current style; the readable text is always the accessible name.
export function emotionLabel(code) {
  const entry = EMOTIONS[code];
  return style === "emoji" && entry ? entry.emoji : emotionText(code);
}

export function eventLabel(code) {
  const entry = EVENTS[code];
  return style === "emoji" && entry ? entry.emoji : eventText(code);
}

export function languageLabel(code) {
  return style === "emoji" && LANGUAGES[code] ? LANGUAGES[code] : languageText(code);
}

export function emotionClass(code) {
  return EMOTIONS[code] ? `emo-${code}` : "emo-EMO_UNKNOWN";
}
