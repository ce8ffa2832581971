/**
 * scheduler/api/: the gRPC API server. The daemon calls {@link startApiServer}; everything
 * else here is how the handlers are built.
 */
export { startApiServer, type ApiServer, type ApiServerOptions } from './server.js';
export { ApiError, toGrpcStatus, type ApiErrorCode, type GrpcStatus } from '../gate/errors.js';
export { API_SERVICES, PROTO_FILES, protoIncludeDir } from './reflection.js';
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './list-units.js';
