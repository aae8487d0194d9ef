// @ts-check
/**
 * A client for `POST /chat`: `fetch` with a JSON body, and the answer's event stream read by eventsource-parser
 * (an EventSource can only GET). Run it: `node examples/relay/client.js http://127.0.0.1:8789/chat "Say hello"`.
 * The code between the `recipe` markers is the README's recipe, byte for byte (test/runtime/relay.test.ts checks it).
 */
import { fileURLToPath } from "node:url";
import { EventSourceParserStream } from "eventsource-parser/stream";

// #region recipe
/**
 * POSTs a chat request and yields the answer's text as it streams in.
 *
 * @param {string} url The relay's `POST /chat`.
 * @param {string} prompt The user's message.
 * @param {AbortSignal} [signal] Aborting it stops the stream (and, through the relay, the upstream).
 */
export async function* chat(url, prompt, signal) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({ model: "demo", messages: [{ role: "user", content: prompt }] }),
    ...(signal ? { signal } : {}),
  });
  if (!response.ok || response.body === null) throw new Error(`${response.status}: ${await response.text()}`);
  const events = response.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  for await (const { event, data } of events) {
    if (event === "error") throw new Error(JSON.parse(data).message);
    if (data === "[DONE]") return;
    yield JSON.parse(data).choices[0]?.delta?.content ?? "";
  }
  throw new Error("the stream ended without [DONE]");
}
// #endregion recipe

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [url = "http://127.0.0.1:8789/chat", prompt = "Say hello"] = process.argv.slice(2);
  for await (const text of chat(url, prompt)) process.stdout.write(text);
  process.stdout.write("\n");
}
