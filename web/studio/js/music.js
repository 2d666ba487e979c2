// Music: generate a piece, or upload a primer MIDI and continue it; play the WAV in the page,
// see its piano roll, download MIDI / WAV / roll. Routes: /api/generate/music, /api/continue/music.
import { api, blobToBase64 } from "./api.js";
import { el, row, field, number, busy, fileOf, download, provenance, onModels, fillModels, isMusic, intOf, realOf } from "./ui.js";

export function mount(panel, { check }) {
  const model = el("select", { id: "music-model", "aria-label": "Music model" });
  const seconds = number({ id: "music-seconds", value: 15, min: 1, max: 120, step: 1 });
  const temperature = number({ id: "music-temperature", value: 1, min: 0, max: 5, step: 0.05 });
  const topP = number({ id: "music-top-p", value: 0.95, min: 0, max: 1, step: 0.01 });
  const seed = number({ id: "music-seed", min: 0, placeholder: "random" });
  const go = el("button", { class: "primary", id: "music-generate", type: "submit" }, "Generate");
  const primer = el("input", { type: "file", id: "music-primer", accept: ".mid,.midi,audio/midi" });
  const primerSeconds = number({ id: "music-primer-seconds", value: 0, min: 0, step: 1 });
  const count = number({ id: "music-count", value: 2, min: 1, max: 8 });
  const cont = el("button", { type: "button", id: "music-continue" }, "Continue primer");
  const status = el("div", { id: "music-status" });
  const pieces = el("div", { class: "pieces", id: "music-pieces" });

  const form = el(
    "form",
    { class: "card stack" },
    row(field("Model", model),
      field("Seconds", seconds),
      field("Temperature", temperature),
      field("Top-p", topP),
      field("Seed", seed),
      el("div", { class: "actions" }, go),
    ),
    row(field("Primer MIDI", primer),
      field("Primer seconds (0 = all)", primerSeconds),
      field("Continuations", count),
      el("div", { class: "actions" }, cont),
    ),
  );
  panel.append(el("div", { class: "stack" }, form, status, pieces));
  onModels((list) => fillModels(model, list, isMusic));

  let n = 0;
  function piece(p, title) {
    const id = ++n;
    const midi = fileOf(p.midi);
    const wav = p.wav ? fileOf(p.wav) : null;
    const roll = p.roll ? fileOf(p.roll) : null;
    const card = el(
      "article",
      { class: "card stack piece", "data-seed": p.seed },
      el("h3", {}, title),
      wav ? el("audio", { controls: true, preload: "auto", src: wav.url, "aria-label": `${title}: audio` }) : el("p", { class: "note" }, "no audio"),
      roll ? el("img", { class: "roll", src: roll.url, alt: `piano roll of ${title}` }) : null,
      el("p", { class: "small muted" }, `${p.notes} notes · ${p.seconds.toFixed(1)} s · ${p.events} events · stopped by ${p.stop_reason}`),
      provenance(midi.manifest, `piece-${id}.mid`),
      el(
        "div",
        { class: "actions" },
        download(midi.blob, `piece-${id}.mid`, "MIDI"),
        wav ? download(wav.blob, `piece-${id}.wav`, "WAV") : null,
        roll ? download(roll.blob, `piece-${id}-roll.png`, "Piano roll") : null,
        el("button", { type: "button", onclick: () => check(midi.blob, `piece-${id}.mid`) }, "Check this file"),
        el("button", {
          type: "button",
          onclick: () => {
            const dt = new DataTransfer();
            dt.items.add(new File([midi.blob], `piece-${id}.mid`, { type: "audio/midi" }));
            primer.files = dt.files;
            primer.focus();
          },
        }, "Use as primer"),
      ),
    );
    return card;
  }

  const common = () => ({
    model: model.value,
    seconds: realOf(seconds),
    temperature: realOf(temperature),
    top_p: realOf(topP),
    seed: intOf(seed),
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(go, status, async () => {
      go.textContent = "Composing…";
      const r = await api.post("/api/generate/music", common());
      status.replaceChildren();
      pieces.prepend(piece(r, `Piece, seed ${r.seed}`));
    });
  });

  cont.addEventListener("click", () => busy(cont, status, async () => {
    const f = primer.files[0];
    if (!f) throw Object.assign(new Error("no primer chosen"), { hint: "choose a .mid file, or 'Use as primer' on a piece" });
    cont.textContent = "Composing…";
    const r = await api.post("/api/continue/music", {
      ...common(),
      primer: await blobToBase64(f),
      primer_seconds: realOf(primerSeconds),
      count: intOf(count),
      name: f.name,
    });
    status.replaceChildren();
    r.continuations.reverse().forEach((p, i, all) => pieces.prepend(piece(p, `Continuation ${all.length - i} of ${f.name}, seed ${p.seed}`)));
  }));
}
