/**
 * The unit-file language: parse, validate, names, templates, specifiers, globs, hash.
 * Import from here (`../unit/index.js`); the files behind it may move.
 */
export type * from './model.js';
export {
  UnitError,
  isUnitError,
  MAX_PROBLEMS,
  type UnitErrorCode,
  type UnitErrorOptions,
} from './errors.js';
export { parseUnit, validateUnitFile } from './parse.js';
export { parseSyntax, parseSyntaxCollecting, sectionEntries, type SyntaxResult } from './syntax.js';
export {
  parseUnitName,
  isValidUnitName,
  instanceName,
  UNIT_TYPES,
  UNIT_NAME_MAX,
} from './names.js';
export { expandSpecifiers, placesAlike } from './specifiers.js';
export { compileGlob, isGlob, type Glob } from './glob.js';
export {
  FLEET_KEYS,
  FLEET_ALIASES,
  FLEET_LIMITS,
  MAX_INSTANCES_LIMIT,
  parseFleetSection,
} from './fleet.js';
export { HEALTH_DEFAULTS, HEALTH_KEYS, HEALTH_SECTIONS, parseHealthEntries } from './health.js';
export { START_LIMIT_DEFAULTS, START_LIMIT_KEYS, parseStartLimit } from './start-limit.js';
export { SERVICE_DEFAULTS, parseServiceSection, signalName } from './service.js';
export { parseMemoryBytes, parseCpuQuotaMillicores, parseTasksMax } from './resources.js';
export { parseExecLine, expandExecArgv, isEnvName } from './exec.js';
export { parseEnvironmentAssignments, parseEnvironmentFile } from './environment.js';
export { hashSyntax, hashUnitText } from './hash.js';
export { parseBoolean, parseTimeSpanMs } from './values.js';
export { excerpt, formatBytes, EXCERPT_CHARS } from './excerpt.js';
export {
  UNIT_FILE_MAX_BYTES,
  SUBMIT_MAX_BYTES,
  byteLength,
  checkUnitFileSize,
  fileTooLargeMessage,
  submitTooLargeMessage,
} from './limits.js';
export {
  DEFAULT_DRAIN_MS,
  SERVICE_KEYS,
  SERVICE_LIMITS,
  parseServiceKeys,
  portEnvName,
} from './service-keys.js';
export { SECRET_NAME, MAX_UNIT_SECRETS, unitSecrets } from './secrets.js';
export { CONTAINER_KEYS, PULL_POLICIES, parseContainerSection, parseVolume } from './container.js';
export {
  IMAGE_REF_MAX,
  formatImageReference,
  isDigest,
  parseImageReference,
  shortImageName,
  transportReference,
  type ImageReference,
} from './image-ref.js';
