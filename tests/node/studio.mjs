// The web studio in a real browser: Debian's chromium driven by playwright-core. Run by the
// test Serve.StudioWorksInARealBrowser against a running `imagine serve`:
//   node studio.mjs PORT SCREENSHOT_DIR
// It uses the studio as a person would (text, images, music, check, training), asserts what
// each step shows, checks that streamed text does not move the layout and that nothing
// overlaps at 1280x800 and at a phone's width, and saves screenshots. Exit 0 = passed,
// 77 = chromium cannot start here (the test skips), anything else = failed.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [port, shots] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
mkdirSync(shots, { recursive: true });

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

async function apiPost(path, body) {
  const r = await fetch(base + path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
  assert(r.ok, `${path} answers 200 (got ${r.status})`);
  return r.json();
}

let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--disable-gpu"],
  });
} catch (e) {
  console.log(`SKIP: chromium cannot start here: ${String(e.message).split("\n")[0]}`);
  process.exit(77);
}

const problems = [];
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => {
  // 4xx answers to the bad input this test sends are expected; scripts must not throw.
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
});
const summary = {};
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
const T = 60000;

// Every visible control, picture and output box of the shown panel: no two may overlap
// (an element and its ancestor may), and the page may not scroll sideways.
async function layoutProblems() {
  return page.evaluate(() => {
    const out = [];
    if (document.documentElement.scrollWidth > window.innerWidth + 1)
      out.push(`page is ${document.documentElement.scrollWidth}px wide in a ${window.innerWidth}px window`);
    const panel = document.querySelector('[role="tabpanel"]:not([hidden])');
    // What of an element can be seen: its box clipped by every scrolling or clipping ancestor.
    const visible = (e) => {
      const r = e.getBoundingClientRect();
      let [l, t, rr, b] = [r.left, r.top, r.right, r.bottom];
      for (let a = e.parentElement; a; a = a.parentElement) {
        if (getComputedStyle(a).overflow === "visible") continue;
        const c = a.getBoundingClientRect();
        [l, t, rr, b] = [Math.max(l, c.left), Math.max(t, c.top), Math.min(rr, c.right), Math.min(b, c.bottom)];
      }
      return { left: l, top: t, right: rr, bottom: b, width: rr - l, height: b - t };
    };
    const els = [...panel.querySelectorAll("button, input, select, textarea, img, audio, pre, h2, h3, .prov .line, svg.chart, .verdict")].filter((e) => {
      if (e.closest("details:not([open])") && !e.closest("summary")) return false;  // folded away
      const r = visible(e);
      return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== "hidden";
    });
    const rects = els.map(visible);
    for (let i = 0; i < els.length; i++)
      for (let j = i + 1; j < els.length; j++) {
        if (els[i].contains(els[j]) || els[j].contains(els[i])) continue;
        const a = rects[i], b = rects[j];
        const ox = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const oy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (ox > 1 && oy > 1) out.push(`${els[i].tagName}#${els[i].id || els[i].className} overlaps ${els[j].tagName}#${els[j].id || els[j].className}`);
      }
    for (const e of els) {
      if (e.tagName === "PRE" || e.tagName === "SVG") continue;
      if (e.scrollWidth > e.clientWidth + 2 && getComputedStyle(e).overflowX === "visible" && e.tagName !== "IMG")
        out.push(`${e.tagName}#${e.id || e.className} overflows its box`);
    }
    return out.slice(0, 10);
  });
}

async function tab(name) {
  await page.click(`#tab-${name}`);
  await page.waitForSelector(`#panel-${name}:not([hidden])`);
}

