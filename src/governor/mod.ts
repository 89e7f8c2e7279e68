/**
 * Governors: fleet-wide semaphores on JetStream (`MR_GOV_<name>`), as a client API and as
 * the daemon's `governor` module.
 *
 * @module
 */
export {
  createGovernorClient,
  DEFAULT_LEASE_MS,
  GovernorError,
  governorStream,
  governorSubject,
  validateGovernorName,
} from "./governor.ts";
export { createGovernorModule } from "./module.ts";
export type { AcquireOptions, GovernorClient, GovernorHolder, GovernorLease } from "./governor.ts";
export type { GovernorModuleOptions } from "./module.ts";
