// @ts-check
/**
 * A stand-in for an OpenAI-style chat completions endpoint, so the relay runs offline with no API key: it
 * answers `POST /v1/chat/completions` with a `data: {json}` chunk per word, one every 150 ms, then
 * `data: [DONE]`. A request for the model "missing" gets a 404 with a JSON error, as a real API would send.
 */
import { createServer } from "node:http";

/** Starts the fake on 127.0.0.1 and a free port; resolves with its URL and a way to stop it. */
export async function startFakeUpstream() {
  const server = createServer(async (req, res) => {
    let text = "";
    for await (const chunk of req) text += chunk;
    const body = JSON.parse(text || "{}");
    if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":{"message":"no such route"}}');
      return;
    }
    if (body.model === "missing") {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "The model `missing` does not exist" } }));
      return;
    }
    const prompt = String(body.messages?.at(-1)?.content ?? "");
    const words = `You said: ${prompt}. This answer streams one word at a time.`.split(/(?<= )/);
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    let stopped = false;
    res.once("close", () => {
      stopped = true;
    });
    for (const word of words) {
      if (stopped) return;
      const chunk = { object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: word } }] };
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    res.end("data: [DONE]\n\n");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}/v1/chat/completions`,
    stop() {
      server.closeAllConnections();
      server.close();
    },
  };
}
