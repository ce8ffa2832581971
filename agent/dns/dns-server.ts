/**
 * The agent's DNS server (`--dns-listen HOST:PORT`), over UDP and TCP, with dns-packet for the
 * wire format. It answers the names in agent/dns/names.ts from the serving endpoints
 * (TTL `ttlSeconds`, default 3 s, so clients follow changes within seconds) and refuses
 * every other name, unless a recursor is given (`--dns-recursor HOST:PORT`): then the query
 * is sent there over UDP as it came and its answer returned (at most `maxForwarded` at once,
 * each given up after 2 s with SERVFAIL).
 *
 * Bounded: a UDP answer fits the client's size (512 bytes, or its EDNS size up to 1,232) and
 * is truncated (TC set, the client retries over TCP) when it does not; a TCP answer holds
 * at most 500 records; a TCP connection may carry 100 queries and is closed after 10 s idle.
 * A packet that does not decode is answered FORMERR when its header can be read, else
 * dropped; nothing a client sends can stop the server.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import { answersFor, parseName, select } from './names.js';
import type { ServiceResolver } from './resolver.js';

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const UDP_DEFAULT_SIZE = 512;
const UDP_MAX_SIZE = 1_232;
const TCP_MAX_RECORDS = 500;
const TCP_MAX_QUERIES = 100;
const TCP_IDLE_MS = 10_000;
const FORWARD_TIMEOUT_MS = 2_000;

/** Options of a {@link DnsServer}. */
export interface DnsServerOptions {
  /** Where to listen, UDP and TCP: `HOST:PORT` (port 0 picks one, the same for both). */
  readonly listen: string;
  readonly resolver: ServiceResolver;
  /** Where other names go (`HOST:PORT`); absent: they are REFUSED. */
  readonly recursor?: string;
  /** TTL of every answer, seconds. Default 3. */
  readonly ttlSeconds?: number;
  /** Queries forwarded to the recursor at once at most; more get SERVFAIL. Default 256. */
  readonly maxForwarded?: number;
}

/** Counters, for metrics and tests. */
export interface DnsStats {
  queries: number;
  refused: number;
  forwarded: number;
  failed: number;
}

/** A running DNS server. */

/** How often listen() picks another port when asked for port 0 and TCP finds it taken. */
const LISTEN_ATTEMPTS = 5;
export class DnsServer {
  readonly stats: DnsStats = { queries: 0, refused: 0, forwarded: 0, failed: 0 };
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly tcpSockets = new Set<Socket>();
  private forwarding = 0;
  private readonly ttl: number;
  private readonly maxForwarded: number;
  private boundPort = 0;
  private host = '';

  constructor(private readonly opts: DnsServerOptions) {
    this.ttl = opts.ttlSeconds ?? 3;
    this.maxForwarded = opts.maxForwarded ?? 256;
  }

