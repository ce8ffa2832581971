/**
 * The agent's optional config file, in one of two forms:
 *
 * ```
 * { "machine-id": "m1", "metadata": { "region": "us" }, "cpu": 4, "keep-units-on-exit": true }
 * ```
 * or
 * ```
 * # comments and blank lines are ignored
 * machine-id = m1
 * metadata = region=us,disk=ssd
 * ```
 *
 * Keys are the flag names. Values become strings, read exactly as the flag would be
 * (a JSON `metadata` object becomes `k=v,...`, an array becomes a comma-separated list).
 */
import { UsageError } from '../cli/daemon-options.js';

/** Reads and parses `path`; every problem is a UsageError naming the file (and line). */
export function readConfigFile(
  path: string,
  readFile: (path: string) => string,
): Record<string, string> {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`--config=${path}: cannot read it (${why})`);
  }
  return parseConfigText(path, text);
}

/** Parses the text of a config file (JSON when it starts with `{`, else key=value lines). */
export function parseConfigText(path: string, text: string): Record<string, string> {
  return text.trimStart().startsWith('{') ? parseJson(path, text) : parseLines(path, text);
}

function parseJson(path: string, text: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`${path}: not valid JSON (${why})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`${path}: expected a JSON object`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    out[key] = jsonValue(path, key, value);
  }
  return out;
}

function jsonValue(path: string, key: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.join(',');
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.every(([, v]) => typeof v === 'string')) {
      return entries.map(([k, v]) => `${k}=${String(v)}`).join(',');
    }
  }
  throw new UsageError(`${path}: "${key}" must be a string, number, boolean, list or map`);
}

function parseLines(path: string, text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    const key = eq < 0 ? '' : line.slice(0, eq).trim();
    if (key === '') throw new UsageError(`${path}:${i + 1}: expected key=value`);
    out[key] = unquote(line.slice(eq + 1).trim());
  }
  return out;
}

/** `"a b"` and `'a b'` lose their quotes; anything else is kept as written. */
function unquote(value: string): string {
  if (value.length >= 2) {
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q)) return value.slice(1, -1);
  }
  return value;
}
