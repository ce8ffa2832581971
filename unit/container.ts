/**
 * The `[Container]` section, with podman Quadlet's key names: the unit runs an OCI image.
 * `Image=` is required; `Exec=`, `Entrypoint=`, `Environment=`, `WorkingDir=`, `User=`,
 * `Volume=` and `Pull=` override what the image says. Unknown keys are errors, like in
 * `[X-Fleet]`: a misspelt or unsupported Quadlet key silently ignored would run something
 * other than what the file asks.
 */
import { MAX_PROBLEMS, UnitError } from './errors.js';
import { excerpt } from './excerpt.js';
import { parseEnvironmentAssignments } from './environment.js';
import { parseImageReference } from './image-ref.js';
import type { ContainerOptions, PullPolicy, UnitEntry, UnitName, VolumeSpec } from './model.js';
import { expandSpecifiers } from './specifiers.js';
import { HEALTH_KEYS } from './health.js';
import { didYouMean } from './values.js';
import { splitWords } from './words.js';
import { addSecret } from './secrets.js';

export const PULL_POLICIES: readonly PullPolicy[] = ['missing', 'always', 'never', 'newer'];

/** Every `[Container]` key Flotilla runs. */
export const CONTAINER_KEYS: readonly string[] = [
  'Image',
  'Exec',
  'Entrypoint',
  'Environment',
  'WorkingDir',
  'User',
  'Volume',
  'Pull',
  'Secret',
];

/** Quadlet keys Flotilla knows but does not run: refused with that said, not "unknown". */
const UNSUPPORTED = [
  'AddCapability',
  'AddDevice',
  'Annotation',
  'AutoUpdate',
  'ContainerName',
  'DropCapability',
  'EnvironmentFile',
  'EnvironmentHost',
  'ExposeHostPort',
  'GlobalArgs',
  'Group',
  'HostName',
  'IP',
  'Label',
  'LogDriver',
  'Mount',
  'Network',
  'NoNewPrivileges',
  'PodmanArgs',
  'PublishPort',
  'ReadOnly',
  'Tmpfs',
  'UserNS',
];

const KNOWN = [...CONTAINER_KEYS, ...HEALTH_KEYS];
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

interface State {
  image: string;
  imageLine: number;
  exec?: string[];
  entrypoint?: string[];
  environment: (readonly [string, string])[];
  workingDir: string;
  user: string;
  volumes: VolumeSpec[];
  pull: PullPolicy;
  secrets: string[];
}

function invalid(key: string, value: string, expected: string, line: number): UnitError {
  return new UnitError('invalid-value', `${key}=${excerpt(value)}: ${expected}`, { line });
}

function absolute(key: string, value: string, path: string, line: number): string {
  if (!path.startsWith('/')) throw invalid(key, value, `"${excerpt(path)}" is not absolute`, line);
  if (path.split('/').includes('..')) throw invalid(key, value, 'may not contain ".."', line);
  return path;
}

/** `Volume=SOURCE:DEST[:ro|rw]`; SOURCE an absolute host path or a volume name. */
export function parseVolume(value: string, line: number): VolumeSpec {
  const parts = value.split(':');
  const [source = '', destination = '', mode = 'rw'] = parts;
  if (parts.length < 2 || parts.length > 3 || source === '' || destination === '') {
    throw invalid('Volume', value, 'expected SOURCE:DEST or SOURCE:DEST:ro', line);
  }
  const opts = mode.split(',');
  if (!opts.every((o) => ['ro', 'rw', 'z', 'Z'].includes(o))) {
    throw invalid('Volume', value, `option "${excerpt(mode)}" unsupported; use ro or rw`, line);
  }
  const named = !source.startsWith('/');
  if (named && !VOLUME_NAME.test(source)) {
    throw invalid('Volume', value, 'the source must be an absolute path or a volume name', line);
  }
  if (!named) absolute('Volume', value, source, line);
  absolute('Volume', value, destination, line);
  return { source, named, destination, readOnly: opts.includes('ro') };
}

/** `Entrypoint=`: a JSON array of strings (podman's form for several words) or one program. */
function parseEntrypoint(value: string, line: number): string[] {
  if (!value.startsWith('[')) return [value];
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length === 0 ||
    !parsed.every((w) => typeof w === 'string')
  ) {
    throw invalid('Entrypoint', value, 'expected a program or a JSON array of strings', line);
  }
  return parsed as string[];
}

type Handler = (s: State, value: string, line: number) => void;

