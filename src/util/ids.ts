/**
 * Identifier rules of the wire contract (DESIGN §4): site, node and agent names.
 *
 * @module
 */
import { z } from "zod";

/** `^[a-z0-9][a-z0-9_-]{0,62}$` */
export const ID_PATTERN: RegExp = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** zod schema for a site, node or agent name. */
export const idSchema = z.string().regex(ID_PATTERN, {
  message:
    "Invalid identifier (lowercase letters, digits, '_' and '-', max 63, starting alphanumeric)",
});

/** True when `s` is a valid identifier. */
export function isId(s: string): boolean {
  return ID_PATTERN.test(s);
}
