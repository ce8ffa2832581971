/**
 * What the listener's route handlers are built from: one set per listener, made by
 * server.ts and handed to every route file (which therefore never import the server).
 */
import type { Logger } from 'pino';
import type { OpsEndpoints } from '../../daemon/metrics-server.js';
import type { ApiCore } from '../api/core.js';
import type { SessionStore } from './sessions.js';

/** What route handlers are built from (one per listener). */
export interface HttpDeps {
  readonly core: ApiCore;
  readonly sessions: SessionStore;
  readonly logger: Logger;
  readonly ops: OpsEndpoints;
  /** Streams open now, each with its ender (close() ends them). */
  readonly streams: Set<() => void>;
  readonly maxStreams: number;
  readonly heartbeatMs: number;
  readonly streamBufferBytes: number;
}
