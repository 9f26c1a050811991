// Chat playground: one conversation with a model through /v1/chat/completions, streamed.
// The model's Markdown is rendered safely (markdown.js); its reasoning and tool calls are
// shown apart, as text. Stop aborts the request, which
// cancels the generation on the server.
import { html, useEffect, useRef, useState } from "../vendor/htm-preact-3.1.1.mjs";
import { events, getJson } from "./api.js";
import { markdownToSafeHtml } from "./markdown.js";

function Markdown({ text }) {
  const safe = markdownToSafeHtml(text);
  return html`<div class="markdown" dangerouslySetInnerHTML=${{ __html: safe }}></div>`;
}

function Turn({ turn }) {
  if (turn.role === "user") return html`<div class="turn user"><pre>${turn.content}</pre></div>`;
  return html`<div class="turn assistant">
    ${turn.reasoning &&
    html`<details class="thinking" open=${!turn.content}>
      <summary>Thinking</summary><pre>${turn.reasoning}</pre>
    </details>`}
    <${Markdown} text=${turn.content} />
    ${turn.toolCalls?.map(
      (c) => html`<pre class="tool-call" data-testid="chat-tool-call">${c.name}(${c.arguments})</pre>`,
    )}
    ${turn.error && html`<p class="error" data-testid="error">${turn.error}</p>`}
    ${turn.stats && html`<p class="muted" data-testid="chat-stats">${turn.stats}</p>`}
  </div>`;
}

function answerStats(sentAt, firstAt, endAt, tokens, stopped) {
  if (firstAt === null) return stopped ? "Stopped before the first token." : "";
  const ttft = Math.round(firstAt - sentAt);
  const seconds = (endAt - firstAt) / 1000;
  const speed = tokens && seconds > 0 ? ` · ${(tokens / seconds).toFixed(1)} tok/s` : "";
  const count = tokens ? ` · ${tokens} tokens` : "";
  return `TTFT ${ttft} ms${speed}${count}${stopped ? " · stopped" : ""}`;
}

