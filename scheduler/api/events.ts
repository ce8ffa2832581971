/**
 * Events.Watch: the cluster's changes, record by record, from a requested revision on.
 *
 * Served from the replica's mirror when it still holds every change from that revision (its
 * history keeps the last 300,000) or when the client asks for changes from now: records come
 * already decoded, and etcd replays nothing. An older revision falls back to etcd's own watch
 * over the whole prefix, as before. Either way every event carries the etcd revision of its
 * change, so a client that resumes from its last seen revision + 1 misses nothing and sees
 * nothing twice (changes of one transaction share a revision: resume after the last revision
 * seen in full). Initial metadata is sent once the stream is subscribed, so a client that has
 * seen the headers knows any later write will reach it. A compacted start revision is
 * OUT_OF_RANGE; an etcd that goes away, or a client that reads too slowly, ends the stream
 * with UNAVAILABLE (the client resumes, like every consumer, from its last revision + 1).
 *
 * A state event (unit-states/<machine>/<name>, or .../<name>/global for a Global unit's copy)
 * carries the unit's name and the reporting machine, taken from the key, so even a deletion
 * without its old value says whose report went.
 */
import { Metadata, type ServerWritableStream } from '@grpc/grpc-js';
import type { Event, EventBatch, WatchRequest } from '../../proto/flotilla/v1/events.js';
import {
  codecForKind,
  watchPrefix,
  type ClusterMirror,
  type KeyKind,
  type MirrorChange,
  type ParsedKey,
  type PrefixChange,
  type PrefixWatch,
  type RecordKind,
  type RecordTypes,
  type Store,
} from '../../store/index.js';
import { compileGlob, UnitError, type Glob } from '../../unit/index.js';
import { pastDeadline } from '../../lib/sliced.js';
import { isInvalidUnit, type DefinitionCache } from '../view/snapshot.js';
import type { HandlerContext, Visible } from '../gate/interceptors.js';
import { ApiError, logFailure, toGrpcStatus, toServiceError } from '../gate/errors.js';

/** The event kind each key kind is reported as (election keys are not reported). */
const EVENT_KINDS: Readonly<Partial<Record<KeyKind, string>>> = {
  unit: 'unit',
  placement: 'placement',
  state: 'state',
  machine: 'machine',
  'machine-metadata': 'machine-config',
  unscheduled: 'unscheduled',
  rollout: 'rollout',
  service: 'service',
  endpoint: 'endpoint',
};

/** What a watch handler needs beyond wording errors: the store, and where to register streams. */
export interface StreamContext extends HandlerContext {
  readonly store: Store;
  /** The replica's mirror: streams that start within its history are served from it. */
  readonly mirror?: ClusterMirror;
  /** Parsed unit files, to say in unit events whether the unit is Global. */
  readonly definitions?: DefinitionCache;
  /** Open streams register an ender here, so the server can end them when it closes. */
  readonly open: Set<() => void>;
}

/** Which events a client asked for. */
export interface Filter {
  readonly glob: Glob | undefined;
  /** Only these units (an auth policy's narrowing); undefined: all. */
  readonly visible?: Visible | undefined;
  readonly machine: string;
}

/** A stream of either kind, as the handlers below write to it. */
type EventStream = ServerWritableStream<WatchRequest, unknown>;

/**
 * How a stream sends events: Watch one to a message, WatchBatches as many as fit in
 * {@link BATCH_EVENTS} and {@link BATCH_BYTES}. `write` returns false when the client's buffer
 * is full.
 */
interface EventWriter {
  /** How many of `events` (from the first) the next message takes: at least one. */
  take(events: readonly Event[], from: number, to: number): number;
  write(events: Event[]): boolean;
}

/** Events one WatchBatches message carries at most. */
const BATCH_EVENTS = 1_000;
/** Unit file bytes one WatchBatches message carries at most (past its first event). */
const BATCH_BYTES = 1024 * 1024;

function singleWriter(call: EventStream): EventWriter {
  return { take: () => 1, write: (events) => call.write(events[0] as Event) };
}

