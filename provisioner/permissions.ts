/**
 * What a node's NATS user may do, as one table ({@linkcode NODE_PERMISSION_TABLE}). The
 * user JWT the provisioner mints ({@linkcode nodePermissions}), the who-can-do-what table
 * in docs/provisioning.md ({@linkcode permissionTableMarkdown}) and the permission-matrix
 * test (tests/permission_matrix_test.ts, which walks every row with a real node's
 * credentials in operator mode) all come from it.
 *
 * NATS permissions match whole tokens: `MR_GOV_*` is a literal, not a prefix, and a stream
 * name is one token of every `$JS.API` subject, so a grant can name one stream or all.
 *
 * @module
 */

/** Publish or subscribe. */
export type PermissionKind = "pub" | "sub";

/**
 * - `allow`: in the JWT's allow list;
 * - `deny`: in the JWT's deny list (wins over any allow);
 * - `absent`: not granted (NATS denies what no allow names); listed so the test proves it.
 */
export type PermissionEffect = "allow" | "deny" | "absent";

/** One row: what, on which subjects, allowed or not, and why. */
export interface PermissionRow {
  /** Stable id (the matrix test reports it). */
  id: string;
  /** What the row is about, in a few words. */
  what: string;
  kind: PermissionKind;
  effect: PermissionEffect;
  /**
   * Subject patterns. `{site}` and `{node}` are the node's own; `{osite}` and `{onode}`
   * another site and node of the same customer.
   */
  subjects: readonly string[];
  why: string;
}

/** The node a table is instantiated for, and (for `absent` rows) someone else. */
export interface PermissionSubjects {
  site: string;
  node: string;
  /** @default {"other-site"} */
  otherSite?: string;
  /** @default {"other-node"} */
  otherNode?: string;
}

const kvReadApi = (b: string): string[] => [
  `$JS.API.STREAM.INFO.KV_${b}`,
  `$JS.API.CONSUMER.CREATE.KV_${b}`,
  `$JS.API.CONSUMER.CREATE.KV_${b}.>`,
  `$JS.API.CONSUMER.DELETE.KV_${b}.>`,
  `$JS.API.CONSUMER.INFO.KV_${b}.>`,
  `$JS.API.DIRECT.GET.KV_${b}`,
  `$JS.API.DIRECT.GET.KV_${b}.>`,
  `$JS.API.STREAM.MSG.GET.KV_${b}`,
  `$JS.FC.KV_${b}.>`,
];

/** A KV key's read API for one key only (NATS 2.9: filter and subject in the API subject). */
const kvKeyRead = (b: string, key: string): string[] => [
  // kv.watch({key}): nats.js names the filter in the create subject; the server checks
  // that the body's filter_subject is that subject
  `$JS.API.CONSUMER.CREATE.KV_${b}.*.$KV.${b}.${key}`,
  // kv.get(key) with direct get: last-by-subject in the API subject
  `$JS.API.DIRECT.GET.KV_${b}.$KV.${b}.${key}`,
];

/**
 * Every permission of a node's user. Rows with effect `allow`/`deny` build the JWT;
 * `absent` rows document (and the matrix test proves) what stays impossible.
 */
