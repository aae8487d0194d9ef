/**
 * Compressed event streams on Node: `br` or `gzip` as the request accepts, each chunk flushed as it is written so that
 * every event and heartbeat reaches the client at once, with small windows so that an idle connection holds little.
 * @module
 */
import type { Transform } from "node:stream";
import { constants, createBrotliCompress, createGzip } from "node:zlib";

export type Encoding = "br" | "gzip";

/**
 * Bounded settings (figures in docs/runtimes.md): zlib's defaults hold two to three times the memory per connection. An
 * 8 KB gzip window still holds several recent events, whose field names are what repeats. Brotli's qualities 0 and 1
 * compress each flushed chunk on its own, and every higher one allocates its hash tables whatever the window: quality 5
 * with a 64 KB window is the best ratio for that price.
 */
const GZIP = { level: 6, windowBits: 13, memLevel: 6, chunkSize: 4 * 1024 };
const BROTLI = {
  chunkSize: 4 * 1024,
  params: {
    [constants.BROTLI_PARAM_QUALITY]: 5,
    [constants.BROTLI_PARAM_LGWIN]: 16,
    [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
  },
};

/** The coding for a request's `Accept-Encoding`: `br` or `gzip`, whichever has the higher q-value, `br` on a tie. */
export function chosenEncoding(acceptEncoding: string | string[] | undefined): Encoding | undefined {
  if (acceptEncoding === undefined) return undefined;
  const weights = new Map<string, number>();
  for (const item of String(acceptEncoding).split(",")) {
    const [coding = "", ...params] = item.split(";").map((part) => part.trim().toLowerCase());
    const q = params.find((param) => param.startsWith("q="));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    if (coding !== "" && Number.isFinite(weight)) weights.set(coding, weight);
  }
  // `*` stands for every coding not named.
  const weightOf = (coding: Encoding) => weights.get(coding) ?? weights.get("*") ?? 0;
  const br = weightOf("br");
  const gzip = weightOf("gzip");
  if (br <= 0 && gzip <= 0) return undefined;
  return br >= gzip ? "br" : "gzip";
}

/**
 * A compressor whose output goes to `write`. Its default flush is a sync flush, so that one write both compresses a
 * chunk and flushes it: a write and a separate flush cost two trips to the thread pool and twice the CPU per event.
 */
export class Compressor {
  readonly #zlib: Transform;

  constructor(encoding: Encoding, write: (bytes: Uint8Array) => void) {
    const zlib =
      encoding === "br"
        ? createBrotliCompress({ ...BROTLI, flush: constants.BROTLI_OPERATION_FLUSH })
        : createGzip({ ...GZIP, flush: constants.Z_SYNC_FLUSH });
    this.#zlib = zlib;
    zlib.on("data", write);
    // An error here can only follow a destroy, when nothing is left to write to.
    zlib.on("error", () => {});
  }

  /** Compresses and flushes `chunk`: resolves once its bytes have been handed to `write`. */
  write(chunk: Uint8Array): Promise<void> {
    return new Promise((resolve) => {
      this.#zlib.write(chunk, () => resolve());
    });
  }

  /** Writes the compressed stream's end: resolves once its last bytes have been handed to `write`. */
  end(): Promise<void> {
    return new Promise((resolve) => {
      this.#zlib.once("end", resolve);
      this.#zlib.end();
    });
  }

  /** Frees the compressor's native memory at once: the client has gone, or the body failed. */
  close(): void {
    this.#zlib.destroy();
  }
}