function batchWriter(call: EventStream): EventWriter {
  return {
    take: (events, from, to) => {
      let bytes = 0;
      let n = 0;
      while (from + n < to && n < BATCH_EVENTS) {
        bytes += (events[from + n] as Event).unit?.file.length ?? 0;
        if (n > 0 && bytes > BATCH_BYTES) break;
        n += 1;
      }
      return Math.max(1, n);
    },
    write: (events) => call.write({ events } satisfies EventBatch),
  };
}

/** The Events.Watch handler: one event to a message. */
export function watchEvents(
  ctx: StreamContext,
): (call: ServerWritableStream<WatchRequest, Event>, visible?: Visible) => void {
  return watchWith(ctx, singleWriter);
}

/** The Events.WatchBatches handler: the same events, many to a message. */
export function watchEventBatches(
  ctx: StreamContext,
): (call: ServerWritableStream<WatchRequest, EventBatch>, visible?: Visible) => void {
  return watchWith(ctx, batchWriter);
}

function watchWith(
  ctx: StreamContext,
  writerFor: (call: EventStream) => EventWriter,
): (call: EventStream, visible?: Visible) => void {
  return (call, visible) => {
    const fail = (err: unknown): void => {
      const s = toGrpcStatus(err, ctx);
      logFailure(ctx.logger, 'Events.Watch', s, err);
      call.emit('error', toServiceError(s));
    };
    let filter: Filter;
    try {
      filter = { ...parseRequest(call.request), visible };
    } catch (err) {
      fail(err);
      return;
    }
    const writer = writerFor(call);
    if (ctx.mirror !== undefined && serveFromMirror(ctx, ctx.mirror, call, writer, filter, fail))
      return;
    void run(ctx, call, writer, filter, fail);
  };
}

/** Events a stream served from the mirror may have waiting for a slow client. */
const MAX_QUEUED_EVENTS = 500_000;

/** Mirror changes translated into events in one turn of the event loop, at most. */
const TRANSLATE_SLICE = 2_000;

/**
 * The longest stretch a stream translates, or encodes and writes, in one turn, ms: 2,000
 * changes translated and then written took over 100 ms at half a core.
 */
const STREAM_SLICE_MS = 10;

/** What a feed of the mirror's events tells its consumer. */
export interface FeedListener {
  /**
   * Events in revision order, already filtered and described: those from the asked revision
   * on, then each change as it comes. Never called before followMirror returns.
   */
  events(events: Event[]): void;
  /** The feed lost track of etcd (a re-list): the consumer ends and its client resumes. */
  lost(err: ApiError): void;
}

/** A subscription to the mirror's events. */
export interface MirrorFeed {
  close(): void;
}

/**
 * The events Events.Watch sends, from the mirror: those from `request.fromRevision` (0: from
 * now) already in its history, then each change as it comes, translated, filtered by the
 * request's glob and machine and by `visible`, unit files left out unless asked for. Changes
 * are translated {@link TRANSLATE_SLICE} per turn of the event loop: a watch resumed from
 * before a 100,000-instance scale, or the scale's own batch, held the thread 195 ms (713 ms at
 * half a core) when translated in one go.
 * Undefined when the mirror has not listed yet or no longer holds that revision (the caller
 * falls back to etcd, or tells its client to re-list). Throws INVALID_ARGUMENT for a bad
 * request. Both transports serve their streams from it (gRPC here, SSE in scheduler/http/).
 */
