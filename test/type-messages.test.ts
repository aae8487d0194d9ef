/**
 * What the compiler says about a wrong event of a typed channel: the event's own data type, not the union of every
 * event's. (`types.test.ts` checks that such code does not compile; this checks what the user reads.)
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import ts from "typescript";
import { expect, test } from "vitest";
import { RESULTS, ROOT } from "./runtime/harness.ts";

/** The compiler's messages for `code`, compiled strictly against this checkout's source. */
async function diagnosticsOf(code: string): Promise<string[]> {
  const dir = join(RESULTS, "type-messages");
  await mkdir(dir, { recursive: true });
  const file = join(dir, "wrong.ts");
  await writeFile(file, `import { EventChannel, eventSourceResponse } from "${ROOT}src/index.ts";\n${code}`);
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    allowImportingTsExtensions: true,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    types: [],
    skipLibCheck: true,
  });
  return ts
    .getPreEmitDiagnostics(program)
    .filter((diagnostic) => diagnostic.file?.fileName === file)
    .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
}

test("a typed channel's wrong data is reported against that event's own data type", async () => {
  const messages = await diagnosticsOf(`
    type Events = { tick: number; note: { text: string }; message: string };
    const channel = new EventChannel<Events>();
    channel.emit({ event: "tick", data: "1" });
    channel.emit({ event: "note", data: { txt: "x" } });
  `);
  expect(messages).toHaveLength(2);
  expect(messages[0]).toMatch(/Type 'string' is not assignable to type 'number'/);
  expect(messages[1]).toMatch(/'txt' does not exist in type '\{ text: string; \}'/);
});

test("a typed source's yield of an unknown key names the key and the fields there are", async () => {
  const messages = await diagnosticsOf(`
    async function* ticks() { yield { type: "tick", data: 1 }; }
    eventSourceResponse(ticks());
  `);
  expect(messages.join("\n")).toMatch(/is not an event field: use event, data, id, retry or comment/);
});
