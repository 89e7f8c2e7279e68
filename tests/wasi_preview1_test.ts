/**
 * WASI preview 1 under plain WebAssembly: every function of tests/fixtures/wat/wasi_all.wat
 * called with chosen arguments: allowed, denied (ENOTCAPABLE), errno and limits, no traps.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { createWasi, WasiDeadline, WasiExit, type WasiOptions } from "../src/plugins/wasi/mod.ts";
import { Errno } from "../src/plugins/wasi/errno.ts";
import { preopensFromGrants } from "../src/plugins/wasi/paths.ts";
import { LocalFs } from "../src/plugins/wasi/fs_ops.ts";
import { remoteFs, serveFs } from "../src/plugins/wasi/fs_remote.ts";
import { compileWat } from "./helpers/wat.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
// deno-lint-ignore no-explicit-any
type Fn = (...a: any[]) => number;

interface Guest {
  w: Record<string, Fn>;
  mem: () => DataView;
  u8: () => Uint8Array;
  str: (at: number, s: string) => number;
  out: string[];
  err: string[];
  denied: string[];
  wasi: ReturnType<typeof createWasi>;
}

async function guest(opts: Partial<WasiOptions> = {}): Promise<Guest> {
  const out: string[] = [];
  const err: string[] = [];
  const denied: string[] = [];
  const ref: { memory?: WebAssembly.Memory } = {};
  const wasi = createWasi({
    memory: () => ref.memory,
    args: ["my-agent"],
    env: { LEVEL: "3", NAME: "x y" },
    preopens: [],
    stdout: (l) => out.push(l),
    stderr: (l) => err.push(l),
    deadline: () => Date.now() + 10_000,
    onDeny: (fn, d) => denied.push(`${fn} ${d["path"]}`),
    ...opts,
  });
  const mod = await WebAssembly.compile(await compileWat("wasi_all") as Uint8Array<ArrayBuffer>);
  const inst = await WebAssembly.instantiate(mod, { wasi_snapshot_preview1: wasi.imports });
  ref.memory = inst.exports["memory"] as WebAssembly.Memory;
  const memory = ref.memory;
  const w: Record<string, Fn> = {};
  for (const [k, v] of Object.entries(inst.exports)) {
    if (k.startsWith("w_")) w[k.slice(2)] = v as Fn;
  }
  return {
    w,
    out,
    err,
    denied,
    wasi,
    mem: () => new DataView(memory!.buffer),
    u8: () => new Uint8Array(memory!.buffer),
    str: (at, s) => {
      const b = enc.encode(s);
      new Uint8Array(memory!.buffer).set(b, at);
      return b.length;
    },
  };
}

/** Writes one iovec at 1000 pointing at `data` placed at 2000. */
function iov(g: Guest, data: string | number): void {
  const len = typeof data === "string" ? g.str(2000, data) : data;
  g.mem().setUint32(1000, 2000, true);
  g.mem().setUint32(1004, len, true);
}

const OOB = 2 * 65536 - 2; // a pointer whose 8-byte write crosses the memory's end

Deno.test("wasi - args give the agent name, environ only config.env", async () => {
  const g = await guest();
  assertEquals(g.w.args_sizes_get!(100, 104), 0);
  assertEquals(g.mem().getUint32(100, true), 1);
  assertEquals(g.mem().getUint32(104, true), 9);
  assertEquals(g.w.args_get!(200, 300), 0);
  assertEquals(g.mem().getUint32(200, true), 300);
  assertEquals(dec.decode(g.u8().subarray(300, 308)), "my-agent");
  assertEquals(g.w.environ_sizes_get!(100, 104), 0);
  assertEquals(g.mem().getUint32(100, true), 2);
  assertEquals(g.w.environ_get!(200, 300), 0);
  const size = g.mem().getUint32(104, true);
  assertEquals(dec.decode(g.u8().subarray(300, 300 + size)), "LEVEL=3\0NAME=x y\0");
  assert(!dec.decode(g.u8().subarray(300, 300 + size)).includes("PATH="));
  assertEquals(g.w.args_get!(OOB, 300), Errno.FAULT);
  assertEquals(g.w.environ_sizes_get!(OOB, 0), Errno.FAULT);
});

