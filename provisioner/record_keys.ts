/**
 * KV keys of the provisioning records (records.ts).
 *
 * @module
 */

/** The KV key of a token id (jti is base64: `+` is not a KV key character). */
export function tokenKey(jti: string): string {
  return jti.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The KV key of a node name. */
export function nodeKey(customer: string, site: string, node: string): string {
  return `${customer}.${site}.${node}`;
}
