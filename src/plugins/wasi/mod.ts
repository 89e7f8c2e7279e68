/**
 * WASI preview 1 for agents (`wasi_snapshot_preview1`), deny by default.
 *
 * @module
 */
export {
  createWasi,
  DEFAULT_WASI_LIMITS,
  type Wasi,
  WASI_FUNCTIONS,
  WASI_MODULE,
  WasiDeadline,
  WasiExit,
  type WasiLimits,
  type WasiOptions,
} from "./preview1.ts";
export { type Preopen, preopensFromGrants } from "./paths.ts";
export { Errno } from "./errno.ts";
export { type FsOps, LocalFs } from "./fs_ops.ts";
export { remoteFs, serveFs, WASI_FS_FN } from "./fs_remote.ts";
