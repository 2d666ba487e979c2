// DOM helpers shared by the panels: elements, errors, downloads, provenance, model pickers.
import { base64ToBlob } from "./api.js";

// el("button", {class: "primary", onclick: f}, "Go"): attributes (on* are listeners) and children.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) e.append(c);
  return e;
}

// A labelled control: field("Seed", input) -> <label>Seed <input></label>.
export function field(label, control, cls) {
  return el("label", { class: cls }, label, control);
}

// A row of controls (wrapping on narrow screens).
export function row(...children) {
  return el("div", { class: "controls" }, ...children);
}

export function number(attrs) {
  return el("input", { type: "number", ...attrs });
}

// The error box: "error: ..." and the server's "hint: ...".
export function errorBox(err) {
  if (err && err.name === "AbortError") return el("p", { class: "note", role: "status" }, "stopped");
  const box = el("div", { class: "error", role: "alert" }, `error: ${err?.message || err}`);
  if (err?.hint) box.append(el("span", { class: "hint" }, `hint: ${err.hint}`));
  return box;
}

// Runs `work` with `button` disabled and errors shown in `out` (replacing what was there).
export async function busy(button, out, work) {
  button.disabled = true;
  const label = button.textContent;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } catch (e) {
    out.replaceChildren(errorBox(e));
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  }
}

// A file of an API answer ({base64, mime, bytes, manifest}) as a Blob and an object URL.
export function fileOf(json) {
  const blob = base64ToBlob(json.base64, json.mime);
  return { blob, url: URL.createObjectURL(blob), manifest: json.manifest, mime: json.mime, base64: json.base64 };
}

export function download(blobOrUrl, filename, label = "Download") {
  const href = typeof blobOrUrl === "string" ? blobOrUrl : URL.createObjectURL(blobOrUrl);
  return el("a", { class: "button", href, download: filename }, label);
}

export function jsonBlob(value) {
  return new Blob([JSON.stringify(value, null, 2) + "\n"], { type: "application/json" });
}

const FLAT_SKIP = new Set(["events", "detail"]);
// The settings of a manifest's `generation` as "key value" pairs, one level of nesting flattened.
function settings(gen) {
  const out = [];
  for (const [k, v] of Object.entries(gen || {})) {
    if (FLAT_SKIP.has(k)) continue;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) if (typeof v2 !== "object") out.push(`${k2} ${fmt(v2)}`);
    } else if (typeof v !== "object") {
      out.push(`${k} ${fmt(v)}`);
    }
  }
  return out;
}

function fmt(v) {
  if (typeof v === "number" && !Number.isInteger(v)) return String(Math.round(v * 1000) / 1000);
  return String(v);
}

// What every item shows: model, seed and settings from its manifest, its watermark and
// signature, and the whole manifest (downloadable). `seed`: the item's own seed where one
// manifest covers several items (text samples i = seed + i).
export function provenance(manifest, filename = "item", { seed: own } = {}) {
  if (!manifest) return el("div", { class: "prov" }, "no manifest");
  const gen = manifest.generation || {};
  const model = manifest.model || {};
  const wm = manifest.watermark || {};
  const signed = manifest.signature ? `signed (${manifest.signature.key_id || "ed25519"})` : "unsigned";
  const seed = own !== undefined ? `seed ${own}` : gen.seed !== undefined ? `seed ${gen.seed}` : gen.detail || "";
  const head = [model.name, manifest.verb, seed].filter(Boolean).join(" · ");
  return el(
    "div",
    { class: "prov" },
    el("div", { class: "line", "data-prov": "model" }, `${head}`),
    el("div", { class: "line" }, settings(gen).join(", ")),
    el(
      "div",
      { class: "line" },
      wm.applied ? `watermarked (key ${wm.key_id || "?"})` : "not watermarked",
      " · ",
      signed,
      " · ",
      manifest.created || "",
    ),
    el(
      "details",
      {},
      el("summary", {}, "Manifest"),
      el("pre", {}, JSON.stringify(manifest, null, 2)),
      download(jsonBlob(manifest), `${filename}.provenance.json`, "Download manifest"),
    ),
  );
}

// ---- models: one list for every panel, refreshed after training ----
let models = [];
const listeners = new Set();
export function onModels(f) {
  listeners.add(f);
  f(models);
}
export function setModels(list) {
  models = list;
  for (const f of listeners) f(models);
}

// Fills `select` with the models whose family passes `want` (keeping the choice when it stays).
export function fillModels(select, list, want, { optional = false } = {}) {
  const keep = select.value;
  const options = list.filter((m) => want(m.family)).map((m) => el("option", { value: m.name }, m.name));
  if (optional) options.unshift(el("option", { value: "" }, "(none)"));
  select.replaceChildren(...options);
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  select.disabled = options.length === 0;
}

export const isText = (f) => f === "gpt-text";
export const isImage = (f) => f === "image";
export const isMusic = (f) => f === "gpt-music";

// An integer input's value, or undefined when it is empty (the server's default applies).
export function intOf(input) {
  const s = input.value.trim();
  return s === "" ? undefined : Number.parseInt(s, 10);
}
export function realOf(input) {
  const s = input.value.trim();
  return s === "" ? undefined : Number.parseFloat(s);
}
