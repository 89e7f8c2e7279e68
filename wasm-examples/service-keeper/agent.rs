//! service-keeper (Rust, no_std): keeps a service in its desired state. Checks it with
//! `mr_exec` (the granted argv only), reports state changes with `mr_transition`, and when
//! the service is down restarts it — under a governor when one is configured, so at most N
//! nodes of the fleet restart at once.
//!
//! config: {"service": "nginx",
//!          "check": ["systemctl", "is-active", "nginx"],
//!          "restart": ["systemctl", "restart", "nginx"],
//!          "governor": "restarts"}                      (governor optional)
//! grants: {"exec": [[…check argv…], […restart argv…]], "governors": ["restarts"], "events": true}
#![no_std]

#[path = "../../plugins-sdk/rust/machine_room.rs"]
mod mr;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

static mut CONFIG: mr::Buf = mr::Buf::new();
static mut REQ: mr::Buf = mr::Buf::new();
static mut REPLY: mr::Buf = mr::Buf::new();

#[no_mangle]
pub extern "C" fn mr_describe() -> i32 {
    mr::output(b"{\"name\":\"service-keeper\",\"version\":\"1.0.0\",\"abi\":1}");
    0
}

#[no_mangle]
pub extern "C" fn mr_init() -> i32 {
    let cfg = unsafe { &mut CONFIG };
    mr::input(cfg);
    if mr::raw(cfg.as_bytes(), b"check").is_none() {
        mr::output(b"{\"ok\":false,\"message\":\"config.check (argv) is required\"}");
        return 1;
    }
    mr::output(b"{\"ok\":true}");
    0
}

/// Runs the argv at `key` of the config; returns the exit code (-1 when refused/failed).
fn run(key: &[u8]) -> i64 {
    let (cfg, req, reply) = unsafe { (&CONFIG, &mut REQ, &mut REPLY) };
    let argv = match mr::raw(cfg.as_bytes(), key) {
        Some(a) => a,
        None => return -1,
    };
    req.clear();
    req.push(b"{\"argv\":").push(argv).push(b",\"timeout_ms\":10000}");
    mr::exec(req.as_bytes(), reply);
    if mr::has_error(reply.as_bytes()) {
        return -1;
    }
    mr::int(reply.as_bytes(), b"code").unwrap_or(-1)
}

fn state_get(out: &mut [u8; 16]) -> usize {
    let (req, reply) = unsafe { (&mut REQ, &mut REPLY) };
    req.clear();
    req.push(b"{\"key\":\"state\"}");
    mr::state_get(req.as_bytes(), reply);
    match mr::string(reply.as_bytes(), b"value") {
        Some(s) => {
            let n = s.len().min(16);
            out[..n].copy_from_slice(&s[..n]);
            n
        }
        None => 0,
    }
}

fn state_put(v: &[u8]) {
    let (req, reply) = unsafe { (&mut REQ, &mut REPLY) };
    req.clear();
    req.push(b"{\"key\":\"state\",\"value\":").push_str(v).push(b"}");
    mr::state_put(req.as_bytes(), reply);
}

fn transition(from: &[u8], to: &[u8], reason: &[u8]) {
    let (req, reply) = unsafe { (&mut REQ, &mut REPLY) };
    req.clear();
    req.push(b"{\"from\":").push_str(from).push(b",\"to\":").push_str(to);
    req.push(b",\"reason\":").push_str(reason).push(b"}");
    mr::transition(req.as_bytes(), reply);
}

fn governor(action: &[u8]) -> bool {
    let (cfg, req, reply) = unsafe { (&CONFIG, &mut REQ, &mut REPLY) };
    let name = match mr::raw(cfg.as_bytes(), b"governor") {
        Some(n) => n,
        None => return true, // no governor configured: restart freely
    };
    req.clear();
    req.push(b"{\"name\":").push(name).push(b",\"action\":\"").push(action);
    req.push(b"\",\"timeout_ms\":0}");
    mr::governor(req.as_bytes(), reply);
    mr::contains(reply.as_bytes(), b"\"held\":true")
}

#[no_mangle]
pub extern "C" fn mr_reconcile() -> i32 {
    let mut prev = [0u8; 16];
    let n = state_get(&mut prev);
    let prev = &prev[..n];
    let code = run(b"check");
    let now: &[u8] = if code == 0 { b"running" } else { b"stopped" };
    let mut status: &[u8] = b"ok";
    if prev != now {
        transition(if n == 0 { b"unknown" } else { prev }, now, if code < 0 { b"check refused or failed" } else { b"check" });
        state_put(now);
        status = b"changed";
    }
    if code != 0 && unsafe { mr::raw(CONFIG.as_bytes(), b"restart").is_some() } {
        if governor(b"acquire") {
            let rc = run(b"restart");
            let (req, reply) = unsafe { (&mut REQ, &mut REPLY) };
            req.clear();
            req.push(b"{\"type\":\"restart.attempted\",\"data\":{\"code\":").push_int(rc).push(b"}}");
            mr::event(req.as_bytes(), reply);
            governor(b"release");
            if rc == 0 && run(b"check") == 0 {
                transition(b"stopped", b"running", b"restarted");
                state_put(b"running");
                status = b"changed";
            } else {
                status = b"degraded";
            }
        } else {
            status = b"degraded"; // another node holds the restart slot; try next time
        }
    }
    let out = unsafe { &mut REQ };
    out.clear();
    out.push(b"{\"status\":").push_str(status).push(b",\"message\":").push_str(now).push(b"}");
    mr::output(out.as_bytes());
    0
}
