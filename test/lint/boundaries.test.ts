/**
 * The folder boundaries of eslint.config.js refuse what they promise: each probe below is a
 * deliberate violation linted as if it were a file at that path, and must be refused with the
 * boundary's message; the same import from a folder allowed to make it must pass.
 */
import test from 'ava';
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const eslint = new ESLint({ cwd: ROOT });

/** The no-restricted-imports messages ESLint gives `code` as the file at `path`. */
async function refusals(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${ROOT}${path}` });
  return (result?.messages ?? [])
    .filter((m) => m.ruleId === 'no-restricted-imports')
    .map((m) => m.message);
}

const cases: ReadonlyArray<readonly [string, string, RegExp]> = [
  [
    'cli/verbs/probe.ts',
    "import { openStore } from '../../store/index.js';",
    /flotctl imports only/,
  ],
  ['cli/probe.ts', "import { runAgent } from '../agent/main.js';", /flotctl imports only/],
  [
    'cli/probe.ts',
    "import { Engine } from '../scheduler/leader/engine.js';",
    /flotctl imports only/,
  ],
  ['cli/probe.ts', "import { Etcd3 } from 'etcd3';", /flotctl imports only/],
  ['agent/units/probe.ts', "import { Store } from '../../store/index.js';", /never talks to etcd/],
  ['agent/units/supervisor/probe.ts', "import { Etcd3 } from 'etcd3';", /never talks to etcd/],
  ['agent/runtime/probe.ts', "import { x } from '../images/overlay.js';", /lowest layer/],
  ['agent/runtime/probe.ts', "import { x } from '../units/unit-manager.js';", /lowest layer/],
  ['scheduler/probe.ts', "import { x } from '../test/api/api-kit.js';", /Only tests import test/],
  ['bench/probe.ts', "import { x } from '../test/agent/harness.js';", /Only tests import test/],
  ['testkit/probe.ts', "import { x } from '../test/cli/cli-kit.js';", /Only tests import test/],
  [
    'scheduler/planner/probe.ts',
    "import { x } from '../../store/index.js';",
    /The planner is pure/,
  ],
  ['lib/probe.ts', "import { x } from '../store/index.js';", /leaves/],
];

for (const [path, code, message] of cases) {
  test(`${path} may not ${code.replace(/^import .* from (.*);$/, 'import $1')}`, async (t) => {
    const found = await refusals(path, code);
    t.true(
      found.some((m) => message.test(m)),
      `refusals: ${JSON.stringify(found)}`,
    );
  });
}

const allowed: ReadonlyArray<readonly [string, string]> = [
  ['cli/probe.ts', "import { parseUnit } from '../unit/index.js';"],
  ['cli/probe.ts', "import { pool } from '../lib/pool.js';"],
  ['agent/sync/probe.ts', "import { Store } from '../../store/index.js';"],
  ['agent/units/probe.ts', "import { x } from '../runtime/index.js';"],
  ['test/agent/probe.test.ts', "import { x } from '../api/api-kit.js';"],
  ['bench/probe.ts', "import { x } from '../testkit/index.js';"],
];

for (const [path, code] of allowed) {
  test(`${path} may ${code.replace(/^import .* from (.*);$/, 'import $1')}`, async (t) => {
    t.deepEqual(await refusals(path, code), []);
  });
}