Deno.test("wasi - clocks, random, sched_yield; bad ids and pointers are errnos", async () => {
  const g = await guest();
  assertEquals(g.w.clock_time_get!(0, 1000n, 100), 0);
  const ms = Number(g.mem().getBigUint64(100, true) / 1_000_000n);
  assert(Math.abs(ms - Date.now()) < 5_000, `realtime ${ms}`);
  assertEquals(g.w.clock_time_get!(1, 1000n, 100), 0);
  const a = g.mem().getBigUint64(100, true);
  assertEquals(g.w.clock_time_get!(1, 1000n, 100), 0);
  assert(g.mem().getBigUint64(100, true) >= a, "monotonic");
  assertEquals(g.w.clock_res_get!(0, 100), 0);
  assertEquals(g.mem().getBigUint64(100, true), 1000n);
  assertEquals(g.w.clock_time_get!(9, 0n, 100), Errno.INVAL);
  assertEquals(g.w.clock_res_get!(9, 100), Errno.INVAL);
  assertEquals(g.w.clock_time_get!(0, 0n, OOB), Errno.FAULT);
  g.u8().fill(0, 500, 564);
  assertEquals(g.w.random_get!(500, 64), 0);
  assert(g.u8().subarray(500, 564).some((b) => b !== 0));
  assertEquals(g.w.random_get!(OOB, 64), Errno.FAULT);
  assertEquals(g.w.random_get!(0, 2 * 65536), 0); // the whole memory is fine
  assertEquals(g.w.sched_yield!(), 0);
});

Deno.test("wasi - sockets, proc_raise and links are refused without trapping", async () => {
  const g = await guest();
  assertEquals(g.w.sock_accept!(3, 0, 100), Errno.NOSYS);
  assertEquals(g.w.sock_recv!(3, 0, 0, 0, 0, 0), Errno.NOSYS);
  assertEquals(g.w.sock_send!(3, 0, 0, 0, 0), Errno.NOSYS);
  assertEquals(g.w.sock_shutdown!(3, 0), Errno.NOSYS);
  assertEquals(g.w.proc_raise!(9), Errno.NOSYS);
  assertEquals(g.w.path_symlink!(0, 0, 3, 0, 0), Errno.NOTCAPABLE);
  assertEquals(g.w.path_link!(3, 0, 0, 0, 3, 0, 0), Errno.NOTCAPABLE);
});

Deno.test("wasi - stdout/stderr become lines; stdin is empty; other fds are EBADF", async () => {
  const g = await guest();
  iov(g, "hello\nwor");
  assertEquals(g.w.fd_write!(1, 1000, 1, 100), 0);
  assertEquals(g.mem().getUint32(100, true), 9);
  assertEquals(g.out, ["hello"]);
  iov(g, "ld\r\n");
  g.w.fd_write!(1, 1000, 1, 100);
  assertEquals(g.out, ["hello", "world"]);
  iov(g, "oops");
  g.w.fd_write!(2, 1000, 1, 100);
  assertEquals(g.err, []);
  g.wasi.flush();
  assertEquals(g.err, ["oops"]);
  iov(g, "x");
  assertEquals(g.w.fd_write!(0, 1000, 1, 100), Errno.BADF);
  assertEquals(g.w.fd_write!(77, 1000, 1, 100), Errno.BADF);
  assertEquals(g.w.fd_read!(0, 1000, 1, 100), 0);
  assertEquals(g.mem().getUint32(100, true), 0);
  assertEquals(g.w.fd_read!(1, 1000, 1, 100), Errno.BADF);
  // an iovec pointing outside memory
  g.mem().setUint32(1000, OOB, true);
  g.mem().setUint32(1004, 100, true);
  assertEquals(g.w.fd_write!(1, 1000, 1, 100), Errno.FAULT);
  assertEquals(g.w.fd_write!(1, 1000, 5000, 100), Errno.FAULT); // iovec count
  assertEquals(g.w.fd_fdstat_get!(1, 100), 0);
  assertEquals(g.u8()[100], 2); // character device
  assertEquals(g.w.fd_close!(1), Errno.NOTSUP);
  assertEquals(g.w.fd_seek!(1, 0n, 0, 100), Errno.SPIPE);
});

Deno.test("wasi - log lines are split at the line cap and rate-limited", async () => {
  let now = 0n;
  const g = await guest({
    clock: { realtimeNs: () => now, monotonicNs: () => now },
    limits: { lineBurst: 5, linesPerSecond: 10, maxLineBytes: 8 },
  });
  iov(g, "0123456789abcdef\n");
  g.w.fd_write!(1, 1000, 1, 100);
  assertEquals(g.out, ["01234567", "89abcdef"]);
  iov(g, "l\n".repeat(20));
  g.w.fd_write!(1, 1000, 1, 100);
  assertEquals(g.out.length, 5); // burst spent: the rest dropped
  now += 1_000_000_000n; // a second later: 10 tokens
  iov(g, "after\n");
  g.w.fd_write!(1, 1000, 1, 100);
  assertEquals(g.out.at(-1), "after");
  assertEquals(g.err, ["[17 lines of stdout/stderr dropped by the rate limit]"]);
});