export function followMirror(
  ctx: StreamContext,
  mirror: ClusterMirror,
  request: WatchRequest,
  filterOrVisible: Filter | Visible | undefined,
  listener: FeedListener,
): MirrorFeed | undefined {
  const filter =
    typeof filterOrVisible === 'object'
      ? filterOrVisible
      : { ...parseRequest(request), visible: filterOrVisible };
  const requested = request.fromRevision;
  const from = requested > 0n ? requested : mirror.revision + 1n;
  if (mirror.revision === 0n) return undefined; // not listed yet: etcd answers
  const past = mirror.changesSince(from);
  if (past === undefined) return undefined;
  const toEvent = (c: MirrorChange): Event | undefined => {
    const event = fromChange(c);
    return event !== undefined && event.revision >= from && matches(event, filter)
      ? describeUnit(ctx, event, request.withFiles)
      : undefined;
  };
  // Changes not translated yet, in order: the past first, then what comes meanwhile.
  let backlog: MirrorChange[] = [...past];
  let head = 0;
  let closed = false;
  const drain = (): void => {
    if (closed) return;
    // Up to TRANSLATE_SLICE changes, fewer once the turn took STREAM_SLICE_MS.
    const over = pastDeadline(performance.now() + STREAM_SLICE_MS);
    const last = Math.min(backlog.length, head + TRANSLATE_SLICE);
    const events: Event[] = [];
    while (head < last) {
      const event = toEvent(backlog[head++] as MirrorChange);
      if (event !== undefined) events.push(event);
      if (over()) break;
    }
    if (head < backlog.length) setImmediate(drain);
    else {
      backlog = [];
      head = 0;
    }
    if (events.length > 0) listener.events(events);
  };
  const unsubscribe = mirror.on((e) => {
    if (e.resync) {
      // A re-list hides which changes happened: the client resumes and is served anew.
      listener.lost(new ApiError('unavailable', 'the watch lost track of etcd; resume it'));
      return;
    }
    if (backlog.length === 0) setImmediate(drain);
    for (const c of e.changes) backlog.push(c);
  });
  if (backlog.length > 0) setImmediate(drain);
  return {
    close: () => {
      closed = true;
      unsubscribe();
    },
  };
}

/**
 * Serves the stream from the mirror when it holds every change from the requested revision
 * on (or the client asks for changes from now): its history first, then its changes as they
 * come, translated from records already decoded, with no etcd watch at all. Returns false
 * when the request reaches further back, for etcd to replay.
 */
function serveFromMirror(
  ctx: StreamContext,
  mirror: ClusterMirror,
  call: EventStream,
  writer: EventWriter,
  filter: Filter,
  fail: (err: unknown) => void,
): boolean {
  const queue: Event[] = [];
  const feed = followMirror(ctx, mirror, call.request, filter, {
    events: (events) => {
      for (const e of events) queue.push(e);
      if (queue.length - head > MAX_QUEUED_EVENTS) {
        const last = queue[head]?.revision ?? call.request.fromRevision;
        return finish(
          new ApiError(
            'unavailable',
            `this client reads events too slowly (${MAX_QUEUED_EVENTS} waiting); resume from revision ${last}`,
          ),
        );
      }
      pump();
    },
    lost: (err) => finish(err),
  });
  if (feed === undefined) return false;
  let done = false;
  const unsubscribe = feed.close;
  const finish = (err?: unknown): void => {
    if (done) return;
    done = true;
    unsubscribe();
    ctx.open.delete(finish);
    queue.length = 0;
    head = 0;
    if (err === undefined) call.end();
    else fail(err);
  };
  ctx.open.add(finish);
  call.on('cancelled', () => finish());
  call.on('close', () => finish());
  let waiting = false;
  let head = 0; // queue[head..] is still to be written
  // Writes until the client's buffer is full, then waits for it to drain; after
  // STREAM_SLICE_MS of writing, goes on in a later turn.
  let resumed = false;
  const pump = (): void => {
    if (done || waiting) return;
    const over = pastDeadline(performance.now() + STREAM_SLICE_MS, 1);
    while (head < queue.length) {
      if (over()) {
        // The rest in a later turn: encoding thousands of events is long work too.
        if (!resumed) {
          resumed = true;
          setImmediate(() => {
            resumed = false;
            pump();
          });
        }
        break;
      }
      const n = writer.take(queue, head, queue.length);
      const ok = writer.write(n === 1 ? [queue[head] as Event] : queue.slice(head, head + n));
      head += n;
      if (!ok) {
        waiting = true;
        resumeOnDrain(call, () => {
          waiting = false;
          pump();
        });
        break;
      }
    }
    if (head === queue.length || head > 65_536) {
      queue.splice(0, head);
      head = 0;
    }
  };
  call.sendMetadata(new Metadata());
  pump();
  return true;
}

