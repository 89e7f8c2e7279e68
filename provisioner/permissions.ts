/**
 * What a node's NATS user may do: the publish/subscribe permissions put into the user JWT
 * the provisioner mints for it.
 *
 * @module
 */

/** The publish/subscribe permissions of a node's user (only its own subjects). */
export function nodePermissions(site: string, node: string) {
  const kvRead = (b: string) => [
    `$JS.API.STREAM.INFO.KV_${b}`,
    `$JS.API.CONSUMER.CREATE.KV_${b}`,
    `$JS.API.CONSUMER.CREATE.KV_${b}.>`,
    `$JS.API.CONSUMER.DELETE.KV_${b}.>`,
    `$JS.API.CONSUMER.INFO.KV_${b}.>`,
    `$JS.API.DIRECT.GET.KV_${b}.>`,
    `$JS.API.STREAM.MSG.GET.KV_${b}`,
    `$JS.FC.KV_${b}.>`,
  ];
  return {
    pub: {
      allow: [
        `mr.${site}.${node}.>`,
        "$JS.API.INFO",
        ...kvRead("MR_DESIRED"),
        ...kvRead("MR_ELECTION"),
        ...kvRead("MR_SHARED"),
        `$KV.MR_ELECTION.site.${site}`,
        "mr.gov.>",
        "$JS.API.STREAM.CREATE.MR_GOV_*",
        "$JS.API.STREAM.UPDATE.MR_GOV_*",
        "$JS.API.STREAM.INFO.MR_GOV_*",
        "$JS.API.STREAM.MSG.DELETE.MR_GOV_*",
        "$JS.API.DIRECT.GET.MR_GOV_*",
        "$JS.API.DIRECT.GET.MR_GOV_*.>",
      ],
      deny: ["$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$KV.MR_DESIRED.>"],
    },
    sub: { allow: [`_INBOX.${site}.${node}.>`, `mr.${site}.${node}.cmd.>`] },
    resp: { max: 1, ttl: 0 },
  };
}
