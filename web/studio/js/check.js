// Check a file: drop (or choose) any file to see its watermark verdict, its provenance and
// signature, and optionally whether it copies a model's training data.
// Routes: /api/detect, /api/verify, /api/audit (multipart uploads).
import { api } from "./api.js";
import { el, row, field, errorBox, fillModels, onModels } from "./ui.js";

export function mount(panel) {
  const input = el("input", { type: "file", id: "check-file"});
  const sidecar = el("input", { type: "file", id: "check-manifest", accept: ".json,application/json" });
  const model = el("select", { id: "check-model", "aria-label": "Model to check against" });
  const audit = el("input", { type: "checkbox", id: "check-audit" });
  const drop = el(
    "div",
    { class: "drop", id: "check-drop", role: "button", tabindex: 0, "aria-label": "Drop a file here, or press Enter to choose one" },
    el("p", {}, el("strong", {}, "Drop a file here"), " — or press Enter / click to choose one."),
    el("p", { class: "small muted" }, "Text, PNG/JPEG, MIDI or WAV: its watermark, its provenance manifest and its signature are checked."),
  );
  const out = el("div", { class: "stack", id: "check-output", "aria-live": "polite" });
  panel.append(
    el(
      "div",
      { class: "stack" },
      el(
        "div",
        { class: "card stack" },
        drop,
        row(field("Choose a file", input),
          field("Its manifest (text files: the .provenance.json sidecar)", sidecar),
          field("Watermark of model (text and music need one)", model),
          el("label", { class: "inline" }, audit, "also check for copying from the model's training data"),
        ),
      ),
      out,
    ),
  );
  onModels((list) => fillModels(model, list, () => true, { optional: true }));

  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      input.click();
    }
  });
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) run(f, f.name);
  });
  input.addEventListener("change", () => input.files[0] && run(input.files[0], input.files[0].name));

  async function run(blob, name) {
    const form = () => {
      const fd = new FormData();
      fd.append("file", blob, name);
      if (sidecar.files[0]) fd.append("manifest", sidecar.files[0], sidecar.files[0].name);
      return fd;
    };
    const m = model.value ? `?model=${encodeURIComponent(model.value)}` : "";
    out.replaceChildren(el("p", { class: "note", role: "status" }, `checking ${name}…`));
    const jobs = [
      api.post(`/api/detect${m}`, form()).then(watermarkCard, failed("Watermark")),
      api.post("/api/verify", form()).then(provenanceCard, failed("Provenance")),
    ];
    if (audit.checked && model.value) jobs.push(api.post(`/api/audit${m}`, form()).then(auditCard, failed("Copy audit")));
    const cards = await Promise.all(jobs);
    out.replaceChildren(el("h2", {}, name), el("div", { class: "reports" }, cards));
  }

  const failed = (title) => (e) => el("section", { class: "card stack" }, el("h3", {}, title), errorBox(e));

  function kv(pairs) {
    return el("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined && v !== "").flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  }

  function watermarkCard(r) {
    const cls = r.verdict === "watermarked" ? "good" : r.verdict === "not watermarked" ? "bad" : "";
    return el(
      "section",
      { class: "card stack", id: "check-watermark" },
      el("h3", {}, "Watermark"),
      el("p", { class: `verdict ${cls}`, "data-verdict": r.verdict }, r.verdict),
      kv([
        ["type", r.type],
        ["method", r.method],
        ["z-score", typeof r.z === "number" ? r.z.toFixed(2) : r.z],
        ["p-value", typeof r.p_value === "number" ? r.p_value.toExponential(2) : r.p_value],
        ["scored", r.scored !== undefined ? `${r.scored} ${r.unit || ""}` : undefined],
        ["note", r.note],
      ]),
    );
  }

  function provenanceCard(r) {
    const what = r.what || {};
    return el(
      "section",
      { class: "card stack", id: "check-provenance" },
      el("h3", {}, "Provenance and signature"),
      el("p", { class: `verdict ${r.intact ? "good" : "bad"}`, "data-intact": String(r.intact) }, r.intact ? "intact" : "not intact"),
      el("p", { class: "small" }, r.summary),
      kv([
        ["manifest", r.manifest ? "present" : "none"],
        ["content matches", r.manifest ? String(r.content_matches) : undefined],
        ["signature", r.signature],
        ["signing key", r.key_id],
        ["trusted", r.manifest ? String(r.trusted) : undefined],
        ["model", what.model?.name],
        ["made by", what.verb],
        ["created", what.created],
        ["problem", r.problem],
      ]),
    );
  }

  function auditCard(r) {
    const pic = r.picture ? el("img", { class: "audit-picture", src: `data:${r.picture.mime};base64,${r.picture.base64}`, alt: "the file beside its nearest training images" }) : null;
    return el(
      "section",
      { class: "card stack", id: "check-audit-report" },
      el("h3", {}, "Copy audit"),
      el("p", { class: `verdict ${r.flagged ? "bad" : "good"}` }, r.flagged ? "copies its training data" : "no copy found"),
      el("p", { class: "small" }, r.summary),
      pic,
    );
  }

  // Other panels send their items here ("Check this file").
  return { check: (blob, name) => run(blob, name) };
}
