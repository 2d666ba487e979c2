// The studio's only way to the server: the public HTTP API (docs/api.md). Errors come back as
// ApiError with the server's message and hint; a 401 asks the page for the API key.

const KEY = "imagine.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, message, hint = "") {
    super(message);
    this.status = status;
    this.hint = hint;
  }
}

function headers(extra = {}) {
  const h = { ...extra };
  const key = apiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function failure(res) {
  let message = `${res.status} ${res.statusText}`;
  let hint = "";
  try {
    const j = await res.json();
    if (j.error) {
      message = j.error.message || message;
      hint = j.error.hint || "";
    }
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401) window.dispatchEvent(new CustomEvent("imagine:need-key"));
  return new ApiError(res.status, message, hint);
}

async function send(method, path, body, signal) {
  const init = { method, headers: headers(), signal };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "the server cannot be reached", "is `imagine serve` still running?");
  }
  if (!res.ok) throw await failure(res);
  return res;
}

export const api = {
  async get(path, signal) {
    return (await send("GET", path, undefined, signal)).json();
  },
  async post(path, body, signal) {
    return (await send("POST", path, body, signal)).json();
  },
  async del(path) {
    return (await send("DELETE", path)).json();
  },
};

// Server-Sent Events over fetch (EventSource cannot send the API key): yields {event, data}
// with data parsed as JSON. `body` undefined = GET.
export async function* events(path, body, signal) {
  const res = await send(body === undefined ? "GET" : "POST", path, body, signal);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

// ---- bytes ----
export function base64ToBlob(b64, mime) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type: mime });
}

export function blobToBase64(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).split(",", 2)[1] || "");
    r.onerror = () => reject(new ApiError(0, "the file cannot be read", "pick the file again"));
    r.readAsDataURL(blob);
  });
}
