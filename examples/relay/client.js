// @ts-check
/**
 * A client for `POST /chat`: `fetch` with a JSON body, and the answer's event stream read by eventsource-parser
 * (an EventSource can only GET). Run it: `node examples/relay/client.js http://127.0.0.1:8789/chat "Say hello"`.
 * The code between the `recipe` markers is the README's recipe, byte for byte (test/runtime/relay.test.ts checks it).
 */
// #region recipe
import { EventSourceParserStream } from "eventsource-parser/stream";

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
  const reader = events.getReader(); // a loop of reads: Safari cannot for-await a stream
  for (;;) {
    const { done, value } = await reader.read();
    if (done) throw new Error("the stream ended without [DONE]");
    if (value.event === "error") throw new Error(JSON.parse(value.data).message);
    if (value.data === "[DONE]") return;
    yield JSON.parse(value.data).choices[0]?.delta?.content ?? "";
  }
}
// #endregion recipe

// Run as a command (not imported): print the answer as it streams.
if (process.argv[1] === import.meta.filename) {
  const [url = "http://127.0.0.1:8789/chat", prompt = "Say hello"] = process.argv.slice(2);
  for await (const text of chat(url, prompt)) process.stdout.write(text);
  process.stdout.write("\n");
}
