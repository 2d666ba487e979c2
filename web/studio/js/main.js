// The studio's entry point: tabs (arrow keys move between them), the API key bar, the server's
// models shared by every panel, and the panels themselves (one module each).
import { api, setApiKey, apiKey } from "./api.js";
import { setModels } from "./ui.js";
import * as text from "./text.js";
import * as images from "./images.js";
import * as music from "./music.js";
import * as check from "./check.js";
import * as train from "./train.js";

const $ = (id) => document.getElementById(id);

function selectTab(tab, focus = true) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  history.replaceState(null, "", `#${tab.id.slice(4)}`);
}

function tabs() {
  const list = [...document.querySelectorAll('[role="tab"]')];
  for (const t of list) {
    t.addEventListener("click", () => selectTab(t));
    t.addEventListener("keydown", (e) => {
      const i = list.indexOf(t);
      const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: list.length - 1 }[e.key];
      if (to === undefined) return;
      e.preventDefault();
      selectTab(list[(to + list.length) % list.length]);
    });
  }
  const start = $(`tab-${location.hash.slice(1)}`);
  if (start) selectTab(start, false);
}

async function refreshModels() {
  const status = $("server-status");
  try {
    const { models } = await api.get("/api/models");
    setModels(models);
    status.textContent = `${models.length} model${models.length === 1 ? "" : "s"}: ${models.map((m) => m.name).join(", ") || "none"}`;
  } catch (e) {
    status.textContent = `error: ${e.message}`;
  }
}

function keyBar() {
  const bar = $("keybar");
  window.addEventListener("imagine:need-key", () => {
    bar.hidden = false;
    $("api-key").focus();
  });
  bar.addEventListener("submit", (e) => {
    e.preventDefault();
    setApiKey($("api-key").value.trim());
    bar.hidden = true;
    refreshModels();
  });
  if (apiKey()) $("api-key").value = apiKey();
}

tabs();
keyBar();
const checker = check.mount($("panel-check"));
// "Check this file" on an item: the Check panel takes it.
const sendToCheck = (blob, name) => {
  selectTab($("tab-check"), false);
  checker.check(blob, name);
};
text.mount($("panel-text"));
images.mount($("panel-images"), { check: sendToCheck });
music.mount($("panel-music"), { check: sendToCheck });
train.mount($("panel-train"), { refreshModels });
refreshModels();
