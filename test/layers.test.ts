/** The parts take narrow settings (built in src/run/configure.ts), not the whole Config; only the wiring and edges read it. */
import { expect, test } from "bun:test";
import { Glob } from "bun";

const PARTS = ["proxy/*.ts", "pool/*.ts", "upstream/*.ts", "balance/*.ts", "routing/*.ts", "hooks/*.ts", "l4/*.ts"];
/** `Config` imported from config/types.ts, alone or beside other names. */
const IMPORTS_CONFIG = /import\s+(type\s+)?\{[^}]*\bConfig\b[^}]*\}\s+from\s+"[./]*\/?config\/types\.ts"/;

test("the data plane, the control plane and the layers below them do not import Config", async () => {
  const offenders: string[] = [];
  for (const pattern of PARTS) {
    for await (const path of new Glob(pattern).scan(`${import.meta.dir}/../src`)) {
      if (IMPORTS_CONFIG.test(await Bun.file(`${import.meta.dir}/../src/${path}`).text())) offenders.push(path);
    }
  }
  expect(offenders).toEqual([]);
});
