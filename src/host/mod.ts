/** Host services contract between sandbox and daemon. @module */
export type {
  AgentEventInput,
  GovernorInput,
  GovernorResult,
  HostServices,
  MetricInput,
  SubmitInput,
  TransitionInput,
} from "./services.ts";