/**
 * The event of a change to the key `parsed` describes, without its record; undefined when the
 * key is not reported (election keys, keys outside the layout).
 */
function eventFor(
  parsed: ParsedKey | undefined,
  type: 'put' | 'delete',
  revision: bigint,
): Event | undefined {
  const kind = parsed === undefined ? undefined : EVENT_KINDS[parsed.kind];
  if (parsed === undefined || kind === undefined) return undefined;
  const event: Event = {
    revision,
    kind,
    type,
    name: parsed.name,
    machine: parsed.machine ?? '',
    global: false,
    serviceName: '',
    portName: '',
  };
  // An endpoint's key names its service and port (unit-endpoints/<machine>/<service>/<unit>/<port>).
  if (parsed.kind === 'endpoint') {
    event.serviceName = parsed.service ?? '';
    event.portName = parsed.port ?? '';
  } else if (parsed.kind === 'service') {
    event.serviceName = parsed.name;
  }
  return event;
}

/** One change of the mirror as an API event; undefined for keys that are not reported. */
function fromChange(c: MirrorChange): Event | undefined {
  const { change } = c;
  const event = eventFor(c.parsed, change.type, change.revision);
  if (event === undefined) return undefined;
  const record = change.type === 'put' ? change.value : change.prev;
  if (record.kind !== 'other' && record.kind !== 'election')
    attach(event, record.kind, record.value);
  return event;
}

/** Serves the stream from etcd's own watch, for revisions older than the mirror holds. */
async function run(
  ctx: StreamContext,
  call: EventStream,
  writer: EventWriter,
  filter: Filter,
  fail: (err: unknown) => void,
): Promise<void> {
  const { store } = ctx;
  let done = false;
  let watch: PrefixWatch | undefined;
  const finish = (err?: unknown): void => {
    if (done) return;
    done = true;
    ctx.open.delete(finish);
    watch?.cancel();
    if (err === undefined) call.end();
    else fail(err);
  };
  const from = call.request.fromRevision;
  let headersSent = false;
  try {
    watch = await watchPrefix(store, store.keys.prefix, from, {
      created: () => {
        if (headersSent || done) return;
        headersSent = true;
        call.sendMetadata(new Metadata());
      },
      changes: (changes) => {
        if (done) return true;
        let flowing = true;
        const events: Event[] = [];
        for (const change of changes) {
          const event = translate(ctx, change);
          if (event !== undefined && matches(event, filter))
            events.push(describeUnit(ctx, event, call.request.withFiles));
        }
        for (let i = 0; i < events.length;) {
          const n = writer.take(events, i, events.length);
          flowing = writer.write(events.slice(i, i + n)) && flowing;
          i += n;
        }
        if (!flowing) resumeOnDrain(call, () => watch?.resume());
        return flowing;
      },
      ended: (err, compacted) =>
        finish(
          compacted === undefined
            ? err
            : new ApiError(
                'out-of-range',
                `revision ${from} has been compacted: the oldest revision still available is ${compacted}`,
              ),
        ),
    });
  } catch (err) {
    finish(err);
    return;
  }
  if (done || call.cancelled) return finish(); // the client left while the watch was opened
  ctx.open.add(finish);
  call.on('cancelled', () => finish());
  call.on('close', () => finish());
}

function parseRequest(req: WatchRequest): Filter {
  if (req.fromRevision < 0n) {
    throw new ApiError('invalid-argument', `from_revision ${req.fromRevision} is negative`);
  }
  let glob: Glob | undefined;
  if (req.unitGlob !== '') {
    try {
      glob = compileGlob(req.unitGlob);
    } catch (err) {
      if (err instanceof UnitError) {
        throw new ApiError('invalid-argument', `unit glob ${req.unitGlob}: ${err.message}`);
      }
      throw err;
    }
  }
  return { glob, machine: req.machine };
}

