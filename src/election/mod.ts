/**
 * Site leader election on KV `MR_ELECTION`, as a library and as the daemon's `election`
 * module.
 *
 * @module
 */
export { createElection, ELECTION_BUCKET, electionKey } from "./election.ts";
export { createElectionModule } from "./module.ts";
export type { Election, ElectionOptions, ElectionStatus, LeadershipChange } from "./election.ts";
export type { ElectionModuleOptions } from "./module.ts";
