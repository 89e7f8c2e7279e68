/**
 * Enrolled nodes, looked up by name in the token records.
 *
 * @module
 */
import { readTokens } from "./tokens.ts";

/**
 * The customer and every user key ever enrolled as `<site>.<node>` (from the token
 * records): a node that re-enrolled has more than one, and revoking the name revokes all.
 * Two customers may use the same site and node names; then `customer` must say which.
 */
export async function findNode(
  home: string,
  site: string,
  node: string,
  customer?: string,
): Promise<{ customer: string; user: string; users: string[] } | null> {
  const tokens = await readTokens(home);
  const byCustomer = new Map<string, string[]>();
  for (const t of Object.values(tokens)) {
    if (t.site !== site || !t.nodes[node]) continue;
    if (customer && t.customer !== customer) continue;
    const list = byCustomer.get(t.customer) ?? [];
    if (!list.includes(t.nodes[node]!)) list.push(t.nodes[node]!);
    byCustomer.set(t.customer, list);
  }
  if (byCustomer.size === 0) return null;
  if (byCustomer.size > 1) {
    throw new Error(
      `${site}.${node} is enrolled in more than one customer (${
        [...byCustomer.keys()].join(", ")
      }): say which with --customer`,
    );
  }
  const [c, users] = [...byCustomer][0]!;
  return { customer: c, user: users[users.length - 1]!, users };
}
