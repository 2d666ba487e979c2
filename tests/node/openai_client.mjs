// The official `openai` npm client against a running `imagine serve` (the port is argv[2],
// the model argv[3]): models, completions, chat, streaming, and the client's own error
// type for a 404. Prints one JSON line of what it saw; exits non-zero on any mismatch.
import OpenAI from "openai";

const [port, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "unused", maxRetries: 0 });
const fail = (msg) => {
  console.error(`error: ${msg}`);
  process.exit(1);
};

const models = await client.models.list();
const ids = models.data.map((m) => m.id);
if (!ids.includes(model)) fail(`models.list() has no ${model}: ${ids}`);

const two = await client.completions.create({ model, prompt: "ROMEO:", max_tokens: 24, seed: 42, n: 2 });
if (two.choices.length !== 2) fail(`n=2 gave ${two.choices.length} choices`);
if (!(two.usage.completion_tokens > 0)) fail("no completion tokens in usage");
const completion = await client.completions.create({ model, prompt: "ROMEO:", max_tokens: 24, seed: 42 });

const chatRequest = {
  model,
  messages: [{ role: "system", content: "You are a poet." }, { role: "user", content: "Sing." }],
  max_tokens: 24,
  seed: 7,
  temperature: 0.8,
};
const chat = await client.chat.completions.create(chatRequest);
const said = chat.choices[0].message;
if (said.role !== "assistant" || typeof said.content !== "string") fail(`chat message: ${JSON.stringify(said)}`);

const stream = await client.chat.completions.create({ ...chatRequest, stream: true });
let streamed = "";
let chunks = 0;
for await (const chunk of stream) {
  chunks++;
  for (const c of chunk.choices) streamed += c.delta?.content ?? "";
}
if (streamed !== said.content) fail(`streamed ${JSON.stringify(streamed)} != ${JSON.stringify(said.content)}`);

const cstream = await client.completions.create({ model, prompt: "ROMEO:", max_tokens: 24, seed: 42, stream: true });
let ctext = "";
for await (const chunk of cstream) for (const c of chunk.choices) ctext += c.text ?? "";
if (ctext !== completion.choices[0].text) fail(`streamed completion differs: ${JSON.stringify(ctext)}`);

let status = 0;
try {
  await client.completions.create({ model: "no-such-model", prompt: "x", max_tokens: 2 });
} catch (e) {
  if (!(e instanceof OpenAI.APIError)) fail(`unknown model threw ${e}`);
  status = e.status;
}
if (status !== 404) fail(`unknown model gave status ${status}, not 404`);

console.log(JSON.stringify({ models: ids, completion: completion.choices[0].text, chat: said.content, chunks, status }));
