import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";

test("an unhandled rejection fails the test run even when every assertion passes", () => {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const run = spawnSync(
    process.execPath,
    ["node_modules/vitest/vitest.mjs", "run", "--config", "test/fixtures/vitest.config.ts"],
    { cwd: root, encoding: "utf8", timeout: 60_000, env: { ...process.env, CI: "true", NO_COLOR: "1" } },
  );
  const output = `${run.stdout}${run.stderr}`;
  expect(output).toContain("1 passed");
  expect(output).toContain("nobody handled me");
  expect(run.status).not.toBe(0);
});
