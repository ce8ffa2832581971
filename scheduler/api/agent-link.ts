/**
 * How the API reaches an agent's Logs service: plaintext, or TLS with `--agent-ca-file`
 * (presenting the scheduler's own certificate, for agents that require client certificates),
 * and what it says when it cannot. A failed handshake names the flag to fix, on whichever
 * side, since the operator reading it sees only flotctl's one line.
 */
import { Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { AGENT_AUTH_HEADER, signLogsRequest } from '../../daemon/agent-token.js';
import { channelCredentials, type ClientTls } from '../../daemon/tls.js';
import { tlsFailure } from '../../lib/tls-failure.js';

/** The channel credentials for agents, and the wording of failures to reach one. */
export class AgentLink {
  readonly credentials: ChannelCredentials;

  constructor(
    private readonly tls: ClientTls | undefined,
    private readonly token?: Buffer,
  ) {
    this.credentials = channelCredentials(tls);
  }

  /** The metadata of a request about `unit`: signed when the scheduler has a token. */
  metadata(unit: string, nowMs = Date.now()): Metadata {
    const md = new Metadata();
    if (this.token !== undefined)
      md.set(AGENT_AUTH_HEADER, signLogsRequest(this.token, unit, nowMs));
    return md;
  }

  /** Why an agent refused the scheduler's credential (UNAUTHENTICATED, PERMISSION_DENIED). */
  refused(machine: string, endpoint: string, details: string): string {
    const fix =
      this.token === undefined
        ? "give the schedulers --agent-token-file with the agents' --logs-token-file secret"
        : "the schedulers' --agent-token-file and the agents' --logs-token-file must hold the same secret";
    return `the agent of machine ${machine} at ${endpoint} refused the scheduler (${details.slice(0, 300)}): ${fix}`;
  }

  /** Why the agent of `machine` at `endpoint` cannot be reached, given gRPC's `details`. */
  unreachable(machine: string, endpoint: string, details: string): string {
    const at = `the agent of machine ${machine} at ${endpoint}`;
    const failure = tlsFailure(details);
    const why = failure === undefined ? '' : ` (${failure.reason})`;
    switch (failure?.kind) {
      case 'untrusted':
        return `${at} presented a certificate the scheduler does not trust${why}: the scheduler's --agent-ca-file must be the CA that signed the agents' certificates`;
      case 'wrong-name':
        return `${at} presented a certificate that does not name it${why}: an agent's certificate must hold its --public-ip`;
      case 'refused':
        return this.tls?.cert === undefined
          ? `${at} requires a client certificate${why}: give the scheduler --tls-cert-file and --tls-key-file signed by the agents' --tls-client-ca-file`
          : `${at} refused the scheduler's certificate${why}: it must be signed by the agents' --tls-client-ca-file and allow client authentication`;
      case 'not-tls':
        return `${at} does not serve TLS${why}: start the agents with --tls-cert-file and --tls-key-file, or the scheduler without --agent-ca-file`;
      case 'dropped':
        if (this.tls === undefined) {
          return `${at} closed a plaintext connection: if the agents serve TLS, give the scheduler --agent-ca-file`;
        }
        if (this.tls.cert !== undefined) {
          return `${at} closed the connection after the TLS handshake: it may refuse the scheduler's certificate (it must be signed by the agents' --tls-client-ca-file)`;
        }
    }
    return `${at} cannot be reached: ${details}`;
  }
}