export function ChatPage({ visible }) {
  const [models, setModels] = useState([]);
  const [model, setModel] = useState("");
  const [system, setSystem] = useState("");
  const [temperature, setTemperature] = useState(0.7);
  const [maxTokens, setMaxTokens] = useState(512);
  const [input, setInput] = useState("");
  const [tools, setTools] = useState(""); // OpenAI function tools, as JSON text
  const [toolChoice, setToolChoice] = useState("auto");
  const [turns, setTurns] = useState([]);
  const [error, setError] = useState("");
  const running = useRef(null); // the AbortController of the answer being written

  useEffect(() => {
    if (!visible) return;
    getJson("/osaurus/v1/models")
      .then(({ models: all }) => {
        const chat = all.filter((m) => !m.capabilities.includes("embedding")).map((m) => m.id);
        setModels(chat);
        setModel((current) => (chat.includes(current) ? current : chat[0] ?? ""));
      })
      .catch((e) => setError(e.message));
  }, [visible]);

  const send = async () => {
    const text = input.trim();
    if (!text || !model || running.current) return;
    let declared;
    try {
      declared = tools.trim() ? JSON.parse(tools) : undefined;
    } catch (e) {
      setError(`Tools must be a JSON array of function tools: ${e.message}`);
      return;
    }
    const history = [...turns, { role: "user", content: text }];
    const answer = { role: "assistant", content: "", reasoning: "", toolCalls: [], stats: "" };
    setTurns([...history, answer]);
    setInput("");
    setError("");
    const controller = new AbortController();
    running.current = controller;
    const show = (change) => {
      Object.assign(answer, change);
      setTurns([...history, { ...answer }]);
    };
    const messages = [
      ...(system.trim() ? [{ role: "system", content: system.trim() }] : []),
      ...history.map(({ role, content }) => ({ role, content })),
    ];
    const body = {
      model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
      temperature: Number(temperature),
      max_tokens: Number(maxTokens),
      ...(declared ? { tools: declared, tool_choice: toolChoice } : {}),
    };
    const sentAt = performance.now();
    let firstAt = null;
    let tokens = 0;
    try {
      const stream = events("/v1/chat/completions", { method: "POST", body, signal: controller.signal });
      for await (const chunk of stream) {
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
        const delta = chunk.choices?.[0]?.delta;
        if (!delta) continue;
        const produced = delta.content || delta.reasoning_content || delta.tool_calls?.length;
        if (produced && firstAt === null) firstAt = performance.now();
        if (delta.reasoning_content) show({ reasoning: answer.reasoning + delta.reasoning_content });
        if (delta.content) show({ content: answer.content + delta.content });
        for (const call of delta.tool_calls ?? []) {
          const calls = [...answer.toolCalls];
          calls[call.index] = {
            name: call.function?.name ?? calls[call.index]?.name ?? "",
            arguments: (calls[call.index]?.arguments ?? "") + (call.function?.arguments ?? ""),
          };
          show({ toolCalls: calls });
        }
      }
      show({ stats: answerStats(sentAt, firstAt, performance.now(), tokens, false) });
    } catch (e) {
      if (controller.signal.aborted) {
        show({ stats: answerStats(sentAt, firstAt, performance.now(), 0, true) });
      } else {
        show({ error: e.message });
      }
    } finally {
      running.current = null;
      setTurns([...history, { ...answer }]);
    }
  };
  const stop = () => running.current?.abort();
  const onKey = (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      send();
    }
  };
  const busy = running.current !== null;
  return html`
    <h1>Chat</h1>
    ${error && html`<p class="error" data-testid="error">${error}</p>`}
    <div class="row settings">
      <label>Model
        <select data-testid="chat-model" value=${model} onChange=${(e) => setModel(e.target.value)}>
          ${models.map((id) => html`<option value=${id}>${id}</option>`)}
        </select>
      </label>
      <label>Temperature
        <input type="number" min="0" max="2" step="0.1" value=${temperature}
          data-testid="chat-temperature" onInput=${(e) => setTemperature(e.target.value)} />
      </label>
      <label>Max tokens
        <input type="number" min="1" step="1" value=${maxTokens} data-testid="chat-max-tokens"
          onInput=${(e) => setMaxTokens(e.target.value)} />
      </label>
      <button onClick=${() => setTurns([])} disabled=${busy}>New chat</button>
    </div>
    <textarea class="system" rows="2" placeholder="System prompt (optional)"
      data-testid="chat-system" value=${system} onInput=${(e) => setSystem(e.target.value)} />
    <details class="tools">
      <summary>Tools</summary>
      <textarea rows="4" data-testid="chat-tools" value=${tools}
        placeholder='[{"type": "function", "function": {"name": "get_weather", "parameters": {...}}}]'
        onInput=${(e) => setTools(e.target.value)} />
      <label>Tool choice
        <select data-testid="chat-tool-choice" value=${toolChoice}
          onChange=${(e) => setToolChoice(e.target.value)}>
          <option value="auto">auto</option>
          <option value="required">required</option>
          <option value="none">none</option>
        </select>
      </label>
    </details>
    <div class="transcript" data-testid="chat-output">
      ${turns.map((turn) => html`<${Turn} turn=${turn} />`)}
    </div>
    <div class="row composer">
      <textarea rows="3" placeholder="Message (Enter sends, Shift+Enter for a new line)"
        data-testid="chat-input" value=${input} onInput=${(e) => setInput(e.target.value)}
        onKeyDown=${onKey} />
      <button data-testid="chat-send" onClick=${send} disabled=${busy || !model}>Send</button>
      <button data-testid="chat-stop" onClick=${stop} disabled=${!busy}>Stop</button>
    </div>
  `;
}
