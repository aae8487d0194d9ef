"use client";

import { useEffect, useState } from "react";

interface Shown {
  key: number;
  text: string;
}

/** The browser's own EventSource on /api/events, listing the last 20 events as they arrive. */
export default function Page() {
  const [status, setStatus] = useState("connecting…");
  const [events, setEvents] = useState<Shown[]>([]);

  useEffect(() => {
    const source = new EventSource("/api/events");
    let received = 0;
    const show = (event: MessageEvent<string>) => {
      received += 1;
      const text = `${event.type}${event.lastEventId ? ` #${event.lastEventId}` : ""}: ${event.data}`;
      setEvents((shown) => [{ key: received, text }, ...shown].slice(0, 20));
    };
    source.onopen = () => setStatus("open");
    source.onerror = () => setStatus("reconnecting…");
    source.addEventListener("tick", show);
    source.addEventListener("stats", show);
    return () => source.close();
  }, []);

  return (
    <main>
      <h1>eventsource-server on Next.js</h1>
      <p>
        Status: <strong id="status">{status}</strong> · events: <span id="count">{events.length}</span>
      </p>
      <ul id="events" style={{ fontFamily: "ui-monospace, monospace", fontSize: 14 }}>
        {events.map((event) => (
          <li key={event.key}>{event.text}</li>
        ))}
      </ul>
    </main>
  );
}