const HANDLERS: Readonly<Record<string, Handler>> = {
  Image(s, v, line) {
    const ref = parseImageReference(v);
    if (typeof ref === 'string') throw invalid('Image', v, ref, line);
    s.image = v;
    s.imageLine = line;
  },
  Exec(s, v, line) {
    s.exec = splitWords(v, { escapes: 'c', key: 'Exec', line }).map((w) => w.value);
  },
  Entrypoint(s, v, line) {
    s.entrypoint = parseEntrypoint(v, line);
  },
  Environment(s, v, line) {
    for (const pair of parseEnvironmentAssignments(v, line, 'Environment'))
      s.environment.push(pair);
  },
  WorkingDir(s, v, line) {
    s.workingDir = absolute('WorkingDir', v, v, line);
  },
  User(s, v, line) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$/.test(v)) {
      throw invalid('User', v, 'expected a user name or id, optionally :group', line);
    }
    s.user = v;
  },
  Volume(s, v, line) {
    s.volumes.push(parseVolume(v, line));
  },
  Secret(s, v, line) {
    addSecret(s.secrets, 'Secret', v, line);
  },
  Pull(s, v, line) {
    const p = PULL_POLICIES.find((x) => x === v);
    if (p === undefined) throw invalid('Pull', v, `use ${PULL_POLICIES.join(', ')}`, line);
    s.pull = p;
  },
};

/** Keys whose values get `%n %N %p %i` expanded. Image= never: it is pinned once per file. */
const EXPANDED = new Set(['Exec', 'Entrypoint', 'Environment', 'WorkingDir', 'Volume']);

function reset(s: State, key: string): void {
  if (key === 'Exec') delete s.exec;
  else if (key === 'Entrypoint') delete s.entrypoint;
  else if (key === 'Environment') s.environment = [];
  else if (key === 'WorkingDir') s.workingDir = '';
  else if (key === 'User') s.user = '';
  else if (key === 'Volume') s.volumes = [];
  else if (key === 'Pull') s.pull = 'missing';
  else if (key === 'Secret') s.secrets = [];
  else if (key === 'Image') s.image = '';
}

function checkKey(e: UnitEntry): UnitError | undefined {
  if (Object.hasOwn(HANDLERS, e.key)) return undefined;
  // Quadlet's Health* keys: parsed with [Service]'s by the health-check parser (health.ts).
  if (HEALTH_KEYS.includes(e.key)) return undefined;
  if (UNSUPPORTED.includes(e.key)) {
    return new UnitError(
      'unknown-key',
      `[Container] ${e.key}= is a Quadlet key Flotilla does not support; remove it`,
      { line: e.line },
    );
  }
  return new UnitError(
    'unknown-key',
    `unknown [Container] key "${excerpt(e.key)}"${didYouMean(e.key, KNOWN)}`,
    { line: e.line },
  );
}

/**
 * Interpret `[Container]` entries (all sections of that name, in order) for the unit `name`.
 * Problems go to `errors`; `line` is the first `[Container]` header's, for a missing Image=.
 */
export function parseContainerSection(
  entries: readonly UnitEntry[],
  name: UnitName,
  line: number,
  errors: UnitError[],
): ContainerOptions {
  const s: State = {
    image: '',
    imageLine: 0,
    environment: [],
    workingDir: '',
    user: '',
    volumes: [],
    pull: 'missing',
    secrets: [],
  };
  for (const e of entries) {
    if (errors.length >= MAX_PROBLEMS) break;
    const keyProblem = checkKey(e);
    if (keyProblem !== undefined) {
      errors.push(keyProblem);
      continue;
    }
    const handler = Object.hasOwn(HANDLERS, e.key) ? HANDLERS[e.key] : undefined;
    if (handler === undefined) continue;
    const value = EXPANDED.has(e.key) ? expandSpecifiers(e.value, name) : e.value;
    try {
      if (value === '') reset(s, e.key);
      else handler(s, value, e.line);
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      errors.push(err);
    }
  }
  // An Image= whose value was refused has its own error already.
  const lastImage = entries.findLast((e) => e.key === 'Image');
  if (s.image === '' && (lastImage === undefined || lastImage.value === '')) {
    errors.push(
      new UnitError(
        'missing-value',
        '[Container] has no Image=: name the image to run, e.g. Image=registry:5000/app:1',
        { line },
      ),
    );
  }
  const { exec, entrypoint, secrets, ...rest } = s;
  return {
    ...rest,
    ...(secrets.length > 0 ? { secrets } : {}),
    ...(exec !== undefined ? { exec } : {}),
    ...(entrypoint !== undefined ? { entrypoint } : {}),
  };
}