/** One etcd change as an API event; undefined for keys outside the record layout. */
function translate(ctx: StreamContext, change: PrefixChange): Event | undefined {
  const parsed = ctx.store.keys.parse(change.key);
  const event = eventFor(parsed, change.type, change.revision);
  if (parsed === undefined || parsed.kind === 'election' || event === undefined) return undefined;
  if (change.value === undefined || change.value.length === 0) return event;
  const recordKind: RecordKind = parsed.kind;
  try {
    attach(event, recordKind, codecForKind(recordKind)?.decode(change.key, change.value));
  } catch (err) {
    ctx.logger.warn(
      { key: change.key, err },
      'watch: value does not decode; sending the event without it',
    );
  }
  return event;
}

/**
 * A unit event says whether the unit is Global, and leaves the file text out unless the client
 * asked for it: a client follows a large scale without receiving (or parsing) every file.
 */
function describeUnit(ctx: StreamContext, event: Event, withFiles: boolean): Event {
  const unit = event.unit;
  if (unit === undefined) return event;
  const def = ctx.definitions?.shared(unit);
  const global = def !== undefined && !isInvalidUnit(def) && def.fleet.global;
  return { ...event, global, unit: withFiles ? unit : { ...unit, file: '' } };
}

/** Puts the decoded record in the event field of its kind; fills `machine` where it lives. */
function attach(event: Event, kind: RecordKind, record: RecordTypes[RecordKind] | undefined): void {
  if (record === undefined) return;
  switch (kind) {
    case 'unit':
      event.unit = record as RecordTypes['unit'];
      return;
    case 'placement':
      event.placement = record as RecordTypes['placement'];
      return;
    case 'state':
      event.state = record as RecordTypes['state'];
      // The key names the reporting machine already (but a legacy states/<name> does not).
      if (event.machine === '') event.machine = event.state.machine;
      return;
    case 'machine':
      event.machineRecord = record as RecordTypes['machine'];
      event.machine = event.name;
      return;
    case 'machine-metadata':
      event.machineConfig = record as RecordTypes['machine-metadata'];
      event.machine = event.name;
      return;
    case 'unscheduled':
      event.unscheduled = record as RecordTypes['unscheduled'];
      return;
    case 'rollout':
      event.rollout = record as RecordTypes['rollout'];
      return;
    case 'service':
      event.service = record as RecordTypes['service'];
      return;
    case 'endpoint':
      event.endpoint = record as RecordTypes['endpoint'];
      return;
  }
}

/**
 * The unit glob applies to events about units (an endpoint's is the unit it is of; a
 * service's, any unit that declares it); machine and machine-config events pass it. The
 * machine filter keeps placement, state and endpoint events of that machine and its own
 * machine events; unit, unscheduled and service events belong to no machine and are left out.
 */
function matches(event: Event, filter: Filter): boolean {
  const aboutMachine = event.kind === 'machine' || event.kind === 'machine-config';
  const test = (ok: (name: string) => boolean): boolean =>
    aboutMachine ||
    (event.kind === 'service' ? (event.service?.units ?? []).some(ok) : ok(event.name));
  if (filter.glob !== undefined && !test((n) => (filter.glob as Glob).test(n))) return false;
  if (filter.visible !== undefined && !test(filter.visible)) return false;
  if (filter.machine === '') return true;
  if (aboutMachine) return event.name === filter.machine;
  return event.machine === filter.machine;
}

/**
 * Calls `resume` once the client has read what is buffered for it: on 'drain', or when the
 * buffer is seen empty (a catch-up of 100,000s of events sometimes got no 'drain' here).
 */
function resumeOnDrain(call: EventStream, resume: () => void): void {
  const go = (): void => {
    clearInterval(poll);
    call.off('drain', go);
    resume();
  };
  call.once('drain', go);
  const poll = setInterval(() => {
    if (!call.writableNeedDrain) go();
  }, DRAIN_POLL_MS);
}

/** How often a paused stream checks whether the client has read its buffer. */
const DRAIN_POLL_MS = 50;
