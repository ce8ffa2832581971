/**
 * The API server's gRPC limits, stated rather than left to grpc-js's defaults. The handlers
 * refuse unit files over their limits (unit/limits.ts) with INVALID_ARGUMENT naming the
 * limit; a request too large even to be read is refused by grpc-js itself, with
 * RESOURCE_EXHAUSTED "Received message larger than max (N vs M)", which flotctl words for
 * people.
 *
 * @example
 *   const server = new Server(API_SERVER_OPTIONS);
 */
import type { ServerOptions } from '@grpc/grpc-js';
import { SUBMIT_MAX_BYTES } from '../../unit/index.js';

/**
 * The largest request the API reads: twice the largest submit the handlers accept, so that a
 * request well over the submit limit (a 1.7 MB submit, say) still reaches the handler and
 * gets its INVALID_ARGUMENT naming the limit, while one far over it (5 MB) is refused unread.
 * The margin also holds the framing of a full submit many times over (MAX_TXN_OPS names of
 * at most UNIT_NAME_MAX characters: 34 KiB). 2 MiB, where grpc-js would read 4 MiB: no call
 * needs more, and each call in flight may hold this much.
 */
export const API_MAX_RECEIVE_BYTES = 2 * SUBMIT_MAX_BYTES;

/** Options of the API's `new Server(...)`. */
export const API_SERVER_OPTIONS: ServerOptions = {
  'grpc.max_receive_message_length': API_MAX_RECEIVE_BYTES,
};
