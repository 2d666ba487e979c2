// Text: a prompt, sampling controls, N variations streamed side by side; continue from any.
// POST /api/generate/text with "stream": true (token events by sample index, then done).
import { events, base64ToBlob } from "./api.js";
import { el, row, field, number, errorBox, provenance, download, onModels, fillModels, isText, intOf, realOf } from "./ui.js";

export function mount(panel) {
  const model = el("select", { id: "text-model", "aria-label": "Text model" });
  const prompt = el("textarea", { id: "text-prompt", rows: 4, placeholder: "ROMEO:" }, "");
  const maxTokens = number({ id: "text-max-tokens", value: 200, min: 1, max: 4096 });
  const temperature = number({ id: "text-temperature", value: 0.8, min: 0, max: 5, step: 0.05 });
  const topK = number({ id: "text-top-k", value: 40, min: 0 });
  const topP = number({ id: "text-top-p", value: 0.95, min: 0, max: 1, step: 0.01 });
  const seed = number({ id: "text-seed", min: 0, placeholder: "random" });
  const count = number({ id: "text-count", value: 3, min: 1, max: 8 });
  const go = el("button", { class: "primary", id: "text-generate", type: "submit" }, "Generate");
  const stop = el("button", { id: "text-stop", type: "button", disabled: true }, "Stop");
  const out = el("div", { id: "text-output", "aria-live": "off" });
  const fileBar = el("div", { class: "actions small", id: "text-file" });

  const form = el(
    "form",
    { class: "card stack", id: "text-form" },
    row(field("Model", model)),
    field("Prompt", prompt),
    row(field("Max tokens", maxTokens),
      field("Temperature", temperature),
      field("Top-k", topK),
      field("Top-p", topP),
      field("Seed", seed),
      field("Variations", count),
      el("div", { class: "actions" }, go, stop),
    ),
  );
  panel.append(
    el("div", { class: "text-layout" }, form, el("div", { class: "stack" }, fileBar, out)),
  );
  onModels((list) => fillModels(model, list, isText));

  let controller = null;
  async function generate(promptText) {
    controller = new AbortController();
    go.disabled = true;
    stop.disabled = false;
    const n = intOf(count) || 1;
    const body = {
      model: model.value,
      prompt: promptText,
      max_tokens: intOf(maxTokens),
      temperature: realOf(temperature),
      top_k: intOf(topK),
      top_p: realOf(topP),
      seed: intOf(seed),
      count: n,
      stream: true,
    };
    // The columns exist, at their final size, before the first token: streaming fills them.
    const columns = [];
    for (let i = 0; i < n; i++) {
      const text = el("span", { class: "gen" });
      const pre = el("pre", { class: "out", tabindex: 0 }, el("span", { class: "prompt" }, promptText), text);
      const meta = el("div", { class: "meta small muted" }, "generating…");
      const actions = el("div", { class: "actions" });
      const card = el(
        "article",
        { class: "card sample", "data-index": i },
        el("div", { class: "sample-head" }, el("h3", {}, `Variation ${i + 1}`), el("span", { class: "small muted seed" }, "")),
        pre,
        meta,
        actions,
      );
      columns.push({ card, pre, text, meta, actions, raw: "" });
    }
    fileBar.replaceChildren();
    out.replaceChildren(el("div", { class: "samples" }, columns.map((c) => c.card)));
    try {
      for await (const { event, data } of events("/api/generate/text", body, controller.signal)) {
        if (event === "token") {
          const c = columns[data.index];
          if (!c) continue;
          c.raw += data.text;
          c.text.textContent = c.raw;
          c.pre.scrollTop = c.pre.scrollHeight;
        } else if (event === "done") {
          finish(data, columns, promptText);
        } else if (event === "error") {
          out.prepend(errorBox({ message: data.error?.message, hint: data.error?.hint }));
        }
      }
    } catch (e) {
      out.prepend(errorBox(e));
      for (const c of columns) if (c.meta.textContent === "generating…") c.meta.textContent = "stopped";
    } finally {
      go.disabled = false;
      stop.disabled = true;
      controller = null;
    }
  }

  function finish(answer, columns, promptText) {
    answer.samples.forEach((s, i) => {
      const c = columns[i];
      if (!c) return;
      c.raw = s.text;
      c.text.textContent = s.text;
      c.card.querySelector(".seed").textContent = `seed ${s.seed}`;
      c.meta.replaceChildren(
        el(
          "div",
          {},
          `${s.tokens} tokens · stopped by ${s.stop_reason} · ${s.seconds.toFixed(2)} s`,
          s.prompt_cropped ? " · prompt cropped to the context" : "",
        ),
        provenance(answer.manifest, "text", { seed: s.seed }),
      );
      c.actions.replaceChildren(
        el(
          "button",
          {
            type: "button",
            class: "continue",
            onclick: () => {
              prompt.value = promptText + s.text;
              generate(prompt.value);
            },
          },
          "Continue from this",
        ),
        download(new Blob([promptText + s.text], { type: "text/plain" }), `sample-seed${s.seed}.txt`, "Download"),
      );
    });
    const file = base64ToBlob(answer.file_base64, "text/plain");
    fileBar.replaceChildren(
      el("span", { class: "muted" }, `All ${answer.samples.length} as one watermarked file with its ${answer.manifest.signature ? "signed " : ""}manifest:`),
      download(file, "imagine-text.txt", "Download .txt"),
      download(
        new Blob([JSON.stringify(answer.manifest, null, 2) + "\n"], { type: "application/json" }),
        "imagine-text.txt.provenance.json",
        "Download manifest",
      ),
    );
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    generate(prompt.value);
  });
  stop.addEventListener("click", () => controller?.abort());
}
