// Training: start a run on a folder of the server's --data-root, watch its loss curve live,
// cancel it (the trainer saves a checkpoint). Routes: GET /api/data, /api/jobs (POST, GET),
// GET /api/jobs/ID/events (SSE), DELETE /api/jobs/ID.
import { api, events } from "./api.js";
import { el, field, number, busy, errorBox } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// The loss chart: training loss as a line, validation loss as dots, over steps.
function lossChart() {
  const W = 640, H = 260, L = 48, R = 12, T = 12, B = 28;
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "loss curve", id: "loss-chart" });
  const train = [], val = [];
  let pending = false;
  function draw() {
    pending = false;
    root.replaceChildren();
    const all = [...train, ...val];
    if (!all.length) {
      root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "waiting for the first logged step…"));
      return;
    }
    const maxStep = Math.max(...all.map((p) => p[0]), 1);
    let lo = Math.min(...all.map((p) => p[1]));
    let hi = Math.max(...all.map((p) => p[1]));
    if (hi - lo < 1e-6) (hi += 0.5), (lo -= 0.5);
    const x = (s) => L + (s / maxStep) * (W - L - R);
    const y = (v) => T + ((hi - v) / (hi - lo)) * (H - T - B);
    root.append(
      svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
      svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
      svg("text", { x: L - 6, y: T + 4, "text-anchor": "end" }, hi.toFixed(2)),
      svg("text", { x: L - 6, y: H - B, "text-anchor": "end" }, lo.toFixed(2)),
      svg("text", { x: W - R, y: H - 8, "text-anchor": "end" }, `step ${maxStep}`),
      svg("text", { x: L, y: H - 8 }, "0"),
    );
    if (train.length) root.append(svg("polyline", { class: "train", points: train.map(([s, v]) => `${x(s)},${y(v)}`).join(" ") }));
    for (const [s, v] of val) root.append(svg("circle", { class: "val", cx: x(s), cy: y(v), r: 4 }));
    root.append(
      svg("text", { x: W - R, y: T + 10, "text-anchor": "end" }, `— train loss${val.length ? "   ● validation loss" : ""}`),
    );
  }
  const redraw = () => {
    if (!pending) (pending = true), requestAnimationFrame(draw);
  };
  draw();
  return {
    root,
    points: () => train.length,
    add(m) {
      if (m.event === "eval") {
        if (typeof m.val_loss === "number") val.push([m.step, m.val_loss]);
      } else if (typeof m.loss === "number") {
        train.push([m.step, m.loss]);
      }
      redraw();
    },
    clear() {
      train.length = 0;
      val.length = 0;
      redraw();
    },
  };
}

