/**
 * Governors: fleet-wide, holder-scoped semaphores on JetStream (`MR_GOV_<name>`), as a
 * client API, the vendor-side mediator and the daemon's `governor` module.
 *
 * @module
 */
export { createGovernorClient, listHolders } from "./governor.ts";
export {
  DEFAULT_LEASE_MS,
  GovernorError,
  governorStream,
  governorStreamConfig,
  governorSubject,
  MEDIATOR_SUBJECTS,
  mediatorSubject,
  slotSubject,
  validateGovernorName,
} from "./wire.ts";
export { startGovernorMediator } from "./mediator.ts";
export { createGovernorModule } from "./module.ts";
export type {
  AcquireOptions,
  GovernorClient,
  GovernorClientOptions,
  GovernorHolder,
  GovernorInfo,
  GovernorLease,
  ReleaseResult,
} from "./governor.ts";
export type { GovernorHolderId, MediatorOp } from "./wire.ts";
export type { GovernorMediator, GovernorMediatorOptions } from "./mediator.ts";
export type { GovernorModuleOptions } from "./module.ts";
