import type { ReactNode } from "react";

export const metadata = { title: "eventsource-server on Next.js" };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body style={{ font: "16px/1.5 system-ui, sans-serif", maxWidth: "40rem", margin: "2rem auto" }}>{children}</body>
    </html>
  );
}
