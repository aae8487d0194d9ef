// @ts-check
/**
 * Express 5, with `express.json()` in front as most apps have it: `GET /events`, a tick stream, and
 * `POST /words`, which answers a JSON body with an event stream (one event per word, as a chat model streams its
 * answer). On http://127.0.0.1:8790 (or $PORT; 0 picks a free port). Run it with `npm run example:express`.
 */
import { eventSourceResponse } from "eventsource-server";
import { sendResponse, toNodeHandler, toRequest } from "eventsource-server/node";
import express from "express";
import { closerOf, onShutdown } from "../shared/shutdown.js";
import { ticks } from "../shared/ticks.js";

const app = express();
app.use(express.json());

// A Fetch handler as a route: toNodeHandler makes its Request and sends its Response.
const events = toNodeHandler((request) => eventSourceResponse(ticks, { request, retry: 2_000 }));
app.get("/events", events);

// express.json() has read the body: it is in req.body, and the Request (for its signal) has none.
app.post("/words", (req, res) => {
  const words = String(req.body?.text ?? "").split(" ");
  const events = words.filter(Boolean).map((word) => ({ event: "word", data: word }));
  return sendResponse(res, eventSourceResponse(events, { request: toRequest(req, res) }));
});

const server = app.listen(Number(process.env.PORT ?? 8790), "127.0.0.1", () => {
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`express example: http://127.0.0.1:${port}/events (Ctrl-C to stop)`);
});
onShutdown(closerOf(server));
