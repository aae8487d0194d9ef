// Test-only: the routes test/runtime/nextjs.test.ts drives to see exactly when events are produced and when a
// source's finally runs. They answer 404 unless EVENTSOURCE_SERVER_PROBE=1; leave this folder out of your app.
import { probe } from "../../../../../test/runtime/probe.ts";

function answer(request: Request): Response | Promise<Response> {
  if (process.env.EVENTSOURCE_SERVER_PROBE !== "1") return new Response("not found\n", { status: 404 });
  return probe(request) ?? new Response("not found\n", { status: 404 });
}

export const GET = answer;
export const POST = answer;
