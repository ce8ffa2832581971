/**
 * store/: Flotilla's etcd layer. Open one {@link Store} per process with {@link openStore};
 * build keys with `store.keys`; read and write typed records with {@link codecs}; mirror a
 * prefix with {@link WatchCache}, or the whole cluster with {@link ClusterMirror}; keep a
 * machine alive with {@link Presence} (many leases at once: {@link LeasePool}); write as
 * leader with {@link fencedTxn}, and all-or-nothing with {@link atomicTxn}; write records that
 * pass from writer to writer with {@link writeOwned}. Every failure is a {@link StoreError}
 * with a stable `code`.
 */
export { AimdWindow, type AimdOptions, type AimdState } from './aimd.js';
export { atomicTxn, ConflictError, type AtomicOptions } from './atomic.js';
export {
  Batch,
  MAX_TXN_OPS,
  chunkOps,
  type BatchOp,
  type BatchPutOptions,
  type OpCondition,
} from './batch.js';
export {
  WatchCache,
  type CacheChange,
  type CacheEntry,
  type CacheEvent,
  type WatchCacheOptions,
} from './cache.js';
export {
  big,
  toKeyValue,
  LIST_PAGE_SIZE,
  MAX_RESPONSE_BYTES,
  openStore,
  resolveStoreOptions,
  Store,
  type EtcdClient,
  type KeyValue,
  type Listing,
  type ResolvedStoreOptions,
  type StoreOperation,
  type StoreOptions,
  type StoreRequest,
  type StoreAuth,
  type Versioned,
  type WatchStream,
} from './client.js';
export type { WatchEvent, WatchRequest, WatchResponse } from './watch-codec.js';
export { etcdCredentials, type StoreTls } from './tls.js';
export {
  enableEtcdAuth,
  ensureEtcdUser,
  machineGrants,
  parseEtcdUser,
  schedulerGrants,
  type EtcdGrant,
  type EtcdUser,
} from './etcd-auth.js';
export {
  isRetryable,
  isStoreError,
  StoreError,
  toStoreError,
  type StoreErrorCode,
  type StoreErrorDetails,
} from './errors.js';
export {
  fenceCompare,
  FencedError,
  fencedTxn,
  type FencedTxnOptions,
  readFence,
  type BatchResult,
  type Fence,
} from './fenced.js';
export {
  DEFAULT_PREFIX,
  KIND_DIRS,
  Keys,
  LEGACY_DIRS,
  normalizePrefix,
  prefixRangeEnd,
  type KeyKind,
  type ParsedKey,
} from './keys.js';
export { deleteLegacyRecords, leaseOfKey } from './legacy-records.js';
export {
  LeaseKeeper,
  type KeepOptions,
  type KeptEvent,
  type LeaseRenewal,
} from './lease-keeper.js';
export { LeasePool, type LeasePoolEvent, type LeasePoolOptions } from './lease-pool.js';
export { Listeners, Waker, type Unsubscribe } from './listeners.js';
export { changedRecords, writeOwned, type OwnedOp, type OwnedResult } from './owned.js';
export {
  ClusterMirror,
  templateOf,
  type ClusterMirrorOptions,
  type MirrorChange,
  type MirrorEvent,
  type MirrorRecord,
} from './mirror.js';
export { countedIn, type CountedUnit } from './counted-units.js';
export {
  addNumbers,
  addRanges,
  instanceOf,
  MAX_COUNT_RANGES,
  MAX_COUNTED_NUMBER,
  numbersOf,
  removeNumbers,
  subtractRanges,
  toRanges,
} from './instance-counts.js';
export { queueUnitWrite, type CountView } from './materialise.js';
export { compareNames, SortedMap } from './sorted-map.js';
export {
  watchPrefix,
  type PrefixChange,
  type PrefixWatch,
  type PrefixWatchHandlers,
} from './prefix-watch.js';
export {
  Presence,
  type PresenceCloseOptions,
  type PresenceEvent,
  type PresenceOptions,
} from './presence.js';
export {
  codecForKind,
  codecs,
  stringCodec,
  type RecordCodec,
  type RecordKind,
  type RecordTypes,
} from './records.js';
