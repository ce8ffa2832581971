/**
 * User= resolution against a passwd/group pair: the host's, or the one inside RootDirectory=
 * (the unit's processes see that one). A name that resolves nowhere is a `bad-user` failure,
 * never a silent fallback to root.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RuntimeError } from './errors.js';

/** The account a unit's processes run as. */
export interface UnitUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups (from the group file), without the primary gid. */
  readonly groups: readonly number[];
  readonly home: string;
  readonly shell: string;
}

/** root, for commands that run without a User= switch. */
export const ROOT_USER: UnitUser = {
  name: 'root',
  uid: 0,
  gid: 0,
  groups: [],
  home: '/root',
  shell: '/bin/sh',
};

async function readOptional(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

function rows(text: string): string[][] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.split(':'));
}

/**
 * Looks `user` (a name or a numeric uid) up in `<root>/etc/passwd` and `<root>/etc/group`.
 * Throws `bad-user` when it is not there; a numeric uid without an entry is accepted (as
 * systemd does) with gid = uid.
 */
export async function resolveUser(user: string, root = '/'): Promise<UnitUser> {
  const passwdPath = join(root, 'etc/passwd');
  const passwd = rows(await readOptional(passwdPath));
  const numeric = /^\d+$/.test(user) ? Number(user) : undefined;
  const entry = passwd.find((f) =>
    numeric === undefined ? f[0] === user : Number(f[2]) === numeric,
  );
  if (entry === undefined) {
    if (numeric !== undefined && numeric < 2 ** 31) {
      return { name: user, uid: numeric, gid: numeric, groups: [], home: '/', shell: '/bin/sh' };
    }
    throw new RuntimeError('bad-user', `User=${user}: no such user in ${passwdPath}`);
  }
  const [name = user, , uidText = '', gidText = '', , home = '/', shell = '/bin/sh'] = entry;
  const uid = Number(uidText);
  const gid = Number(gidText);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new RuntimeError('bad-user', `User=${user}: malformed entry in ${passwdPath}`);
  }
  const groups = rows(await readOptional(join(root, 'etc/group')))
    .filter((f) => (f[3] ?? '').split(',').includes(name))
    .map((f) => Number(f[2]))
    .filter((g) => Number.isInteger(g) && g !== gid);
  return {
    name,
    uid,
    gid,
    groups: [...new Set(groups)],
    home: home || '/',
    shell: shell || '/bin/sh',
  };
}
