/**
 * Errors of the provisioner's HTTP service.
 *
 * @module
 */

/** A refused enrolment or renewal: HTTP status, a stable code and a message. */
export class EnrollError extends Error {
  override name = "EnrollError";
  /**
   * @param status HTTP status of the refusal
   * @param code stable machine-readable code (`bad_request`, `revoked`, …)
   */
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