Deno.test("wasi - proc_exit ends the call with its code; poll_oneoff sleeps within the deadline", async () => {
  const g = await guest({ deadline: () => Date.now() + 200 });
  const e = assertThrows(() => g.w.proc_exit!(3), WasiExit);
  assertEquals((e as WasiExit).code, 3);
  // one relative clock subscription of 10 ms
  const sub = (at: number, ns: bigint, abs = false) => {
    g.u8().fill(0, at, at + 48);
    g.mem().setBigUint64(at, 42n, true);
    g.mem().setUint8(at + 8, 0);
    g.mem().setUint32(at + 16, 1, true);
    g.mem().setBigUint64(at + 24, ns, true);
    g.mem().setUint16(at + 40, abs ? 1 : 0, true);
  };
  sub(3000, 10_000_000n);
  const t0 = performance.now();
  assertEquals(g.w.poll_oneoff!(3000, 4000, 1, 100), 0);
  assert(performance.now() - t0 >= 5, "slept");
  assertEquals(g.mem().getUint32(100, true), 1);
  assertEquals(g.mem().getBigUint64(4000, true), 42n);
  assertEquals(g.mem().getUint16(4008, true), 0);
  // an fd subscription is ready at once
  g.u8().fill(0, 3000, 3048);
  g.mem().setUint8(3008, 2);
  g.mem().setUint32(3016, 1, true);
  assertEquals(g.w.poll_oneoff!(3000, 4000, 1, 100), 0);
  assertEquals(g.mem().getUint8(4010), 2);
  assertEquals(g.w.poll_oneoff!(3000, 4000, 0, 100), Errno.INVAL);
  assertEquals(g.w.poll_oneoff!(OOB, 4000, 1, 100), Errno.FAULT);
  // a sleep past the deadline ends the call
  sub(3000, 60_000_000_000n);
  assertThrows(() => g.w.poll_oneoff!(3000, 4000, 1, 100), WasiDeadline);
});

async function tree(): Promise<string> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "mr-wasi-" }));
  await Deno.mkdir(`${root}/ro/sub`, { recursive: true });
  await Deno.mkdir(`${root}/rw`);
  await Deno.mkdir(`${root}/secret`);
  await Deno.writeTextFile(`${root}/ro/a.txt`, "alpha");
  await Deno.writeTextFile(`${root}/ro/sub/b.txt`, "beta");
  await Deno.writeTextFile(`${root}/ro/big.txt`, "x".repeat(2048));
  await Deno.writeTextFile(`${root}/secret/key`, "s3cret");
  await Deno.symlink(`${root}/secret/key`, `${root}/ro/escape`);
  await Deno.symlink(`${root}/ro/a.txt`, `${root}/ro/alias`);
  return root;
}

