/**
 * Who schedules, and the mass-loss pause, for every API replica: the leader publishes its
 * rescheduling pause in its election key (see leader/pause.ts), so any replica reads it there.
 * ResumeRescheduling writes control/resume-rescheduling naming the pause to end; the leader
 * ends it on its next pass, deletes the request, and publishes that the pause is over, which
 * is what this call waits for.
 */
import type {
  ReschedulingPause,
  ResumeReschedulingResponse,
  SchedulerStatus,
} from '../../proto/flotilla/v1/machines.js';
import { codecs, type Store } from '../../store/index.js';
import { readLeader } from '../leader/leadership.js';
import { ApiError } from '../gate/errors.js';

/** How long ResumeRescheduling waits for the leader to confirm. */
const CONFIRM_MS = 5_000;
const POLL_MS = 100;

/**
 * The leader and its pause, from its election key; an empty leader when nobody leads.
 * `replicas` is how many replicas advertise themselves (scheduler/replica.ts): with none
 * leading and some running, an election is under way.
 */
export async function schedulerStatus(store: Store, replicas = 0): Promise<SchedulerStatus> {
  const leader = await readLeader(store);
  if (leader === undefined) return { leader: '', leaderApi: '', replicas };
  const pause = pauseOf(leader.status);
  return {
    leader: leader.name,
    leaderApi: leader.info['api'] ?? '',
    replicas,
    ...(pause === undefined ? {} : { pause }),
  };
}

/** ResumeRescheduling; see machines.proto and this module's comment. */
export async function resumeRescheduling(store: Store): Promise<ResumeReschedulingResponse> {
  const before = await schedulerStatus(store);
  if (before.leader === '') {
    throw new ApiError(
      'unavailable',
      'no scheduler leads, so nothing is rescheduled at all: start one (flotilla scheduler)',
    );
  }
  const pause = before.pause;
  if (pause === undefined) {
    throw new ApiError('failed-precondition', 'rescheduling is not paused: nothing to resume');
  }
  await store.putRecord(codecs.control, store.keys.resumeRescheduling(), pause);
  for (const deadline = Date.now() + CONFIRM_MS; Date.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const now = await schedulerStatus(store);
    if (now.pause?.sinceUnixMs !== pause.sinceUnixMs) return { pause };
  }
  throw new ApiError(
    'unavailable',
    `asked leader ${before.leader} to resume rescheduling, and it has not confirmed within ${CONFIRM_MS / 1000} s; it acts on the request once it can (flotctl list-machines shows whether the pause is over)`,
  );
}

/** The pause in a leader's published status (`{rescheduling: PauseState | null}`). */
function pauseOf(status: unknown): ReschedulingPause | undefined {
  if (typeof status !== 'object' || status === null || !('rescheduling' in status)) {
    return undefined;
  }
  const p = status.rescheduling;
  if (typeof p !== 'object' || p === null) return undefined;
  const { since, lost, total, resumesAt, reason } = p as Record<string, unknown>;
  if (typeof since !== 'number' || !Array.isArray(lost)) return undefined;
  return {
    lost: lost.filter((id): id is string => typeof id === 'string'),
    total: typeof total === 'number' ? total : 0,
    sinceUnixMs: BigInt(since),
    resumesAtUnixMs: typeof resumesAt === 'number' ? BigInt(resumesAt) : 0n,
    reason: typeof reason === 'string' ? reason : '',
  };
}