export const NODE_PERMISSION_TABLE: readonly PermissionRow[] = [
  // --- its own subjects
  {
    id: "own-publish",
    what: "publish its own events, facts, submissions, metrics and governor requests",
    kind: "pub",
    effect: "allow",
    subjects: ["mr.{site}.{node}.>"],
    why: "every node subject carries `<site>.<node>`: only this node can speak as itself",
  },
  {
    id: "other-publish",
    what: "publish as another node (same or other site)",
    kind: "pub",
    effect: "absent",
    subjects: ["mr.{site}.{onode}.ev.lifecycle", "mr.{osite}.{onode}.facts", "mr.{osite}.{node}.>"],
    why: "impersonation",
  },
  {
    id: "own-commands",
    what: "receive its own commands (and answer them on the requester's inbox)",
    kind: "sub",
    effect: "allow",
    subjects: ["mr.{site}.{node}.cmd.>"],
    why: "commands are request/reply; replies go out under `resp` (one reply per request)",
  },
  {
    id: "own-inbox",
    what: "receive replies on its own inbox",
    kind: "sub",
    effect: "allow",
    subjects: ["_INBOX.{site}.{node}.>"],
    why: "the daemon connects with inbox prefix `_INBOX.<site>.<node>`",
  },
  {
    id: "other-subscribe",
    what: "receive another node's commands, inbox or traffic",
    kind: "sub",
    effect: "absent",
    subjects: [
      "mr.{site}.{onode}.cmd.>",
      "mr.{osite}.{onode}.cmd.restart",
      "_INBOX.{site}.{onode}.>",
      "_INBOX.>",
      "mr.*.*.ev.>",
      "mr.>",
    ],
    why: "another node's commands, replies and events are not its business",
  },
  {
    id: "js-info",
    what: "ask JetStream for the account info",
    kind: "pub",
    effect: "allow",
    subjects: ["$JS.API.INFO"],
    why: "nats.js's jetstreamManager() needs it",
  },
  // --- desired state
  {
    id: "desired-read-own",
    what: "read and watch the desired state of its own site and node",
    kind: "pub",
    effect: "allow",
    subjects: [
      "$JS.API.STREAM.INFO.KV_MR_DESIRED",
      "$JS.API.CONSUMER.INFO.KV_MR_DESIRED.>",
      "$JS.API.CONSUMER.DELETE.KV_MR_DESIRED.>",
      "$JS.FC.KV_MR_DESIRED.>",
      ...kvKeyRead("MR_DESIRED", "site.{site}"),
      ...kvKeyRead("MR_DESIRED", "node.{site}.{node}"),
    ],
    why: "DESIGN §4 keys `site.<site>` and `node.<site>.<node>`",
  },
  {
    id: "desired-read-other",
    what: "read another site's or node's desired state",
    kind: "pub",
    effect: "deny",
    subjects: [
      "$JS.API.CONSUMER.CREATE.KV_MR_DESIRED",
      "$JS.API.DIRECT.GET.KV_MR_DESIRED",
      "$JS.API.STREAM.MSG.GET.KV_MR_DESIRED",
      "$JS.API.CONSUMER.DURABLE.CREATE.KV_MR_DESIRED.>",
    ],
    why: "the body-only forms of these calls can name any key; only the per-key forms are allowed",
  },
  {
    id: "desired-read-other-keys",
    what: "watch or get another site's or node's desired-state key",
    kind: "pub",
    effect: "absent",
    subjects: [
      ...kvKeyRead("MR_DESIRED", "site.{osite}"),
      ...kvKeyRead("MR_DESIRED", "node.{site}.{onode}"),
      "$JS.API.CONSUMER.CREATE.KV_MR_DESIRED.*.$KV.MR_DESIRED.>",
    ],
    why: "a spec is the vendor's per-site/per-node business",
  },
  {
    id: "desired-write",
    what: "write, delete or purge desired state",
    kind: "pub",
    effect: "deny",
    subjects: ["$KV.MR_DESIRED.>"],
    why: "only the vendor signs and writes specs",
  },
  // --- election
  {
    id: "election-read",
    what: "read and watch the election bucket",
    kind: "pub",
    effect: "allow",
    subjects: kvReadApi("MR_ELECTION"),
    why: "followers watch their site's leader key (leader names are not secret within a customer)",
  },
  {
    id: "election-write-own",
    what: "campaign, renew and resign for its own site",
    kind: "pub",
    effect: "allow",
    subjects: ["$KV.MR_ELECTION.site.{site}"],
    why: "KV create/update/delete of `site.<site>` are publishes on this one subject",
  },
  {
    id: "election-write-other",
    what: "write another site's election key",
    kind: "pub",
    effect: "absent",
    subjects: ["$KV.MR_ELECTION.site.{osite}", "$KV.MR_ELECTION.>"],
    why: "it would make or break another site's leader",
  },
  // --- shared KV
  {
    id: "shared-read",
    what: "read the shared KV bucket (agents' kv_read grants)",
    kind: "pub",
    effect: "allow",
    subjects: kvReadApi("MR_SHARED"),
    why: "customer-wide settings for agents",
  },
  {
    id: "shared-write",
    what: "write the shared KV bucket",
    kind: "pub",
    effect: "absent",
    subjects: ["$KV.MR_SHARED.>"],
    why: "written by the vendor",
  },
  // --- rollout outcomes
  {
    id: "rollout-write-own",
    what: "record its own rollout outcomes",
    kind: "pub",
    effect: "allow",
    subjects: ["$KV.MR_ROLLOUT.{site}.{node}.>"],
    why: "KV `MR_ROLLOUT` key `<site>.<node>.<agent>`",
  },
  {
    id: "rollout-read",
    what: "read the rollout bucket",
    kind: "pub",
    effect: "allow",
    subjects: kvReadApi("MR_ROLLOUT"),
    why: "a staged rollout looks at how the fleet fared (same customer)",
  },
  {
    id: "rollout-write-other",
    what: "record another node's rollout outcome",
    kind: "pub",
    effect: "absent",
    subjects: ["$KV.MR_ROLLOUT.{site}.{onode}.agent", "$KV.MR_ROLLOUT.{osite}.{node}.agent"],
    why: "forged outcomes would steer a rollout",
  },
  // --- governors
  {
    id: "governor-own-slot",
    what: "take and renew its own slot of any governor",
    kind: "pub",
    effect: "allow",
    subjects: ["mrgov.*.{site}.{node}"],
    why: "a slot is the message on `mrgov.<name>.<site>.<node>` (one per node and governor); " +
      "release goes to the mediator on `mr.<site>.<node>.gov.release`",
  },
  {
    id: "governor-other-slot",
    what: "take, overwrite or release another node's slot",
    kind: "pub",
    effect: "absent",
    subjects: [
      "mrgov.*.{site}.{onode}",
      "mrgov.*.{osite}.{node}",
      "mr.{site}.{onode}.gov.release",
      "$JS.API.DIRECT.GET.MR_GOV_rollout",
    ],
    why: "holder-scoped slots: only the mediator deletes a slot, and only its requester's",
  },
  // --- streams and the account
  {
    id: "stream-admin",
    what: "create, update, delete, purge, snapshot or restore a stream, delete a message",
    kind: "pub",
    effect: "deny",
    subjects: [
      "$JS.API.STREAM.CREATE.>",
      "$JS.API.STREAM.UPDATE.>",
      "$JS.API.STREAM.DELETE.>",
      "$JS.API.STREAM.PURGE.>",
      "$JS.API.STREAM.MSG.DELETE.>",
      "$JS.API.STREAM.SNAPSHOT.>",
      "$JS.API.STREAM.RESTORE.>",
    ],
    why: "streams are the vendor's (mr-saas init, governor add)",
  },
  {
    id: "stream-read",
    what: "read the event, facts, submission, metrics or governor streams",
    kind: "pub",
    effect: "absent",
    subjects: [
      "$JS.API.CONSUMER.CREATE.MR_EVENTS",
      "$JS.API.CONSUMER.CREATE.MR_EVENTS.>",
      "$JS.API.STREAM.MSG.GET.MR_NODES",
      "$JS.API.DIRECT.GET.MR_SUBMISSION",
      "$JS.API.STREAM.NAMES",
      "$JS.API.STREAM.LIST",
      "$JS.API.STREAM.INFO.MR_EVENTS",
    ],
    why: "other nodes' data; the vendor's backend reads these",
  },
  {
    id: "system",
    what: "reach the system account or another customer",
    kind: "pub",
    effect: "absent",
    subjects: ["$SYS.REQ.SERVER.PING", "$SYS.REQ.ACCOUNT.PING.CONNZ"],
    why: "accounts are the customer wall; a node's user has no imports",
  },
];

