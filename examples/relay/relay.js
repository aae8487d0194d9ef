// @ts-check
/**
 * Relaying an upstream event stream, such as an LLM API's: `POST /chat` forwards the request to an
 * OpenAI-style endpoint (`data: {json}` chunks, then `data: [DONE]`) and re-serves its stream to the client
 * through `eventSourceResponse`. The code between the `recipe` markers is the README's recipe, byte for byte
 * (test/runtime/relay.test.ts checks it).
 */
// #region recipe
import { EventSourceParserStream } from "eventsource-parser/stream";
import { eventSourceResponse } from "eventsource-server";

/**
 * Re-serves an OpenAI-style upstream stream: an upstream error keeps its status, the client gets the first
 * chunk and keep-alives at once, and the upstream request ends the moment the client leaves.
 *
 * @param {Request} request The client's POST, whose JSON body is forwarded with `stream: true`.
 * @param {{ url: string, headers?: Record<string, string> }} upstream Where to forward it (and, say, a key).
 * @param {import("eventsource-server").EventSourceResponseInit} [init] More options for the stream.
 */
export async function relay(request, upstream, init = {}) {
  const body = await request.json().catch(() => null);
  if (body === null || typeof body !== "object") {
    return Response.json({ error: { message: "the body must be a JSON object" } }, { status: 400 });
  }
  // One switch for the upstream request: the client leaving flips it, before or after the stream starts.
  const upstreamAbort = new AbortController();
  request.signal.addEventListener("abort", () => upstreamAbort.abort(), { once: true });
  const response = await fetch(upstream.url, {
    method: "POST",
    headers: { "content-type": "application/json", ...upstream.headers },
    body: JSON.stringify({ ...body, stream: true }),
    signal: upstreamAbort.signal,
  }).catch((error) => {
    if (!upstreamAbort.signal.aborted) console.error("relay:", error); // else the client left: nobody to tell
    return null;
  });
  if (response === null) return Response.json({ error: { message: "the upstream is unreachable" } }, { status: 502 });
  if (!response.ok || response.body === null) {
    // No stream has started yet, so the client still gets the upstream's status, with a JSON body.
    const text = await response.text();
    return response.headers.get("content-type")?.includes("json")
      ? new Response(text, { status: response.status, headers: { "content-type": "application/json" } })
      : Response.json({ error: { message: text } }, { status: response.status });
  }
  const chunks = response.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  return eventSourceResponse(
    async function* ({ signal }) {
      // Aborts the moment our stream ends for any reason, even while the upstream is silent mid-read.
      signal.addEventListener("abort", () => upstreamAbort.abort(), { once: true });
      const reader = chunks.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) throw new Error("the upstream stream ended without [DONE]");
        yield value.data; // each chunk's JSON text as it is, without parsing it again
        if (value.data === "[DONE]") return;
      }
    },
    {
      request,
      onError(error) {
        if (!upstreamAbort.signal.aborted) console.error("relay:", error);
        return { event: "error", data: { message: "the upstream stream broke off" } };
      },
      ...init,
    },
  );
}
// #endregion recipe
