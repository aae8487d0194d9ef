// @ts-check
/**
 * The demo page: what it shows, the server code that serves it, and a live log of what the browser's own
 * EventSource receives. No build step: plain HTML, CSS and a small script.
 */

/**
 * The code the page shows: demo.js between its `served` markers, byte for byte (test/runtime/node.test.ts
 * checks it, so the page never shows code that does not run).
 */
export const servedCode = `const channel = new EventChannel({ replay: 500 }); // keeps the last 500 events
let lastId = 0;
/** @param {string} event @param {object} fields */
function emit(event, fields) {
  channel.emit({ event, id: String(++lastId), data: { ...fields, at: Date.now() } });
}
setInterval(() => emit("tick", { subscribers: channel.subscribers }), 1_000);

/** @param {Request} request */
async function handle(request) {
  const { pathname } = new URL(request.url);
  if (pathname === "/events") {
    // A browser that reconnects sends Last-Event-ID: the channel replays
    // what it missed, then goes live. The Drop button aborts its signal.
    return channel.response(request, { retry: 2_000, signal: dropSignal(request) });
  }
  if (pathname === "/publish" && request.method === "POST") {
    emit("note", { text: (await request.text()).slice(0, 280) });
    return new Response(null, { status: 204 });
  }
  return demoRoutes(request); // the page, its icon, the Drop button
}`;

