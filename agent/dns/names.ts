/**
 * The names the agent's DNS answers, and their answers, as pure functions (Consul's and
 * Swarm's conventions under one zone, `flotilla.`):
 *
 * ```
 * NAME.service.flotilla              A: the serving endpoints' addresses; SRV: port and target
 * TAG.NAME.service.flotilla          the same, only endpoints tagged TAG (blue/green, canary)
 * _PORT._tcp.NAME.service.flotilla   SRV of one Port= name (RFC 2782's form)
 * HEX.addr.flotilla                  A: the address an SRV target names (7f000001 = 127.0.0.1)
 * ```
 *
 * Service names may hold dots (a unit `my.app@.service` declares `my.app`), so the service is
 * the longest run of labels before `service.flotilla` that names one.
 */
import type { Answer } from 'dns-packet';
import type { Endpoint } from '../../proto/flotilla/v1/records.js';

export const ZONE = 'flotilla';

/** What a query name asks for. */
export type ParsedName =
  | {
      readonly kind: 'service';
      readonly service: string;
      readonly tag?: string;
      readonly portName?: string;
    }
  | { readonly kind: 'addr'; readonly address: string }
  /** In the zone but names nothing (NXDOMAIN). */
  | { readonly kind: 'unknown' }
  /** Outside the zone (REFUSED, or forwarded to the recursor). */
  | { readonly kind: 'outside' };

/**
 * Parses `name` (any case, with or without the final dot). `serviceNamed` maps a lower-cased
 * candidate to the service's real name, or undefined when no such service exists.
 */
export function parseName(
  name: string,
  serviceNamed: (lower: string) => string | undefined,
): ParsedName {
  const labels = name.toLowerCase().replace(/\.$/, '').split('.');
  if (labels.at(-1) !== ZONE) return { kind: 'outside' };
  if (labels.length === 3 && labels[1] === 'addr') {
    const address = addressOfHex(labels[0] ?? '');
    return address === undefined ? { kind: 'unknown' } : { kind: 'addr', address };
  }
  if (labels.length < 3 || labels.at(-2) !== 'service') return { kind: 'unknown' };
  const inner = labels.slice(0, -2);
  for (let k = inner.length; k >= 1; k--) {
    const service = serviceNamed(inner.slice(inner.length - k).join('.'));
    if (service === undefined) continue;
    const rest = inner.slice(0, inner.length - k);
    if (rest.length === 0) return { kind: 'service', service };
    if (rest.length === 1 && !(rest[0] ?? '').startsWith('_')) {
      return { kind: 'service', service, tag: rest[0] ?? '' };
    }
    if (rest.length === 2 && rest[1] === '_tcp' && (rest[0] ?? '').startsWith('_')) {
      return { kind: 'service', service, portName: (rest[0] ?? '').slice(1) };
    }
    return { kind: 'unknown' };
  }
  return { kind: 'unknown' };
}

/** The endpoints a parsed service name selects (tags and port names compare in any case). */
export function select(
  endpoints: readonly Endpoint[],
  q: { readonly tag?: string; readonly portName?: string },
  mainPort: string,
): Endpoint[] {
  const port = q.portName ?? mainPort;
  return endpoints.filter(
    (e) =>
      (port === '' || e.portName.toLowerCase() === port.toLowerCase()) &&
      (q.tag === undefined || e.tags.some((t) => t.toLowerCase() === q.tag)),
  );
}

/** A records (one per distinct IPv4 address) and SRV records for `name`. */
export function answersFor(
  type: string,
  name: string,
  endpoints: readonly Endpoint[],
  ttl: number,
): { answers: Answer[]; additionals: Answer[] } {
  const answers: Answer[] = [];
  const additionals: Answer[] = [];
  const addresses = [...new Set(endpoints.map((e) => e.address))].filter(isIpv4);
  if (type === 'A' || type === 'ANY') {
    for (const address of addresses) answers.push({ type: 'A', name, ttl, data: address });
  }
  if (type === 'SRV' || type === 'ANY') {
    for (const e of endpoints) {
      if (!isIpv4(e.address)) continue;
      const target = `${hexOfAddress(e.address)}.addr.${ZONE}`;
      answers.push({
        type: 'SRV',
        name,
        ttl,
        data: { priority: 1, weight: 1, port: e.port, target },
      });
    }
    for (const address of addresses) {
      additionals.push({
        type: 'A',
        name: `${hexOfAddress(address)}.addr.${ZONE}`,
        ttl,
        data: address,
      });
    }
  }
  return { answers, additionals };
}

function isIpv4(address: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(address);
}

/** `10.0.0.1` -> `0a000001`. */
export function hexOfAddress(address: string): string {
  return address
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join('');
}

function addressOfHex(hex: string): string | undefined {
  if (!/^[0-9a-f]{8}$/.test(hex)) return undefined;
  const octets = [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return octets.join('.');
}