function fill(subject: string, s: PermissionSubjects): string {
  return subject.replaceAll("{site}", s.site).replaceAll("{node}", s.node)
    .replaceAll("{osite}", s.otherSite ?? "other-site")
    .replaceAll("{onode}", s.otherNode ?? "other-node");
}

/** A row's subjects for one node. */
export function rowSubjects(row: PermissionRow, s: PermissionSubjects): string[] {
  return row.subjects.map((x) => fill(x, s));
}

/** The permissions block of a node user JWT (`nats.pub`, `nats.sub`, `nats.resp`). */
export type NodeJwtPermissions = {
  pub: { allow: string[]; deny: string[] };
  sub: { allow: string[]; deny: string[] };
  resp: { max: number; ttl: number };
};

/** The publish/subscribe permissions of a node's user, derived from the table. */
export function nodePermissions(site: string, node: string): NodeJwtPermissions {
  const out: NodeJwtPermissions = {
    pub: { allow: [], deny: [] },
    sub: { allow: [], deny: [] },
    resp: { max: 1, ttl: 0 },
  };
  for (const row of NODE_PERMISSION_TABLE) {
    if (row.effect === "absent") continue;
    const list = out[row.kind][row.effect];
    for (const subj of rowSubjects(row, { site, node })) if (!list.includes(subj)) list.push(subj);
  }
  return out;
}

/** The table as Markdown (docs/provisioning.md and the README hold this text). */
export function permissionTableMarkdown(): string {
  const mark = { allow: "yes", deny: "no (denied)", absent: "no (not granted)" } as const;
  const lines = [
    "| a node may … | pub/sub | allowed | subjects | why |",
    "|---|---|---|---|---|",
  ];
  for (const r of NODE_PERMISSION_TABLE) {
    const subjects = r.subjects.map((x) =>
      "`" +
      x.replaceAll("{site}", "<site>").replaceAll("{node}", "<node>")
        .replaceAll("{osite}", "<other-site>").replaceAll("{onode}", "<other-node>") +
      "`"
    ).join(", ");
    lines.push(
      `| ${r.what} (\`${r.id}\`) | ${r.kind} | ${mark[r.effect]} | ${subjects} | ${r.why} |`,
    );
  }
  return lines.join("\n");
}
