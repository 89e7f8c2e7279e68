/**
 * Enrolled nodes, looked up by name in `MR_PROV_NODES` (records.ts).
 *
 * @module
 */
import { isId } from "../src/util/ids.ts";
import { type NodeRecord, type RecordsOption, withRecords } from "./records.ts";

/**
 * The customer and every user key ever enrolled as `<site>.<node>`: a node that
 * re-enrolled has more than one, and revoking the name revokes all. Two customers may use
 * the same site and node names; then `customer` must say which.
 */
export async function findNode(
  home: string,
  site: string,
  node: string,
  customer?: string,
  o: RecordsOption = {},
): Promise<{ customer: string; user: string; users: string[]; revoked: boolean } | null> {
  if (!isId(site) || !isId(node)) throw new TypeError(`invalid node name "${site}.${node}"`);
  if (customer !== undefined && !isId(customer)) {
    throw new TypeError(`invalid customer "${customer}"`);
  }
  return await withRecords(home, o, async (r) => {
    const found: NodeRecord[] = [];
    for (const key of await r.keys("nodes", `${customer ?? "*"}.${site}.${node}`)) {
      const n = await r.get<NodeRecord>("nodes", key);
      if (n) found.push(n);
    }
    if (found.length === 0) return null;
    if (found.length > 1) {
      throw new Error(
        `${site}.${node} is enrolled in more than one customer (${
          found.map((n) => n.customer).join(", ")
        }): say which with --customer`,
      );
    }
    const n = found[0]!;
    const users = [...new Set(n.keys.map((k) => k.user))];
    return { customer: n.customer, user: n.current, users, revoked: n.revoked };
  });
}