/** The tab icon, served on /favicon.svg (and /favicon.ico, for browsers that ask for it anyway). */
export const favicon = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="7" fill="#0f172a"/>
<path d="M7 20a9 9 0 0 1 18 0" fill="none" stroke="#38bdf8" stroke-width="3" stroke-linecap="round"/>
<path d="M11.5 20a4.5 4.5 0 0 1 9 0" fill="none" stroke="#a78bfa" stroke-width="3" stroke-linecap="round"/>
<circle cx="16" cy="20" r="2" fill="#f8fafc"/>
</svg>
`;

/** @param {string} text */
function escapeHtml(text) {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** Light syntax colouring for the code panel: comments and strings, enough to read it at a glance. */
function highlighted() {
  return escapeHtml(servedCode).replace(/(\/\/[^\n]*)|("(?:[^"\\\n]|\\.)*")/g, (match, comment) =>
    comment === undefined ? `<span class="str">${match}</span>` : `<span class="com">${match}</span>`,
  );
}

export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>eventsource-server · live demo</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>
  :root { --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --bg: #f8fafc; --ok: #15803d; --warn: #b45309;
    --tick: #0369a1; --note: #7c3aed; --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: var(--bg); }
  header { background: var(--ink); color: #f8fafc; padding: 1.25rem 2rem; display: flex; align-items: center; gap: 1rem; }
  header img { width: 36px; height: 36px; }
  header h1 { font-size: 1.25rem; margin: 0; font-weight: 650; }
  header p { margin: 0; color: #cbd5e1; font-size: 0.95rem; }
  header .status { margin-left: auto; }
  main { display: grid; grid-template-columns: minmax(0, 0.85fr) minmax(0, 1.15fr); gap: 1.5rem; padding: 1.5rem 2rem; max-width: 1280px; margin: 0 auto; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 1rem 1.25rem; }
  h2 { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.06em; color: var(--muted); margin: 0 0 0.75rem; }
  .intro { grid-column: 1 / -1; display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 1.5rem; }
  .intro div { font-size: 0.92rem; }
  .intro strong { display: block; margin-bottom: 0.15rem; }
  code { font-family: var(--mono); font-size: 0.86em; background: #f1f5f9; padding: 0.05em 0.3em; border-radius: 4px; }
  .status { display: inline-flex; align-items: center; gap: 0.5rem; font-weight: 600; padding: 0.3rem 0.75rem; border-radius: 999px; background: #1e293b; }
  .status::before { content: ""; width: 0.6rem; height: 0.6rem; border-radius: 50%; background: #94a3b8; }
  .status.open::before { background: #22c55e; box-shadow: 0 0 0 4px #22c55e33; }
  .status.reconnecting::before { background: #f59e0b; box-shadow: 0 0 0 4px #f59e0b33; }
  .stats { display: flex; gap: 1.5rem; color: var(--muted); font-size: 0.9rem; margin-bottom: 0.75rem; }
  .stats b { color: var(--ink); font-variant-numeric: tabular-nums; }
  #banner { border-radius: 8px; padding: 0.6rem 0.8rem; margin-bottom: 0.75rem; font-size: 0.92rem; display: none; }
  #banner.show { display: block; }
  #banner.dropped { background: #fffbeb; border: 1px solid #fcd34d; }
  #banner.resumed { background: #f0fdf4; border: 1px solid #86efac; }
  #banner.gap { background: #fef2f2; border: 1px solid #fca5a5; }
  .log { font-family: var(--mono); font-size: 0.82rem; height: 30rem; overflow-y: auto; border-top: 1px solid var(--line); }
  .row { display: grid; grid-template-columns: 3.5rem 3.8rem 1fr auto; gap: 0.75rem; align-items: baseline; padding: 0.3rem 0.25rem; border-bottom: 1px solid #f1f5f9; }
  .row .id { color: var(--muted); text-align: right; }
  .row .type { font-weight: 600; }
  .row.tick .type { color: var(--tick); }
  .row.note .type { color: var(--note); }
  .row.note { background: #faf5ff; }
  .row .data { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .row .tag { font-family: system-ui, sans-serif; font-size: 0.72rem; font-weight: 600; color: var(--warn); background: #fef3c7; border-radius: 999px; padding: 0 0.5rem; }
  .controls { display: grid; grid-template-columns: minmax(0, 1fr); gap: 1.5rem; align-content: start; }
  form { display: flex; gap: 0.5rem; }
  .drop { display: flex; align-items: center; gap: 0.75rem; margin-top: 1rem; padding-top: 1rem; border-top: 1px solid var(--line); }
  .drop .hint { margin: 0; }
  input { flex: 1; font: inherit; padding: 0.5rem 0.7rem; border: 1px solid #cbd5e1; border-radius: 8px; }
  button { font: inherit; font-weight: 600; border: 0; border-radius: 8px; padding: 0.5rem 0.9rem; cursor: pointer; background: var(--note); color: #fff; }
  button.secondary { white-space: nowrap; background: #fff; color: var(--ink); border: 1px solid #cbd5e1; }
  button:disabled { opacity: 0.5; cursor: default; }
  .hint { color: var(--muted); font-size: 0.85rem; margin: 0.35rem 0 0; }
  pre code { background: none; padding: 0; font-size: inherit; }
  pre { margin: 0; background: var(--ink); color: #e2e8f0; border-radius: 10px; padding: 0.9rem 1rem; overflow-x: auto; font: 0.72rem/1.6 var(--mono); }
  pre .com { color: #94a3b8; }
  pre .str { color: #86efac; }
  a { color: var(--tick); }
  @media (max-width: 900px) { main, .intro { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header>
  <img src="/favicon.svg" alt="">
  <div>
    <h1>eventsource-server · live demo</h1>
    <p>Server-Sent Events from one Fetch handler, received by this page's own <code>EventSource</code>.</p>
  </div>
  <span id="status" class="status">connecting…</span>
</header>
<main>
  <section class="intro">
    <div><strong>What you see</strong>Every event this tab receives, newest first: a <code>tick</code> every second and a
      <code>note</code> whenever anyone publishes one. Each has an <code>id</code>.</div>
    <div><strong>Publish</strong>A note goes into one <code>EventChannel</code> and reaches every open tab.
      <a href="/" target="_blank" rel="noopener">Open a second tab</a> and watch it arrive there.</div>
    <div><strong>Drop the connection</strong>The server ends this tab's stream. The browser reconnects by itself,
      sends <code>Last-Event-ID</code>, and the channel replays what it missed: the ids run on without a gap.</div>
  </section>
  <section>
    <h2>Live events</h2>
    <div class="stats">
      <span>received <b id="count">0</b></span>
      <span>last id <b id="last-id">–</b></span>
      <span>tabs connected <b id="subscribers">–</b></span>
    </div>
    <div id="banner"></div>
    <div id="log" class="log" aria-live="polite"></div>
  </section>
  <div class="controls">
    <section>
      <h2>Try it</h2>
      <form id="publish">
        <input id="note" name="note" placeholder="Write a note for every open tab" maxlength="280" autocomplete="off" required>
        <button type="submit">Publish</button>
      </form>
      <p class="hint"><code>POST /publish</code> → <code>channel.emit({ event: "note", … })</code></p>
      <div class="drop">
        <button id="drop" class="secondary" type="button">Drop the connection</button>
        <p class="hint">The server aborts this stream's <code>signal</code>; the browser retries after 2 s.</p>
      </div>
    </section>
    <section>
      <h2>The server code</h2>
      <pre><code>${highlighted()}</code></pre>
      <p class="hint">From <code>examples/node/demo.js</code>, served through <code>toNodeHandler</code> from <code>eventsource-server/node</code>.</p>
    </section>
  </div>
</main>
<script>
  const tab = Math.random().toString(36).slice(2, 10);
  const source = new EventSource("/events?tab=" + tab);
  const $ = (id) => document.getElementById(id);
  const log = $("log");
  const banner = $("banner");
  let received = 0;
  let lastId = null;
  let dropped = null; // { after, at }: set when the connection drops
  let resumed = null; // { after, at, replayed: [first, last] }: set when it comes back

  function say(kind, html) {
    banner.className = "show " + kind;
    banner.innerHTML = html;
  }

  function status(text, kind) {
    $("status").textContent = text;
    $("status").className = "status " + kind;
  }

  function show(event) {
    const id = Number(event.lastEventId);
    const data = JSON.parse(event.data);
    const previous = lastId;
    const gap = previous !== null && id !== previous + 1;
    // Written by the server before the browser reconnected: it can only have come from the replay.
    const replayed = resumed !== null && data.at < resumed.at;
    lastId = id;
    received += 1;
    $("count").textContent = String(received);
    $("last-id").textContent = "#" + id;
    if (data.subscribers !== undefined) $("subscribers").textContent = String(data.subscribers);

    const row = document.createElement("div");
    row.className = "row " + event.type + (replayed ? " replayed" : "");
    row.dataset.id = String(id);
    const cells = [
      ["id", "#" + id],
      ["type", event.type],
      ["data", event.type === "note" ? JSON.stringify(data.text) : new Date(data.at).toLocaleTimeString()],
    ];
    for (const [name, text] of cells) {
      const cell = document.createElement("span");
      cell.className = name;
      cell.textContent = text;
      row.append(cell);
    }
    const tag = document.createElement("span");
    if (replayed) {
      tag.className = "tag";
      tag.textContent = "replayed";
    }
    row.append(tag);
    log.prepend(row);
    while (log.children.length > 200) log.lastElementChild.remove();

    if (gap) {
      say("gap", "<b>Gap:</b> event #" + id + " came right after #" + previous + ". Something was lost.");
    } else if (replayed) {
      resumed.replayed = [resumed.replayed[0] ?? id, id];
      const [first, last] = resumed.replayed;
      say("resumed", "<b>Resumed with nothing lost.</b> The browser reconnected with <code>Last-Event-ID: " +
        resumed.after + "</code>; the channel replayed " + (first === last ? "#" + first : "#" + first + "–#" + last) +
        ", which were sent while this tab was away, then went live.");
    }
  }

  source.addEventListener("tick", show);
  source.addEventListener("note", show);
  source.addEventListener("open", () => {
    status("live", "open");
    if (dropped !== null) {
      resumed = { after: dropped.after, at: Date.now(), replayed: [] };
      dropped = null;
      say("resumed", "Reconnected with <code>Last-Event-ID: " + resumed.after + "</code>.");
    }
    $("drop").disabled = false;
  });
  source.addEventListener("error", () => {
    status("reconnecting…", "reconnecting");
    if (dropped === null && lastId !== null) {
      dropped = { after: lastId, at: Date.now() };
      say("dropped", "Connection dropped after <b>#" + lastId + "</b>. The browser reconnects in 2 s and sends " +
        "<code>Last-Event-ID: " + lastId + "</code>.");
    }
  });

  $("drop").addEventListener("click", async () => {
    $("drop").disabled = true;
    await fetch("/drop?tab=" + tab, { method: "POST" });
  });
  $("publish").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("note").value.trim();
    if (text === "") return;
    $("note").value = "";
    await fetch("/publish", { method: "POST", body: text });
  });
</script>
</body>
</html>
`;
