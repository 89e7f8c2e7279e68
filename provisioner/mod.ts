/**
 * The vendor side of Machine Room (`mr-saas`): the one public surface of `provisioner/`.
 *
 * - home.ts: the vendor home dir (`mr-saas.json`, 0600 seeds)
 * - operator.ts: operator-mode NATS (operator, system account, customer accounts,
 *   revocation); backend.ts: the backend account seeing every customer's events
 * - tokens.ts: provisioning tokens; nodes.ts: enrolled nodes
 * - service.ts: the enrolment service (`serve`: enroll.ts, renew.ts, proof.ts,
 *   credentials.ts, permissions.ts)
 * - audit.ts: the hash-chained audit log
 * - streams.ts, publish.ts, commands/: streams and buckets, agent publishing, the CLI
 *
 * @module
 */
export { HomeConfigSchema, readHome, readSeed, writeHome, writeSecret } from "./home.ts";
export {
  accountRevoked,
  addAccount,
  initOperator,
  listAccounts,
  operatorConfigLines,
  relinkBackend,
  repushCustomer,
  revokeAccount,
  revokeUser,
  setupBackend,
} from "./operator.ts";
export {
  BACKEND_EXPORT_SUBJECT,
  BACKEND_STREAM,
  BACKEND_STREAM_SUBJECTS,
  backendConnect,
  CUSTOMER_EXPORTS,
  UNLIMITED_JETSTREAM_ACCOUNT,
} from "./backend.ts";
export { pushAccount } from "./resolver.ts";
export { issueToken, listTokens, revokeToken, verifyToken } from "./tokens.ts";
export { findNode } from "./nodes.ts";
export { serveProvisioner } from "./service.ts";
export { EnrollRequestSchema } from "./enroll.ts";
export { RenewRequestSchema } from "./renew.ts";
export { EnrollError } from "./errors.ts";
export {
  NODE_PERMISSION_TABLE,
  nodePermissions,
  permissionTableMarkdown,
  rowSubjects,
} from "./permissions.ts";
export { serveMediators } from "./mediators.ts";
export { audit, verifyAudit } from "./audit.ts";
export { DUPLICATE_WINDOW_MS, ensureStreams, streamConfigs } from "./streams.ts";
export { listPublished, publishAgent, s3FromEnv } from "./publish.ts";
export { rolloutStatus } from "./commands/fleet.ts";
export { buildSaasCli, runSaasCli } from "./cli.ts";

export type { HomeConfig } from "./home.ts";
export type { BackendInfo } from "./backend.ts";
export type { TokenClaims, TokenRecord } from "./tokens.ts";
export type { ServeOptions } from "./service.ts";
export type { EnrollRequest } from "./enroll.ts";
export type { RenewRequest } from "./renew.ts";
export type { EnsureResult, EnsureStreamsOptions } from "./streams.ts";
export type { PublishOptions, PublishResult, S3Access } from "./publish.ts";
export type { RolloutStatus } from "./commands/fleet.ts";
export type {
  NodeJwtPermissions,
  PermissionEffect,
  PermissionKind,
  PermissionRow,
  PermissionSubjects,
} from "./permissions.ts";
export type { ServeMediatorsOptions } from "./mediators.ts";
export type { SaasGlobalOptions } from "./options.ts";
