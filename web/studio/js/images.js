// Images: a grid of samples with their seeds; open one for variations at a chosen strength;
// pick two to scrub an interpolation, or several to blend with weights; upload an image to
// reconstruct or vary it. Routes: /api/generate|vary|interpolate|blend|reconstruct/image.
import { api, blobToBase64 } from "./api.js";
import { el, row, field, number, busy, errorBox, fileOf, download, provenance, onModels, fillModels, isImage, intOf, realOf } from "./ui.js";

export function mount(panel, { check }) {
  const model = el("select", { id: "image-model", "aria-label": "Image model" });
  const count = number({ id: "image-count", value: 8, min: 1, max: 64 });
  const seed = number({ id: "image-seed", min: 0, placeholder: "random" });
  const truncation = number({ id: "image-truncation", value: 0, min: 0, max: 4, step: 0.1 });
  const go = el("button", { class: "primary", id: "image-generate", type: "submit" }, "Generate");
  const upload = el("input", { type: "file", id: "image-upload", accept: "image/png,image/jpeg" });
  const reconstruct = el("button", { type: "button", id: "image-reconstruct" }, "Reconstruct upload");
  const varyUpload = el("button", { type: "button", id: "image-vary-upload" }, "Vary upload");

  const pickedNote = el("span", { class: "small muted", id: "picked-note" }, "Pick images (the box under each) to interpolate or blend them.");
  const steps = number({ id: "interp-steps", value: 8, min: 2, max: 64 });
  const interpolate = el("button", { type: "button", id: "image-interpolate", disabled: true }, "Interpolate 2 picked");
  const blend = el("button", { type: "button", id: "image-blend", disabled: true }, "Blend picked");
  const weights = el("div", { class: "weights", id: "blend-weights" });
  const status = el("div", { id: "image-status" });
  const gallery = el("div", { class: "gallery", id: "image-gallery" });
  const inspector = el("aside", { class: "card inspector stack", id: "image-inspector", "aria-live": "polite" },
    el("p", { class: "note" }, "Open an image to see its provenance, download it or make variations."));

  const form = el(
    "form",
    { class: "card stack" },
    row(field("Model", model),
      field("Count", count),
      field("Seed", seed),
      field("Truncation (GAN)", truncation),
      el("div", { class: "actions" }, go),
    ),
    row(field("Upload a PNG or JPEG", upload), el("div", { class: "actions" }, reconstruct, varyUpload)),
    el("div", { class: "toolbar" }, pickedNote, field("Frames", steps, "inline"), interpolate, blend),
    weights,
  );
  panel.append(el("div", { class: "image-layout" }, el("div", { class: "stack" }, form, status, gallery), inspector));
  onModels((list) => fillModels(model, list, isImage));

  const items = new Map();
  const picked = [];
  let nextId = 1;
  let openId = null;

  function addItem(json, label, extra = {}) {
    const item = { id: nextId++, ...fileOf(json), seed: json.seed, label, model: model.value, ...extra };
    items.set(item.id, item);
    return item;
  }

  function tile(item) {
    const box = el("input", { type: "checkbox", class: "pick", "aria-label": `pick ${item.label}` });
    box.checked = picked.includes(item.id);
    box.addEventListener("change", () => togglePick(item.id, box.checked));
    const fig = el(
      "figure",
      { class: "tile", "data-id": item.id, "data-seed": item.seed ?? "" },
      el("button", { type: "button", class: "view", "aria-label": `open ${item.label}`, onclick: () => open(item.id) },
        el("img", { src: item.url, alt: item.label })),
      el("figcaption", {}, el("span", {}, item.label), el("label", { class: "inline" }, box, "pick")),
    );
    if (box.checked) fig.classList.add("picked");
    return fig;
  }

  function group(title, list, extra) {
    const g = el("section", { class: "card stack group" }, el("h3", {}, title), extra, el("div", { class: "tiles" }, list.map(tile)));
    gallery.prepend(g);
    return g;
  }

  function refreshTiles() {
    for (const fig of gallery.querySelectorAll(".tile")) {
      const id = Number(fig.dataset.id);
      fig.classList.toggle("picked", picked.includes(id));
      fig.classList.toggle("open", id === openId);
      fig.querySelector(".pick").checked = picked.includes(id);
    }
    const inInspector = inspector.querySelector("input.pick-open");
    if (inInspector) inInspector.checked = picked.includes(openId);
  }

  function togglePick(id, on) {
    const at = picked.indexOf(id);
    if (on && at < 0) picked.push(id);
    if (!on && at >= 0) picked.splice(at, 1);
    interpolate.disabled = picked.length !== 2;
    blend.disabled = picked.length < 2;
    pickedNote.textContent = picked.length ? `${picked.length} picked` : "Pick images (the box under each) to interpolate or blend them.";
    weights.replaceChildren(
      ...picked.flatMap((pid) => {
        const it = items.get(pid);
        const w = el("input", { type: "range", min: 0, max: 1, step: 0.05, value: it.weight ?? 1, "aria-label": `weight of ${it.label}` });
        const shown = el("span", { class: "mono" }, Number(w.value).toFixed(2));
        w.addEventListener("input", () => {
          it.weight = Number(w.value);
          shown.textContent = it.weight.toFixed(2);
        });
        return [el("img", { src: it.url, alt: "" }), w, shown];
      }),
    );
    refreshTiles();
  }

  function open(id) {
    const item = items.get(id);
    openId = id;
    refreshTiles();
    const strength = el("input", { type: "range", id: "vary-strength", min: 0, max: 1, step: 0.05, value: 0.5 });
    const shown = el("output", { for: "vary-strength", class: "mono" }, "0.50");
    strength.addEventListener("input", () => (shown.textContent = Number(strength.value).toFixed(2)));
    const n = number({ id: "vary-count", value: 4, min: 1, max: 16 });
    const vary = el("button", { type: "button", class: "primary", id: "image-vary" }, "Make variations");
    const msg = el("div");
    vary.addEventListener("click", () => busy(vary, msg, async () => {
      vary.textContent = "Working…";
      await makeVariations(item.base64, item.label, realOf(strength), intOf(n));
      msg.replaceChildren();
    }));
    inspector.replaceChildren(
      el("h3", {}, item.label),
      el("img", { src: item.url, alt: item.label }),
      provenance(item.manifest, `image-${item.id}`),
      el(
        "div",
        { class: "actions" },
        download(item.blob, `imagine-${item.id}.png`, "Download PNG"),
        el("button", { type: "button", onclick: () => check(item.blob, `imagine-${item.id}.png`) }, "Check this file"),
        el("label", { class: "inline" }, el("input", {
          type: "checkbox", class: "pick-open", checked: picked.includes(id),
          onchange: (e) => togglePick(id, e.target.checked),
        }), "pick"),
      ),
      row(field("Strength", el("span", { class: "actions" }, strength, shown)), field("Count", n)),
      vary,
      msg,
    );
  }

  async function makeVariations(b64, label, strength, n) {
    const r = await api.post("/api/vary/image", { model: model.value, image: b64, strength, count: n });
    const rec = addItem(r.reconstruction, "reconstruction");
    const vars = r.variations.map((v, i) => addItem(v, `variation ${i + 1}`));
    group(`Variations of ${label} at strength ${strength.toFixed(2)}`, [rec, ...vars],
      el("p", { class: "small muted" }, `reconstruction MSE ${r.mse.toFixed(4)}, PSNR ${r.psnr.toFixed(1)} dB`));
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(go, status, async () => {
      go.textContent = "Generating…";
      const r = await api.post("/api/generate/image", {
        model: model.value, count: intOf(count), seed: intOf(seed), truncation: realOf(truncation),
      });
      status.replaceChildren();
      const list = r.images.map((img) => addItem(img, `seed ${img.seed}`, { kind: "sample" }));
      group(`${list.length} samples from ${r.model}`, list);
    });
  });

  async function uploaded() {
    const f = upload.files[0];
    if (!f) throw Object.assign(new Error("no image chosen"), { hint: "choose a PNG or JPEG first" });
    return { name: f.name, b64: await blobToBase64(f) };
  }
  reconstruct.addEventListener("click", () => busy(reconstruct, status, async () => {
    const { name, b64 } = await uploaded();
    const r = await api.post("/api/reconstruct/image", { model: model.value, image: b64 });
    status.replaceChildren();
    const src = { id: nextId++, blob: upload.files[0], url: URL.createObjectURL(upload.files[0]), base64: b64, label: name, manifest: null };
    items.set(src.id, src);
    group(`Reconstruction of ${name}`, [src, addItem(r.image, "reconstruction")],
      el("p", { class: "small muted" }, `MSE ${r.mse.toFixed(4)}, PSNR ${r.psnr.toFixed(1)} dB`));
  }));
  varyUpload.addEventListener("click", () => busy(varyUpload, status, async () => {
    const { name, b64 } = await uploaded();
    await makeVariations(b64, name, 0.5, 4);
    status.replaceChildren();
  }));

  // An endpoint of an interpolation: the seed of a sample from this model, else the image.
  const endpoint = (it) => (it.kind === "sample" && it.model === model.value && it.seed !== undefined ? { seed: it.seed } : { image: it.base64 });

  interpolate.addEventListener("click", () => busy(interpolate, status, async () => {
    const [a, b] = picked.map((id) => items.get(id));
    const r = await api.post("/api/interpolate/image", { model: model.value, from: endpoint(a), to: endpoint(b), steps: intOf(steps) });
    status.replaceChildren();
    const frames = r.frames.map((f, i) => fileOf(f));
    const img = el("img", { src: frames[0].url, alt: "interpolation frame", id: "interp-frame" });
    const slider = el("input", { type: "range", id: "interp-slider", min: 0, max: frames.length - 1, step: 1, value: 0, "aria-label": "interpolation frame" });
    const label = el("span", { class: "mono", id: "interp-label" }, `frame 1 of ${frames.length}`);
    const prov = el("div");
    const dl = el("span");
    const show = () => {
      const i = Number(slider.value);
      img.src = frames[i].url;
      label.textContent = `frame ${i + 1} of ${frames.length}`;
      prov.replaceChildren(provenance(frames[i].manifest, `frame-${i + 1}`));
      dl.replaceChildren(download(frames[i].blob, `interpolation-frame-${i + 1}.png`, "Download frame"));
    };
    slider.addEventListener("input", show);
    const strip = fileOf(r.strip);
    const box = el(
      "section",
      { class: "card stack group interpolation" },
      el("h3", {}, `Interpolation: ${a.label} → ${b.label}`),
      el("div", { class: "frames" }, img),
      el("div", { class: "actions" }, slider, label),
      el("img", { class: "strip", src: strip.url, alt: "all frames" }),
      prov,
      el("div", { class: "actions" }, dl, download(strip.blob, "interpolation-strip.png", "Download strip")),
    );
    gallery.prepend(box);
    show();
  }));

  blend.addEventListener("click", () => busy(blend, status, async () => {
    const list = picked.map((id) => items.get(id));
    const r = await api.post("/api/blend/image", {
      model: model.value,
      images: list.map((it) => ({ image: it.base64, weight: it.weight ?? 1, name: it.label })),
    });
    status.replaceChildren();
    group(`Blend of ${list.map((it) => `${it.label} ×${(it.weight ?? 1).toFixed(2)}`).join(", ")}`, [addItem(r.image, "blend")]);
  }));
}