export function mount(panel, { refreshModels }) {
  const family = el("select", { id: "train-family" }, ["text", "image", "music"].map((f) => el("option", { value: f }, f)));
  const data = el("select", { id: "train-data" });
  const name = el("input", { id: "train-name", placeholder: "new model name", pattern: "[A-Za-z0-9._\\-]+", required: true });
  const preset = el("select", { id: "train-preset" });
  const steps = number({ id: "train-steps", min: 1, placeholder: "preset's" });
  const imageModel = el("select", { id: "train-image-model" }, el("option", { value: "vae" }, "VAE"), el("option", { value: "gan" }, "DCGAN"));
  const imageField = field("Image model", imageModel);
  const start = el("button", { class: "primary", id: "train-start", type: "submit" }, "Start training");
  const cancel = el("button", { type: "button", id: "train-cancel", disabled: true }, "Cancel run");
  const msg = el("div", { id: "train-msg" });
  const chart = lossChart();
  const state = el("p", { class: "small", id: "train-state", role: "status" }, "no run watched");
  const log = el("pre", { class: "log", id: "train-log" });
  const jobsTable = el("tbody");
  const disabledNote = el("p", { class: "note", hidden: true }, "This server runs no training jobs: start it with --data-root DIR to train on the folders inside DIR.");

  const form = el(
    "form",
    { class: "card stack" },
    el("h2", {}, "New run"),
    disabledNote,
    field("Family", family),
    field("Data (a folder of the server's data root)", data),
    field("Name of the new model", name),
    field("Preset", preset),
    imageField,
    field("Steps", steps),
    el("div", { class: "actions" }, start, cancel),
    msg,
  );
  panel.append(
    el(
      "div",
      { class: "train-layout" },
      form,
      el(
        "div",
        { class: "stack" },
        el("section", { class: "card stack" }, el("h2", {}, "Loss"), chart.root, state, log),
        el(
          "section",
          { class: "card stack" },
          el("h2", {}, "Runs on this server"),
          el("div", { class: "table-wrap" }, el("table", { class: "jobs" }, el("thead", {}, el("tr", {}, ["id", "model", "data", "status", "step", "loss", ""].map((h) => el("th", {}, h)))), jobsTable)),
        ),
      ),
    ),
  );

  let presets = {};
  async function loadData() {
    try {
      const d = await api.get("/api/data");
      presets = d.presets || {};
      disabledNote.hidden = d.enabled;
      start.disabled = !d.enabled;
      data.replaceChildren(
        ...d.entries.map((e) => {
          const kinds = Object.entries(e.kinds).map(([k, n]) => `${n} ${k}`).join(", ");
          return el("option", { value: e.name }, `${e.name} (${e.type}, ${e.files} files${kinds ? `: ${kinds}` : ""})`);
        }),
      );
      fillPresets();
    } catch (e) {
      msg.replaceChildren(errorBox(e));
    }
  }
  function fillPresets() {
    const list = presets[family.value] || [];
    preset.replaceChildren(el("option", { value: "" }, "(default)"), ...list.map((p) => el("option", { value: p.name, title: p.help }, `${p.name} — ${p.help}`)));
    imageField.hidden = family.value !== "image";
  }
  family.addEventListener("change", fillPresets);

  let watching = null;
  let watcher = null;
  async function watch(id) {
    watcher?.abort();
    watcher = new AbortController();
    watching = id;
    chart.clear();
    log.textContent = "";
    cancel.disabled = false;
    state.textContent = `${id}: starting…`;
    try {
      for await (const { event, data: m } of events(`/api/jobs/${id}/events`, undefined, watcher.signal)) {
        if (event === "progress") {
          chart.add(m);
          const eta = m.eta_seconds !== undefined ? ` · ETA ${Math.round(m.eta_seconds)} s` : "";
          state.textContent = `${id}: step ${m.step}${m.total_steps ? ` of ${m.total_steps}` : ""} · loss ${m.loss.toFixed(3)}${eta}`;
          state.dataset.step = m.step;
        } else if (event === "eval") {
          chart.add(m);
        } else if (event === "end") {
          state.textContent = `${id}: ${m.status}${m.last?.step ? ` at step ${m.last.step}` : ""}`;
          state.dataset.status = m.status;
          log.textContent = m.log_tail || "";
          cancel.disabled = true;
          refreshModels();
        }
        listJobs();
      }
    } catch (e) {
      if (e.name !== "AbortError") msg.replaceChildren(errorBox(e));
    }
  }

  let listing = false;
  async function listJobs() {
    if (listing) return;
    listing = true;
    try {
      const { jobs } = await api.get("/api/jobs");
      jobsTable.replaceChildren(
        ...jobs.map((j) =>
          el(
            "tr",
            { "data-job": j.id },
            el("td", {}, j.id),
            el("td", {}, j.model),
            el("td", {}, j.data),
            el("td", {}, j.status),
            el("td", {}, j.last?.step ?? ""),
            el("td", {}, typeof j.last?.loss === "number" ? j.last.loss.toFixed(3) : ""),
            el("td", {}, el("button", { type: "button", onclick: () => watch(j.id) }, j.id === watching ? "watching" : "Watch")),
          ),
        ),
      );
    } catch {
      // the list is a convenience; the watched run reports its own errors
    } finally {
      listing = false;
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(start, msg, async () => {
      const body = { family: family.value, data: data.value, name: name.value.trim() };
      if (preset.value) body.preset = preset.value;
      const s = Number.parseInt(steps.value, 10);
      if (s > 0) body.steps = s;
      if (family.value === "image") body.model = imageModel.value;
      const job = await api.post("/api/jobs", body);
      msg.replaceChildren(el("p", { class: "note" }, `started ${job.id}: training ${job.model} on ${job.data}`));
      listJobs();
      watch(job.id);
    });
  });
  cancel.addEventListener("click", async () => {
    if (!watching) return;
    cancel.disabled = true;  // the run's end event leaves it so
    try {
      await api.del(`/api/jobs/${watching}`);
      msg.replaceChildren(el("p", { class: "note" }, `cancelling ${watching}: the trainer saves a checkpoint and stops`));
    } catch (e) {
      cancel.disabled = false;
      msg.replaceChildren(errorBox(e));
    }
  });

  loadData();
  listJobs();
}