for (const mode of ["local", "remote"] as const) {
  Deno.test(`wasi - files (${mode}): preopens from the grant, reads, writes, denials and caps`, async () => {
    const root = await tree();
    try {
      const preopens = preopensFromGrants({
        read: [`${root}/ro/**`],
        write: [`${root}/rw/**`],
      });
      assertEquals(preopens.map((p) => [p.guestPath, p.mode]), [
        [`${root}/ro`, "ro"],
        [`${root}/rw`, "rw"],
        ["/", "rw"],
      ]);
      const limits = { maxFileBytes: 1024, maxOpenFds: 8 };
      const denied: string[] = [];
      const local = new LocalFs(preopens, limits, (fn, d) => denied.push(`${fn} ${d["path"]}`));
      // remote: every file operation crosses the wasi_fs frame codec, as between the sandbox
      // host process and the daemon
      const g = await guest(
        mode === "local"
          ? { preopens, limits }
          : { fs: remoteFs((i) => serveFs(local, i)), limits },
      );
      if (mode === "remote") g.denied.push = (...d: string[]) => denied.push(...d);
      // prestat names the two preopens as fds 3 and 4
      assertEquals(g.w.fd_prestat_get!(3, 100), 0);
      const n = g.mem().getUint32(104, true);
      assertEquals(g.w.fd_prestat_dir_name!(3, 200, n), 0);
      assertEquals(dec.decode(g.u8().subarray(200, 200 + n)), `${root}/ro`);
      assertEquals(g.w.fd_prestat_dir_name!(3, 200, 2), Errno.NAMETOOLONG);
      assertEquals(g.w.fd_prestat_get!(6, 100), Errno.BADF);
      assertEquals(g.w.fd_prestat_get!(1, 100), Errno.BADF);
      const READ = 2n;
      const WRITE = 64n;
      const open = (
        dir: number,
        path: string,
        oflags = 0,
        rights = READ,
        fdflags = 0,
        follow = 1,
      ) => {
        const len = g.str(500, path);
        const r = g.w.path_open!(dir, follow, 500, len, oflags, rights, 0n, fdflags, 100);
        return r === 0 ? { fd: g.mem().getUint32(100, true) } : r;
      };
      const read = (fd: number) => {
        iov(g, 256);
        assertEquals(g.w.fd_read!(fd, 1000, 1, 100), 0);
        return dec.decode(g.u8().subarray(2000, 2000 + g.mem().getUint32(100, true)));
      };
      // read a granted file
      const a = open(3, "a.txt");
      assert(typeof a === "object");
      assertEquals(read(a.fd), "alpha");
      assertEquals(read(a.fd), "");
      assertEquals(g.w.fd_seek!(a.fd, 1n, 0, 100), 0);
      assertEquals(g.w.fd_tell!(a.fd, 100), 0);
      assertEquals(g.mem().getBigUint64(100, true), 1n);
      assertEquals(read(a.fd), "lpha");
      assertEquals(g.w.fd_filestat_get!(a.fd, 300), 0);
      assertEquals(g.mem().getBigUint64(332, true), 5n);
      assertEquals(g.u8()[316], 4);
      iov(g, "no");
      assertEquals(g.w.fd_write!(a.fd, 1000, 1, 100), Errno.BADF); // opened read-only
      assertEquals(g.w.fd_close!(a.fd), 0);
      assertEquals(g.w.fd_close!(a.fd), Errno.BADF);
      // nested path and a symlink inside the grant
      const b = open(3, "sub/../sub/b.txt");
      assert(typeof b === "object");
      assertEquals(read(b.fd), "beta");
      // a symlink as the last component is refused even inside the grant (as mr_file_read)
      assertEquals(open(3, "alias"), Errno.NOTCAPABLE);
      // a symlinked directory leading outside, and a FIFO (its open must not hang)
      await Deno.symlink(`${root}/secret`, `${root}/ro/secretdir`);
      assertEquals(open(3, "secretdir/key"), Errno.NOTCAPABLE);
      const mk = await new Deno.Command("mkfifo", { args: [`${root}/ro/pipe`] }).output();
      assert(mk.success, "mkfifo");
      assertEquals(open(3, "pipe"), Errno.NOTCAPABLE);
      const alias = open(3, "a.txt");
      assert(typeof alias === "object");
      assertEquals(read(alias.fd), "alpha");
      // denials: outside by .., absolute, symlink escaping, write to ro, missing outside
      assertEquals(open(3, "../secret/key"), Errno.NOTCAPABLE);
      assertEquals(open(3, `${root}/secret/key`), Errno.NOTCAPABLE);
      assertEquals(open(3, "escape"), Errno.NOTCAPABLE);
      assertEquals(open(3, "../secret/missing"), Errno.NOTCAPABLE);
      assertEquals(open(3, "a.txt", 0, WRITE), Errno.NOTCAPABLE);
      assertEquals(open(3, "new.txt", 1, WRITE), Errno.NOTCAPABLE);
      assertEquals(open(3, "missing.txt"), Errno.NOENT);
      assertEquals(open(3, "big.txt"), Errno.FBIG);
      // the root preopen (fd 5) applies the same globs to any absolute path
      assertEquals(open(5, `${root.slice(1)}/secret/key`), Errno.NOTCAPABLE);
      assertEquals(open(5, `${root.slice(1)}/secret/missing`), Errno.NOTCAPABLE);
      assertEquals(open(5, "etc/passwd"), Errno.NOTCAPABLE);
      g.w.fd_close!(alias.fd); // room under maxOpenFds
      const viaRoot = open(5, `${root.slice(1)}/ro/a.txt`);
      assert(typeof viaRoot === "object");
      assertEquals(read(viaRoot.fd), "alpha");
      g.w.fd_close!(viaRoot.fd);
      assertEquals(open(1, "a.txt"), Errno.NOTDIR);
      assertEquals(open(99, "a.txt"), Errno.BADF);
      assertEquals(open(3, "a.txt", 2), Errno.NOTDIR);
      const audit = mode === "local" ? g.denied : denied;
      assert(audit.some((d) => d.includes("../secret/key")), audit.join());
      // unlink/mkdir/rename in ro are refused
      const p = (s: string) => [500, g.str(500, s)] as const;
      assertEquals(g.w.path_unlink_file!(3, ...p("a.txt")), Errno.NOTCAPABLE);
      assertEquals(g.w.path_create_directory!(3, ...p("d")), Errno.NOTCAPABLE);
      assertEquals(g.w.path_remove_directory!(3, ...p("sub")), Errno.NOTCAPABLE);
      // rw: create, write, read back, size cap, rename, unlink, mkdir/rmdir
      const c = open(4, "out.txt", 1 | 8, READ | WRITE);
      assert(typeof c === "object", `open rw: ${c}`);
      iov(g, "written");
      assertEquals(g.w.fd_write!(c.fd, 1000, 1, 100), 0);
      assertEquals(await Deno.readTextFile(`${root}/rw/out.txt`), "written");
      iov(g, "Z");
      assertEquals(g.w.fd_pwrite!(c.fd, 1000, 1, 0n, 100), 0);
      assertEquals(await Deno.readTextFile(`${root}/rw/out.txt`), "Zritten");
      iov(g, 3);
      assertEquals(g.w.fd_pread!(c.fd, 1000, 1, 1n, 100), 0);
      assertEquals(dec.decode(g.u8().subarray(2000, 2003)), "rit");
      iov(g, 2000);
      assertEquals(g.w.fd_write!(c.fd, 1000, 1, 100), Errno.FBIG);
      assertEquals(g.w.fd_filestat_set_size!(c.fd, 4096n), Errno.FBIG);
      assertEquals(g.w.fd_filestat_set_size!(c.fd, 3n), 0);
      assertEquals(await Deno.readTextFile(`${root}/rw/out.txt`), "Zri");
      assertEquals(g.w.fd_sync!(c.fd), 0);
      assertEquals(g.w.fd_datasync!(c.fd), 0);
      assertEquals(g.w.fd_close!(c.fd), 0);
      const rename = (from: string, to: string) => {
        const fl = g.str(500, from);
        const tl = g.str(600, to);
        return g.w.path_rename!(4, 500, fl, 4, 600, tl);
      };
      assertEquals(rename("out.txt", "moved.txt"), 0);
      assertEquals(rename("moved.txt", "../ro/moved.txt"), Errno.NOTCAPABLE);
      assertEquals(g.w.path_create_directory!(4, ...p("d")), 0);
      assertEquals(g.w.path_create_directory!(4, ...p("d")), Errno.EXIST);
      assertEquals(g.w.path_filestat_get!(4, 1, ...p("d"), 300), 0);
      assertEquals(g.u8()[316], 3);
      assertEquals(g.w.path_remove_directory!(4, ...p("d")), 0);
      assertEquals(g.w.path_unlink_file!(4, ...p("moved.txt")), 0);
      assertEquals(g.w.path_unlink_file!(4, ...p("moved.txt")), Errno.NOENT);
      assertEquals(g.w.path_filestat_get!(3, 1, ...p("../secret/key"), 300), Errno.NOTCAPABLE);
      // readdir lists the granted directory, sorted
      const d = open(3, "sub", 2);
      assert(typeof d === "object");
      assertEquals(g.w.fd_readdir!(d.fd, 5000, 512, 0n, 100), 0);
      const used = g.mem().getUint32(100, true);
      const nameLen = g.mem().getUint32(5016, true);
      assertEquals(used, 24 + nameLen);
      assertEquals(dec.decode(g.u8().subarray(5024, 5024 + nameLen)), "b.txt");
      assertEquals(g.w.fd_readdir!(b.fd, 5000, 512, 0n, 100), Errno.NOTDIR);
      assertEquals(g.w.fd_readdir!(99, 5000, 512, 0n, 100), Errno.BADF);
      // the root preopen lists only the first directory on the way to the grant
      const top = root.split("/")[1]!;
      assertEquals(g.w.fd_readdir!(5, 5000, 4096, 0n, 100), 0);
      const names: string[] = [];
      for (let off = 0; off < g.mem().getUint32(100, true);) {
        const nl = g.mem().getUint32(5000 + off + 16, true);
        names.push(dec.decode(g.u8().subarray(5000 + off + 24, 5000 + off + 24 + nl)));
        off += 24 + nl;
      }
      assertEquals(names, [top]);
      // descriptor cap
      const fds: number[] = [];
      let last: number | { fd: number } = 0;
      for (let i = 0; i < 10; i++) {
        last = open(3, "a.txt");
        if (typeof last === "number") break;
        fds.push(last.fd);
      }
      assertEquals(last, Errno.MFILE);
      g.wasi.close();
      local.closeAll();
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}

Deno.test("wasi - a narrower grant: only matching files are visible and readable", async () => {
  const root = await tree();
  try {
    const preopens = preopensFromGrants({ read: [`${root}/ro/a.txt`], write: [] });
    assertEquals(preopens.map((p) => p.guestPath), [`${root}/ro`, "/"]);
    const g = await guest({ preopens });
    const len = g.str(500, "a.txt");
    assertEquals(g.w.path_open!(3, 1, 500, len, 0, 2n, 0n, 0, 100), 0);
    const len2 = g.str(500, "sub/b.txt");
    assertEquals(g.w.path_open!(3, 1, 500, len2, 0, 2n, 0n, 0, 100), Errno.NOTCAPABLE);
    // the preopen itself lists only the granted file
    const fd = (() => {
      const l = g.str(500, ".");
      assertEquals(g.w.path_open!(3, 1, 500, l, 2, 2n, 0n, 0, 100), 0);
      return g.mem().getUint32(100, true);
    })();
    assertEquals(g.w.fd_readdir!(fd, 5000, 512, 0n, 100), 0);
    const nameLen = g.mem().getUint32(5016, true);
    assertEquals(g.mem().getUint32(100, true), 24 + nameLen);
    assertEquals(dec.decode(g.u8().subarray(5024, 5024 + nameLen)), "a.txt");
    g.wasi.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("wasi - the wasi_fs codec refuses malformed, unknown and out-of-grant requests without throwing", async () => {
  const root = await tree();
  try {
    const local = new LocalFs(preopensFromGrants({ read: [`${root}/ro/**`], write: [] }), {
      maxFileBytes: 1024,
      maxOpenFds: 8,
    }, () => {});
    const reply = (b: Uint8Array) => {
      const n = new DataView(b.buffer, b.byteOffset).getUint32(0, true);
      return JSON.parse(dec.decode(b.subarray(4, 4 + n)));
    };
    const req = (header: unknown, data = new Uint8Array()) => {
      const h = enc.encode(JSON.stringify(header));
      const out = new Uint8Array(4 + h.length + data.length);
      new DataView(out.buffer).setUint32(0, h.length, true);
      out.set(h, 4);
      out.set(data, 4 + h.length);
      return reply(serveFs(local, out));
    };
    assertEquals(reply(serveFs(local, new Uint8Array([1, 2]))), { e: Errno.INVAL });
    assertEquals(reply(serveFs(local, new Uint8Array([255, 255, 255, 0, 1]))), { e: Errno.INVAL });
    assertEquals(reply(serveFs(local, enc.encode("\u0005\u0000\u0000\u0000{oops"))), {
      e: Errno.INVAL,
    });
    assertEquals(req({ op: "closeAll", args: [] }), { e: Errno.NOSYS });
    assertEquals(req({ op: "constructor", args: [] }), { e: Errno.NOSYS });
    assertEquals(req({ op: "read", args: "x" }), { e: Errno.NOSYS });
    assertEquals(req({ op: "read", args: [{}, "x", null] }), { e: Errno.BADF });
    assertEquals(req({ op: "open", args: [3, true, "../../etc/passwd", 0, "2", 0] }), {
      e: Errno.NOTCAPABLE,
    });
    assertEquals(req({ op: "open", args: [3, true, "a.txt", 0, "not a number", 0] }), {
      e: Errno.IO,
    });
    const opened = req({ op: "open", args: [3, true, "a.txt", 0, "2", 0] });
    const fd = opened.r.fd as number;
    // a huge read is capped at maxFileBytes
    const big = serveFs(
      local,
      (() => {
        const h = enc.encode(JSON.stringify({ op: "read", args: [fd, 1e12, null] }));
        const o = new Uint8Array(4 + h.length);
        new DataView(o.buffer).setUint32(0, h.length, true);
        o.set(h, 4);
        return o;
      })(),
    );
    assert(big.length < 2048, `reply of ${big.length} bytes`);
    assertEquals(req({ op: "write", args: [fd, null, null] }, enc.encode("x")), { e: Errno.BADF });
    local.closeAll();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
