// The only way the page talks to osaurus: the bridge's public REST routes (JSON, and SSE read
// from fetch so that the API key goes in a header, never in a URL).

const KEY_ITEM = "osaurus-api-key";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function headers(json) {
  const out = json ? { "content-type": "application/json" } : {};
  const key = localStorage.getItem(KEY_ITEM);
  if (key) out.authorization = `Bearer ${key}`;
  return out;
}

// The message of an error answer, in any family's shape (OpenAI's, Ollama's, Anthropic's).
async function errorMessage(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    const error = body.error ?? body.detail ?? body;
    return typeof error === "string" ? error : error.message ?? text;
  } catch {
    return text || `${response.status} ${response.statusText}`;
  }
}

// When the server refuses a call (401: it has API keys), the page asks for the key once, in a
// form of its own (the App shows it), however many calls were refused meanwhile.
let keyWanted = null; // the pending answer while the form is shown
let showKeyForm = () => {};

export function onKeyWanted(show) {
  // show(resolve, refused): the form calls resolve(key) when the user gives one; `refused`
  // says the key the page had was turned down.
  showKeyForm = show;
}

function askForKey(refused) {
  keyWanted ??= new Promise((resolve) => showKeyForm(resolve, refused)).finally(() => {
    keyWanted = null;
  });
  return keyWanted;
}

export function saveKey(key) {
  localStorage.setItem(KEY_ITEM, key);
}

export async function request(path, { method = "GET", body, signal } = {}) {
  const json = body !== undefined;
  const send = () =>
    fetch(path, { method, headers: headers(json), signal, body: json ? JSON.stringify(body) : undefined });
  let response = await send();
  for (let tries = 0; response.status === 401 && tries < 3; tries++) {
    const refused = localStorage.getItem(KEY_ITEM) !== null;
    localStorage.removeItem(KEY_ITEM);
    await askForKey(refused);
    response = await send();
  }
  if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
  return response;
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

// Yields each SSE event's data as JSON until the stream ends (or `[DONE]`). An error event
// in the stream (the status line was already sent) is thrown as an ApiError.
export async function* events(path, options) {
  const response = await request(path, options);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (!data) continue;
        if (data === "[DONE]") return;
        const event = JSON.parse(data);
        if (event.error && !event.type) throw new ApiError(event.error.message, 500);
        if (event.type === "error") throw new ApiError(event.error?.message ?? "failed", 500);
        yield event;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
