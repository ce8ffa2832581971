/**
 * `secret create NAME FILE|-`, `secret ls`, `secret rm NAME`: the cluster's secrets (Swarm's
 * `docker secret`, Podman's `podman secret`). A value is read from a file or stdin, at most
 * 64 KiB, sent once, and never shown again: no verb prints a value.
 */
import { open } from 'node:fs/promises';
import type { SecretInfo } from '../../proto/flotilla/v1/secrets.js';
import { CliError } from '../cli-error.js';
import { withClient } from '../client.js';
import { formatTime, printJson, renderTable, type Column } from '../table.js';
import {
  EXIT_OK,
  UsageError,
  parseVerbArgs,
  type CliIo,
  type GlobalOptions,
  type Verb,
} from '../verb.js';

/** The most a secret may hold (the API says the same). */
const SECRET_MAX_BYTES = 64 * 1024;

const COLUMNS: Readonly<Record<string, Column<SecretInfo>>> = {
  name: (s) => s.name,
  size: (s) => `${s.size}B`,
  created: (s) => formatTime(s.createdAt),
  'used-by': (s) =>
    s.usedByCount === 0
      ? '-'
      : s.usedBy.join(',') +
        (s.usedByCount > s.usedBy.length ? `,+${s.usedByCount - s.usedBy.length}` : ''),
  key: (s) => s.keyId,
};

const HELP = `Usage: flotctl secret create [--replace] NAME FILE|-
       flotctl secret ls [--no-legend]
       flotctl secret rm [--force] NAME

Secrets are small values (at most 64 KiB) that units name with Secret=NAME and that the
agents running those units mount in them as the read-only file /run/secrets/NAME (process
units: $CREDENTIALS_DIRECTORY/NAME). They are encrypted in etcd with the cluster's secrets key
(--secrets-key-file of the schedulers and agents). No verb prints a value; Environment= is not
secret (cat, status and events show it): use Secret= for passwords and keys.

  create NAME FILE   the value is FILE's contents, or stdin's with -; --replace overwrites
  ls                 names, sizes, creation times and the units that name each secret
  rm NAME            refused while a unit names it, unless --force (those units then fail
                     at their next start)

Exit status: 0, 1 when the API refuses, 2 for a usage mistake.`;

export const secretVerb: Verb = {
  name: 'secret',
  summary: 'create, list and remove secrets, sealed in etcd, that units name with Secret=',
  help: HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      replace: { type: 'boolean' },
      force: { type: 'boolean' },
      'no-legend': { type: 'boolean' },
    });
    const [sub, ...rest] = positionals;
    if (sub === 'create') {
      const [name, file, extra] = rest;
      if (name === undefined || file === undefined || extra !== undefined) {
        throw new UsageError('secret create takes NAME and FILE (or - for stdin)');
      }
      const value = await readValue(file);
      const info = await withClient(globals, (api) =>
        api.createSecret({ name, value, replace: values.replace === true }),
      );
      if (globals.output === 'json') printJson(io, jsonOf(info));
      else io.stdout(`secret ${info.name} created (${info.size} bytes)\n`);
      return EXIT_OK;
    }
    if (sub === 'ls' || sub === 'list') {
      if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
      const res = await withClient(globals, (api) => api.listSecrets());
      if (globals.output === 'json') printJson(io, res.secrets.map(jsonOf));
      else {
        const opts = { full: true, legend: values['no-legend'] !== true };
        io.stdout(renderTable(res.secrets, ['name', 'size', 'created', 'used-by'], COLUMNS, opts));
      }
      return EXIT_OK;
    }
    if (sub === 'rm' || sub === 'remove') {
      const [name, extra] = rest;
      if (name === undefined || extra !== undefined) throw new UsageError('secret rm takes NAME');
      const res = await withClient(globals, (api) =>
        api.deleteSecret({ name, force: values.force === true }),
      );
      if (!res.deleted) {
        throw new CliError('refused', `secret ${name} does not exist (flotctl secret ls)`);
      }
      io.stdout(`secret ${name} removed\n`);
      return EXIT_OK;
    }
    throw new UsageError(
      sub === undefined
        ? 'secret needs create, ls or rm'
        : `unknown secret verb "${sub}": use create, ls or rm`,
    );
  },
};

function jsonOf(s: SecretInfo): Record<string, unknown> {
  return {
    name: s.name,
    size: s.size,
    createdUnixMs: Number(s.createdAt),
    keyId: s.keyId,
    usedBy: s.usedBy,
    usedByCount: s.usedByCount,
  };
}

/** FILE's bytes, or stdin's for `-`; at most 64 KiB are read (one more says it is too big). */
async function readValue(file: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  const add = (b: Buffer): void => {
    size += b.length;
    if (size > SECRET_MAX_BYTES) {
      throw new CliError(
        'file',
        `${file === '-' ? 'stdin' : file}: more than the ${SECRET_MAX_BYTES} bytes a secret may hold`,
      );
    }
    chunks.push(b);
  };
  if (file === '-') {
    for await (const chunk of process.stdin) add(Buffer.from(chunk as Buffer));
  } else {
    let handle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      throw new CliError(
        'file',
        `${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
    try {
      const buf = Buffer.alloc(SECRET_MAX_BYTES + 1);
      const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
      add(buf.subarray(0, bytesRead));
    } finally {
      await handle.close();
    }
  }
  return Buffer.concat(chunks);
}
