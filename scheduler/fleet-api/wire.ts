/**
 * fleet's API on the wire, shared by every door that serves it (the unix socket here, the
 * scheduler's HTTP listener in scheduler/http/fleet-routes.ts): where it lives, the request's
 * Content-Type headers, and how an answer is sent.
 */
import type { ServerResponse } from 'node:http';
import type { FleetAnswer } from './reads.js';

/** Where fleet's API lives on a listener (fleetctl appends `fleet/v1/` to its endpoint). */
export const FLEET_PREFIX = '/fleet/v1/';

/** Every Content-Type header as sent (fleet wants exactly one). */
export function contentTypes(rawHeaders: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] ?? '').toLowerCase() === 'content-type') out.push(rawHeaders[i + 1] ?? '');
  }
  return out;
}

/** Sends an answer: its JSON body with its length, or none (201, 204). */
export function sendAnswer(res: ServerResponse, answer: FleetAnswer): void {
  if (answer.body === undefined) {
    res.writeHead(answer.status);
    res.end();
    return;
  }
  res.writeHead(answer.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(answer.body),
  });
  res.end(answer.body);
}
