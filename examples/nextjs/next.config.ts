import { fileURLToPath } from "node:url";
import type { NextConfig } from "next";

const config: NextConfig = {
  // "eventsource-server" is mapped to this checkout's src/ (tsconfig.json `paths`), two folders up: the bundler
  // must be allowed to read there.
  turbopack: { root: fileURLToPath(new URL("../..", import.meta.url)) },
};

export default config;
