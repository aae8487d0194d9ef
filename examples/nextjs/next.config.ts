import { fileURLToPath } from "node:url";
import type { NextConfig } from "next";

// On, as create-next-app writes them for a new Next 16 app; test/runtime/nextjs.test.ts also builds the example
// with CACHE_COMPONENTS=0, the configuration of an app from before them.
const cacheComponents = process.env.CACHE_COMPONENTS !== "0";

const config: NextConfig = {
  // "eventsource-server" is mapped to this checkout's src/ (tsconfig.json `paths`), two folders up: the bundler
  // must be allowed to read there.
  turbopack: { root: fileURLToPath(new URL("../..", import.meta.url)) },
  cacheComponents,
  partialPrefetching: cacheComponents,
};

export default config;
