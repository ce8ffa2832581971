/**
 * The `/etc` of a container without an image: only the host files a program needs to resolve
 * names, find libraries and trust certificates, each bound read-only, plus a `passwd` and
 * `group` generated for the unit (root, nobody and its `User=`), never the host's own. The
 * rest of the host's `/etc` (shadow, ssh host keys, the agent's own credentials) is not there
 * at all. Image units have their image's `/etc` and get none of this.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServiceOptions } from '../../unit/model.js';

/** Host files and directories under /etc a container sees; missing ones are skipped. */
export const HOST_ETC_ENTRIES: readonly string[] = [
  'hosts',
  'resolv.conf',
  'nsswitch.conf',
  'host.conf',
  'gai.conf',
  'services',
  'protocols',
  'localtime',
  'timezone',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'alternatives',
  'ssl',
  'ca-certificates',
  'os-release',
];

/** Generated per unit, in `<unit dir>/etc/`. */
export const GENERATED_ETC_FILES: readonly string[] = ['passwd', 'group'];

/** One read-only bind of the container's /etc. */
export interface EtcBind {
  readonly source: string;
  /** Absolute, inside the container. */
  readonly destination: string;
}

const ALWAYS_UIDS = new Set(['0', '65534']);

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

/**
 * Writes the unit's `passwd` and `group`: root, nobody (and nogroup) and the entry of its
 * `User=` (by name or uid) with that user's groups, from the host's files. Hashes are never
 * in `passwd`; any field that is not `x` is replaced by `x` anyway.
 */
export async function writeUnitEtc(unitDir: string, service: ServiceOptions): Promise<void> {
  const dir = join(unitDir, 'etc');
  await mkdir(dir, { recursive: true });
  const user = service.user;
  const passwd = lines(await readFile('/etc/passwd', 'utf8').catch(() => ''))
    .map((l) => l.split(':'))
    .filter(
      (f) => ALWAYS_UIDS.has(f[2] ?? '') || (user !== '' && (f[0] === user || f[2] === user)),
    );
  const names = new Set(passwd.map((f) => f[0] ?? ''));
  const gids = new Set(['0', '65534', ...passwd.map((f) => f[3] ?? '')]);
  const group = lines(await readFile('/etc/group', 'utf8').catch(() => ''))
    .map((l) => l.split(':'))
    .filter((f) => gids.has(f[2] ?? '') || (f[3] ?? '').split(',').some((m) => names.has(m)))
    .map((f) => [
      f[0] ?? '',
      'x',
      f[2] ?? '',
      (f[3] ?? '')
        .split(',')
        .filter((m) => names.has(m))
        .join(','),
    ]);
  const rows = (fields: string[][]): string => fields.map((f) => `${f.join(':')}\n`).join('');
  const safePasswd = passwd.map((f) => [f[0] ?? '', 'x', ...f.slice(2)]);
  // Readable by the unit's user inside the container (tools look names up as that user).
  await writeFile(join(dir, 'passwd'), rows(safePasswd), { mode: 0o644 });
  await writeFile(join(dir, 'group'), rows(group), { mode: 0o644 });
}

/** The binds of a container's /etc: the host entries that exist, then the generated files. */
export async function etcBinds(unitDir: string): Promise<EtcBind[]> {
  const binds: EtcBind[] = [];
  for (const entry of HOST_ETC_ENTRIES) {
    const source = join('/etc', entry);
    // stat, not lstat: a dangling symlink (resolv.conf to a resolver not running) is skipped.
    if ((await stat(source).catch(() => undefined)) !== undefined) {
      binds.push({ source, destination: source });
    }
  }
  for (const file of GENERATED_ETC_FILES) {
    binds.push({ source: join(unitDir, 'etc', file), destination: join('/etc', file) });
  }
  return binds;
}

/** Where the container's `/etc/<rest>` is on the host, or undefined when it has no such file. */
export function etcHostPath(unitDir: string, path: string): string | undefined {
  if (path === '/etc') return join(unitDir, 'rootfs', 'etc');
  const rest = path.slice('/etc/'.length);
  const top = rest.split('/')[0] ?? '';
  if (HOST_ETC_ENTRIES.includes(top)) return path;
  if (GENERATED_ETC_FILES.includes(rest)) return join(unitDir, 'etc', rest);
  return undefined;
}
