/**
 * A real nginx in front of a test's server: Debian's, found on PATH or installed with apt-get (as redis-server is),
 * run in the foreground with a configuration that only says where to listen and where to pass requests, so every
 * proxy setting is nginx's default (buffering on, HTTP/1.0 to the upstream), and stopped by its pid.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { currentPath, findOnPath, findOrInstall, freePort } from "./install.ts";

const INSTALL_HINT =
  "nginx is not on PATH: install it (Debian/Ubuntu: `sudo apt-get install -y nginx`, macOS: `brew install nginx`) or run the tests as root to let them install it";

let found: Promise<string> | undefined;

function nginxBinary(): Promise<string> {
  // Debian puts it in /usr/sbin, which a non-login shell's PATH may lack.
  const find = () => findOnPath("nginx", `${currentPath()}:/usr/sbin`);
  found ??= findOrInstall(find, {
    lockFile: join(tmpdir(), "eventsource-server-nginx-install.lock"),
    debianPackage: "nginx",
    hint: INSTALL_HINT,
  });
  return found;
}

export interface Nginx {
  /** `http://127.0.0.1:PORT`, where nginx listens. */
  origin: string;
  /** SIGTERM, then SIGKILL after 3 s; resolves once it has exited and its folder is gone. */
  stop(): Promise<void>;
}

/** Starts nginx on a free port of 127.0.0.1, passing every request to `upstream` (`http://127.0.0.1:PORT`). */
export async function startNginx(upstream: string): Promise<Nginx> {
  const binary = await nginxBinary();
  const prefix = mkdtempSync(join(tmpdir(), "eventsource-server-nginx-"));
  const port = await freePort();
  writeFileSync(
    join(prefix, "nginx.conf"),
    [
      "daemon off;",
      "worker_processes 1;",
      "error_log stderr warn;",
      `pid ${join(prefix, "nginx.pid")};`,
      "events {}",
      "http {",
      "  access_log off;",
      `  client_body_temp_path ${join(prefix, "body")};`,
      `  proxy_temp_path ${join(prefix, "proxy")};`,
      `  fastcgi_temp_path ${join(prefix, "fastcgi")};`,
      `  uwsgi_temp_path ${join(prefix, "uwsgi")};`,
      `  scgi_temp_path ${join(prefix, "scgi")};`,
      "  server {",
      `    listen 127.0.0.1:${port};`,
      `    location / { proxy_pass ${upstream}; }`,
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  const child = spawn(binary, ["-p", prefix, "-c", join(prefix, "nginx.conf")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    await stopProcess(child, exited);
    rmSync(prefix, { recursive: true, force: true });
  };
  try {
    await listening(port, exited, () => stderr);
  } catch (error) {
    await stop();
    throw error;
  }
  return { origin: `http://127.0.0.1:${port}`, stop };
}

/** Resolves once `port` accepts connections; rejects if nginx exits first, or after 10 s. */
async function listening(port: number, exited: Promise<void>, stderr: () => string): Promise<void> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (gone) throw new Error(`nginx exited: ${stderr()}`);
    if (await accepts(port)) return;
    if (Date.now() > deadline) throw new Error(`nginx did not listen within 10 s: ${stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function stopProcess(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
  await exited;
  clearTimeout(timer);
}