  /** Binds UDP, then TCP on the same port; rejects (having closed both) when either fails. */
  async listen(): Promise<void> {
    const { port } = splitHostPort(this.opts.listen);
    // Port 0 picks a free UDP port, and TCP must then take the same number, which a TCP
    // socket of another process may hold: pick again, a few times, before giving up.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.bindBoth();
        return;
      } catch (err) {
        const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (port !== 0 || !inUse || attempt >= LISTEN_ATTEMPTS) throw err;
      }
    }
  }

  private async bindBoth(): Promise<void> {
    const { host, port } = splitHostPort(this.opts.listen);
    this.host = host;
    const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    this.udp = udp;
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address: host, port, exclusive: true }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', () => undefined);
    udp.on('message', (msg, rinfo) => {
      void this.answer(msg, 'udp').then((reply) => {
        if (reply !== undefined) udp.send(reply, rinfo.port, rinfo.address);
      });
    });
    this.boundPort = udp.address().port;
    const tcp = createServer((socket) => this.serveTcp(socket));
    this.tcp = tcp;
    tcp.maxConnections = 1_000;
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host, port: this.boundPort, exclusive: true }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await this.close();
      throw err;
    }
    tcp.on('error', () => undefined);
  }

  /** `host:port` bound (the port chosen when 0 was asked for). */
  get address(): string {
    return this.host.includes(':')
      ? `[${this.host}]:${this.boundPort}`
      : `${this.host}:${this.boundPort}`;
  }

  async close(): Promise<void> {
    for (const s of this.tcpSockets) s.destroy();
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    if (udp !== undefined) await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcp?.listening) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }

  /** The answer to one query message, or undefined to drop it. Never throws. */
  async answer(msg: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return msg.length >= 12 ? header(msg.readUInt16BE(0), RCODE.FORMERR) : undefined;
    }
    if (query.type === 'response') return undefined;
    this.stats.queries++;
    const question = query.questions?.[0];
    if (question === undefined || (query.questions?.length ?? 0) > 1) {
      return reply(query, RCODE.FORMERR, [], [], transport);
    }
    try {
      const resolver = this.opts.resolver;
      const parsed = parseName(question.name, (lower) => resolver.serviceNamed(lower));
      if (parsed.kind === 'outside') return await this.outside(msg, query, transport);
      if (parsed.kind === 'unknown') return reply(query, RCODE.NXDOMAIN, [], [], transport);
      if (parsed.kind === 'addr') {
        const type = String(question.type);
        const answers: Answer[] =
          type === 'A' || type === 'ANY'
            ? [{ type: 'A', name: question.name, ttl: this.ttl, data: parsed.address }]
            : [];
        return reply(query, RCODE.NOERROR, answers, [], transport);
      }
      const mainPort = resolver.service(parsed.service)?.publishPortName ?? '';
      const chosen = select(await resolver.serving(parsed.service), parsed, mainPort);
      const { answers, additionals } = answersFor(question.type, question.name, chosen, this.ttl);
      return reply(query, RCODE.NOERROR, answers, additionals, transport);
    } catch {
      this.stats.failed++;
      return reply(query, RCODE.SERVFAIL, [], [], transport);
    }
  }

  private async outside(
    msg: Buffer,
    query: DecodedPacket,
    transport: 'udp' | 'tcp',
  ): Promise<Buffer> {
    const recursor = this.opts.recursor;
    if (recursor === undefined) {
      this.stats.refused++;
      return reply(query, RCODE.REFUSED, [], [], transport);
    }
    if (this.forwarding >= this.maxForwarded)
      return reply(query, RCODE.SERVFAIL, [], [], transport);
    this.forwarding++;
    this.stats.forwarded++;
    try {
      return (await forward(msg, recursor)) ?? reply(query, RCODE.SERVFAIL, [], [], transport);
    } finally {
      this.forwarding--;
    }
  }

  /** TCP: two-byte length, then the message; several queries per connection, in order. */
  private serveTcp(socket: Socket): void {
    this.tcpSockets.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.tcpSockets.delete(socket));
    let buffered = Buffer.alloc(0);
    let served = 0;
    let chain = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length > 2 + 65_535) return void socket.destroy();
      while (buffered.length >= 2) {
        const size = buffered.readUInt16BE(0);
        if (buffered.length < 2 + size) break;
        const msg = buffered.subarray(2, 2 + size);
        buffered = buffered.subarray(2 + size);
        if (++served > TCP_MAX_QUERIES) return void socket.end();
        chain = chain.then(async () => {
          const answer = await this.answer(msg, 'tcp');
          if (answer === undefined || socket.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(answer.length);
          socket.write(Buffer.concat([len, answer]));
        });
      }
    });
  }
}

/** The answer message; over UDP it is cut to the client's size with TC set. */
function reply(
  query: DecodedPacket,
  rcode: number,
  answers: Answer[],
  additionals: Answer[],
  transport: 'udp' | 'tcp',
): Buffer {
  const opt = query.additionals?.find((a) => a.type === 'OPT');
  const limit =
    transport === 'tcp'
      ? 65_535
      : Math.min(
          UDP_MAX_SIZE,
          Math.max(UDP_DEFAULT_SIZE, opt?.type === 'OPT' ? opt.udpPayloadSize : 0),
        );
  let kept = answers.slice(0, TCP_MAX_RECORDS);
  let extra = additionals.slice(0, TCP_MAX_RECORDS);
  let truncated = kept.length < answers.length;
  const build = (): Packet => ({
    type: 'response',
    id: query.id ?? 0,
    flags:
      dnsPacket.AUTHORITATIVE_ANSWER |
      (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) |
      (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) |
      rcode,
    questions: query.questions ?? [],
    answers: kept,
    additionals: extra,
  });
  let packet = build();
  // Additionals go first (the client can ask for the targets), then answers from the end.
  while (dnsPacket.encodingLength(packet) > limit && (extra.length > 0 || kept.length > 0)) {
    if (extra.length > 0) extra = [];
    else {
      kept = kept.slice(0, Math.max(0, Math.floor(kept.length / 2)));
      truncated = true;
    }
    packet = build();
  }
  return dnsPacket.encode(packet);
}

/** A bare header: id and rcode, for a message that did not decode. */
function header(id: number, rcode: number): Buffer {
  const buf = Buffer.alloc(12);
  buf.writeUInt16BE(id, 0);
  buf.writeUInt16BE(0x8000 | rcode, 2);
  return buf;
}

/** Sends `msg` to the recursor over UDP; its answer, or undefined after the timeout. */
function forward(msg: Buffer, recursor: string): Promise<Buffer | undefined> {
  const { host, port } = splitHostPort(recursor);
  return new Promise((resolve) => {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const done = (answer: Buffer | undefined): void => {
      clearTimeout(timer);
      sock.close();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), FORWARD_TIMEOUT_MS);
    sock.on('error', () => done(undefined));
    sock.on('message', (answer) => done(answer));
    sock.send(msg, port, host);
  });
}

/** `HOST:PORT` or `[V6]:PORT` -> its parts; throws on anything else. */
export function splitHostPort(text: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(text);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || (m[1] ?? '') === '' || !(port >= 0 && port <= 65_535)) {
    throw new Error(`${text}: expected HOST:PORT (e.g. 127.0.0.1:5353)`);
  }
  return { host: m[1] ?? '', port };
}