try {
  await page.goto(base + "/");
  await page.waitForFunction(() => /\d+ models?:/.test(document.querySelector("#server-status").textContent), null, { timeout: T });
  summary.status = await page.textContent("#server-status");

  // ---- keyboard: arrow keys move between the tabs ----
  await page.focus("#tab-text");
  await page.keyboard.press("ArrowRight");
  assert((await page.getAttribute("#tab-images", "aria-selected")) === "true", "ArrowRight selects the next tab");
  await page.keyboard.press("ArrowLeft");
  assert(await page.isVisible("#panel-text"), "ArrowLeft comes back to Text");

  // ---- text: 3 variations streamed side by side; the layout does not move ----
  await page.selectOption("#text-model", "tiny");
  await page.fill("#text-prompt", "ROMEO:");
  await page.fill("#text-max-tokens", "300");
  await page.fill("#text-count", "3");
  await page.fill("#text-seed", "5");
  await page.fill("#text-top-k", "5");
  // The layout is sampled on every animation frame from the click to the end of the stream.
  await page.evaluate(() => {
    window.__frames = [];
    const sample = () => {
      const cards = [...document.querySelectorAll("#text-output .sample")];
      if (cards.length)
        window.__frames.push({
          text: cards.map((c) => c.querySelector(".gen").textContent.length),
          done: cards.every((c) => c.querySelector(".seed").textContent !== ""),
          rects: cards.map((c) => {
            const r = c.getBoundingClientRect();
            return [r.x, r.y, r.width, r.height].map(Math.round).join(",");
          }),
          panel: Math.round(document.querySelector("#panel-text").getBoundingClientRect().height),
        });
      if (!window.__stopSampling) requestAnimationFrame(sample);
    };
    requestAnimationFrame(sample);
  });
  await page.click("#text-generate");
  await page.waitForFunction(() => [...document.querySelectorAll("#text-output .sample .seed")].filter((s) => s.textContent).length === 3, null, { timeout: T });
  await page.evaluate(() => (window.__stopSampling = true));
  const frames = await page.evaluate(() => window.__frames);
  const streaming = frames.filter((f) => !f.done && f.text.some((n) => n > 0));
  assert(streaming.length >= 2, `text arrived over several frames before the end (${streaming.length} frames mid-stream)`);
  const first = frames.find((f) => f.rects.length === 3);
  const moved = frames.filter((f) => f.rects.length === 3 && (f.rects.join() !== first.rects.join() || f.panel !== first.panel));
  assert(moved.length === 0, `no layout jump while text streams: ${moved.length} of ${frames.length} frames moved (${JSON.stringify(moved[0])} vs ${JSON.stringify(first)})`);
  summary.text_frames_sampled = frames.length;
  summary.text_frames_mid_stream = streaming.length;
  const texts = await page.$$eval("#text-output .sample .gen", (g) => g.map((e) => e.textContent));
  assert(texts.length === 3 && texts.every((t) => t.length > 0), "three non-empty variations");
  assert(new Set(texts).size === 3, "the variations differ (seeds 5, 6, 7)");
  const seeds = await page.$$eval("#text-output .seed", (s) => s.map((e) => e.textContent));
  assert(seeds.join() === "seed 5,seed 6,seed 7", `sample i has seed + i: ${seeds}`);
  const prov = await page.$$eval("#text-output .sample .prov [data-prov=model]", (p) => p.map((e) => e.textContent));
  assert(prov[1] === "tiny · generate · seed 6", `each variation's provenance names the model, verb and its seed: ${prov}`);
  assert(await page.isVisible("#text-file a[download]"), "the watermarked file can be downloaded");
  summary.layout_text_1280 = await layoutProblems();
  await shot("text-1280");
  // Continue from the second variation: its text becomes the prompt.
  await page.click("#text-output .sample:nth-child(2) button.continue");
  await page.waitForFunction((want) => document.querySelector("#text-prompt").value === want, "ROMEO:" + texts[1], { timeout: T });
  await page.waitForFunction(() => [...document.querySelectorAll("#text-output .sample .seed")].filter((s) => s.textContent).length === 3, null, { timeout: T });
  const continued = await page.textContent("#text-output .sample .out");
  assert(continued.startsWith("ROMEO:" + texts[1]), "the continuation starts from the picked variation");

  // ---- images: grid with seeds, variations, interpolation, blend, upload ----
  await tab("images");
  await page.selectOption("#image-model", "vae");
  await page.fill("#image-count", "8");
  await page.fill("#image-seed", "11");
  await page.click("#image-generate");
  await page.waitForSelector("#image-gallery .tile >> nth=7", { timeout: T });
  const captions = await page.$$eval("#image-gallery .tile figcaption span", (s) => s.map((e) => e.textContent));
  assert(captions.join() === "seed 11,seed 12,seed 13,seed 14,seed 15,seed 16,seed 17,seed 18", `tiles show their seeds: ${captions}`);
  // Keyboard: Enter on a focused tile opens it.
  await page.focus('#image-gallery .tile[data-seed="11"] button.view');
  await page.keyboard.press("Enter");
  await page.waitForSelector("#image-inspector .prov");
  const iprov = await page.textContent("#image-inspector .prov [data-prov=model]");
  assert(iprov.includes("vae") && iprov.includes("seed 11"), `the inspector shows model and seed: ${iprov}`);
  await page.fill("#vary-strength", "0.3");
  assert((await page.textContent("#image-inspector output")) === "0.30", "the strength slider shows its value");
  await page.fill("#vary-count", "4");
  await page.click("#image-vary");
  await page.waitForSelector("#image-gallery .group h3:text-matches('Variations of seed 11 at strength 0.30')", { timeout: T });
  const variedTiles = await page.locator("#image-gallery .group").first().locator(".tile").count();
  assert(variedTiles === 5, `reconstruction + 4 variations (${variedTiles})`);
  // Pick seeds 11 and 12 and scrub between them.
  await page.check('#image-gallery .tile[data-seed="11"] input.pick');
  await page.check('#image-gallery .tile[data-seed="12"] input.pick');
  assert(await page.isEnabled("#image-interpolate"), "two picked images enable Interpolate");
  await page.fill("#interp-steps", "8");
  await page.click("#image-interpolate");
  await page.waitForSelector("#interp-slider", { timeout: T });
  const src0 = await page.getAttribute("#interp-frame", "src");
  await page.fill("#interp-slider", "5");
  assert((await page.textContent("#interp-label")) === "frame 6 of 8", "scrubbing moves to frame 6");
  assert((await page.getAttribute("#interp-frame", "src")) !== src0, "scrubbing changes the picture");
  const fprov = await page.textContent(".interpolation .prov [data-prov=model]");
  assert(fprov.includes("interpolate"), `each frame carries its provenance: ${fprov}`);
  // Blend the two picked with weights.
  await page.fill("#blend-weights input[type=range] >> nth=0", "0.7");
  await page.click("#image-blend");
  await page.waitForSelector("#image-gallery .group h3:text-matches('Blend of seed 11 ×0.70')", { timeout: T });
  // Upload an image (a sample the API made) and reconstruct it.
  const sample = await apiPost("/api/generate/image", { model: "vae", count: 1, seed: 99 });
  await page.setInputFiles("#image-upload", { name: "shoe.png", mimeType: "image/png", buffer: Buffer.from(sample.images[0].base64, "base64") });
  await page.click("#image-reconstruct");
  await page.waitForSelector("#image-gallery .group h3:text-matches('Reconstruction of shoe.png')", { timeout: T });
  assert((await page.textContent("#image-gallery .group >> nth=0")).includes("PSNR"), "the reconstruction reports its PSNR");
  summary.layout_images_1280 = await layoutProblems();
  await shot("images-1280");

  // ---- music: generate, continue an uploaded primer, play the WAV ----
  await tab("music");
  await page.selectOption("#music-model", "bach");
  await page.fill("#music-seconds", "4");
  await page.fill("#music-seed", "2");
  await page.click("#music-generate");
  await page.waitForSelector("#music-pieces .piece audio", { timeout: T });
  const primer = await apiPost("/api/generate/music", { model: "bach", seconds: 6, seed: 8, wav: false, roll: false });
  await page.setInputFiles("#music-primer", { name: "primer.mid", mimeType: "audio/midi", buffer: Buffer.from(primer.midi.base64, "base64") });
  await page.fill("#music-primer-seconds", "3");
  await page.fill("#music-count", "2");
  await page.click("#music-continue");
  await page.waitForFunction(() => document.querySelectorAll("#music-pieces .piece").length === 3, null, { timeout: T });
  const titles = await page.$$eval("#music-pieces .piece h3", (h) => h.map((e) => e.textContent));
  assert(titles[0].startsWith("Continuation 1 of primer.mid") && titles[1].startsWith("Continuation 2"), `continuations listed first: ${titles}`);
  assert((await page.locator("#music-pieces .piece >> nth=0").locator("img.roll").count()) === 1, "a piano roll per piece");
  const played = await page.evaluate(async () => {
    const a = document.querySelector("#music-pieces .piece audio");
    await new Promise((ok, bad) => {
      if (a.readyState >= 1) ok();
      a.addEventListener("loadedmetadata", ok, { once: true });
      a.addEventListener("error", () => bad(new Error("the WAV does not decode")), { once: true });
    });
    await a.play();
    await new Promise((ok) => setTimeout(ok, 700));
    const t = a.currentTime;
    a.pause();
    return { duration: a.duration, played: t };
  });
  assert(played.duration > 3 && played.played > 0.2, `the WAV plays in the page: ${JSON.stringify(played)}`);
  summary.music_played = played;
  summary.layout_music_1280 = await layoutProblems();
  await shot("music-1280");

  // ---- check: a piece from the page, a text file with its sidecar, and garbage ----
  await page.click("#music-pieces .piece >> nth=0 >> button:text('Check this file')");
  await page.waitForSelector("#panel-check:not([hidden]) #check-provenance", { timeout: T });
  const intact = await page.getAttribute("#check-provenance .verdict", "data-intact");
  assert(intact === "true", "the piece's manifest is intact");
  assert(await page.isVisible("#check-watermark .verdict"), "a watermark verdict is shown");
  const gen = await apiPost("/api/generate/text", { model: "tiny", prompt: "KING:", max_tokens: 300, seed: 3, top_k: 5 });
  await page.selectOption("#check-model", "tiny");
  await page.setInputFiles("#check-manifest", { name: "t.txt.provenance.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(gen.manifest, null, 2) + "\n") });
  await page.setInputFiles("#check-file", { name: "t.txt", mimeType: "text/plain", buffer: Buffer.from(gen.file_base64, "base64") });
  await page.waitForSelector("#check-output h2:text('t.txt')", { timeout: T });
  const verdict = await page.getAttribute("#check-watermark .verdict", "data-verdict");
  assert(verdict === "watermarked", `a 300-token watermarked text is detected: ${verdict}`);
  assert((await page.getAttribute("#check-provenance .verdict", "data-intact")) === "true", "text + sidecar is intact");
  summary.layout_check_1280 = await layoutProblems();
  await shot("check-1280");
  await page.setInputFiles("#check-manifest", []);
  await page.setInputFiles("#check-file", { name: "junk.png", mimeType: "image/png", buffer: Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from("not really a png")]) });
  await page.waitForSelector("#check-output h2:text('junk.png')", { timeout: T });
  const junk = await page.textContent("#check-output");
  assert(/error: .+hint: /s.test(junk), `a corrupt file gets an error and a hint: ${junk.slice(0, 300)}`);

  // ---- training: start a run on the data root, watch the curve, cancel ----
  await tab("train");
  await page.waitForSelector("#train-data option[value=poems]", { state: "attached", timeout: T });
  await page.selectOption("#train-family", "text");
  await page.selectOption("#train-data", "poems");
  const runName = `studio-${Date.now()}`;
  await page.fill("#train-name", runName);
  await page.selectOption("#train-preset", "tiny");
  await page.fill("#train-steps", "1000000");
  await page.click("#train-start");
  await page.waitForFunction(() => Number(document.querySelector("#train-state").dataset.step || 0) >= 40, null, { timeout: T });
  const points = await page.$eval("#loss-chart polyline", (p) => p.getAttribute("points").split(" ").length);
  assert(points >= 4, `the loss curve grows live (${points} points)`);
  summary.layout_train_1280 = await layoutProblems();
  await shot("train-1280");
  await page.click("#train-cancel");
  await page.waitForFunction(() => document.querySelector("#train-state").dataset.status, null, { timeout: T });
  const ended = await page.getAttribute("#train-state", "data-status");
  assert(ended === "cancelled", `the run is cancelled: ${ended}`);
  await page.waitForSelector(`#panel-train tr:has-text("${runName}") >> text=cancelled`, { timeout: T });
  summary.train_points = points;

  // ---- a phone's width: no overlap, no sideways scrolling ----
  await page.setViewportSize({ width: 400, height: 860 });
  for (const name of ["text", "images", "music", "check", "train"]) {
    await tab(name);
    summary[`layout_${name}_400`] = await layoutProblems();
    await shot(`${name}-400`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await tab("text");
  await shot("studio");
} catch (e) {
  problems.push(String(e.stack || e.message));
  await shot("failure").catch(() => {});
}
await browser.close();

for (const [k, v] of Object.entries(summary))
  if (k.startsWith("layout_") && v.length) problems.push(`${k}: ${v.join("; ")}`);
console.log(JSON.stringify({ summary, problems }, null, 1));
process.exit(problems.length ? 1 : 0);
