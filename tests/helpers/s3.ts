/**
 * Test helper: a real S3-protocol server (`npm:s3rver`) on a random port with one bucket.
 * s3rver accepts the credentials `S3RVER` / `S3RVER` and verifies SigV4 signatures.
 *
 * @module
 */
import S3rver from "s3rver";

/** A running S3-protocol server. */
export interface S3Server extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  dir: string;
  /** The node config `s3` block for this server. */
  config: { endpoint: string; region: string; access_key_id: string; secret_access_key: string };
  close(): Promise<void>;
}

/** Starts s3rver with bucket `bucket` (default "agents"). */
export async function startS3(bucket = "agents"): Promise<S3Server> {
  const dir = await Deno.makeTempDir({ prefix: "mr-s3-" });
  const server = new S3rver({
    port: 0,
    address: "127.0.0.1",
    directory: dir,
    silent: true,
    configureBuckets: [{ name: bucket }],
  });
  const addr = await server.run() as { port: number };
  const endpoint = `http://127.0.0.1:${addr.port}`;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return {
    endpoint,
    bucket,
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    region: "us-east-1",
    dir,
    config: { endpoint, region: "us-east-1", access_key_id: "S3RVER", secret_access_key: "S3RVER" },
    close,
    [Symbol.asyncDispose]: close,
  };
}
