//! log-scan: a WASI agent in Rust with std (Debian rustc, `wasm32-wasi` target from
//! `libstd-rust-dev-wasm32`).
//!
//! `mr_reconcile` reads the log named by LOG_FILE (from the agent's `config.env`; needs a
//! `files.read` grant), counts the lines containing PATTERN, compares with the count it
//! saved last time in $STATE_DIR/log-scan.state (needs `files.write`), prints a summary
//! on stdout, and returns `{"status":"ok"|"changed"|"failed","message":...}`. Files,
//! environment, stdout and clocks are Rust std over WASI; only the output goes through
//! the Extism kernel.
//!
//!   rustc --target wasm32-wasi --crate-type cdylib -C opt-level=s -o log-scan.wasm agent.rs

use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[link(wasm_import_module = "extism:host/env")]
extern "C" {
    fn alloc(n: u64) -> u64;
    fn store_u8(offs: u64, v: u8);
    fn output_set(offs: u64, n: u64);
}

fn output(s: &str) {
    unsafe {
        let b = alloc(s.len() as u64);
        for (i, c) in s.bytes().enumerate() {
            store_u8(b + i as u64, c);
        }
        output_set(b, s.len() as u64);
    }
}

fn escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

fn result(status: &str, message: &str) -> i32 {
    output(&format!("{{\"status\":\"{}\",\"message\":\"{}\"}}", status, escape(message)));
    0
}

fn scan() -> Result<(String, String), String> {
    let log = std::env::var("LOG_FILE").map_err(|_| "config.env needs LOG_FILE".to_string())?;
    let dir = std::env::var("STATE_DIR").map_err(|_| "config.env needs STATE_DIR".to_string())?;
    let pattern = std::env::var("PATTERN").unwrap_or_else(|_| "ERROR".to_string());
    let started = Instant::now();
    let text = std::fs::read_to_string(&log).map_err(|e| format!("cannot read {}: {}", log, e))?;
    let count = text.lines().filter(|l| l.contains(&pattern)).count();
    let state = format!("{}/log-scan.state", dir);
    let before: Option<usize> = std::fs::read_to_string(&state).ok().and_then(|s| s.trim().parse().ok());
    std::fs::write(&state, format!("{}\n", count)).map_err(|e| format!("cannot write {}: {}", state, e))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    println!(
        "log-scan: {} has {} lines with {:?} (before: {:?}), scanned in {} us at {}",
        log, count, pattern, before, started.elapsed().as_micros(), now
    );
    let status = match before {
        Some(b) if b == count => "ok",
        Some(_) => "changed",
        None => "changed",
    };
    Ok((status.to_string(), format!("{}: {} lines match {:?}", log, count, pattern)))
}

#[no_mangle]
pub extern "C" fn mr_reconcile() -> i32 {
    match scan() {
        Ok((status, msg)) => result(&status, &msg),
        Err(msg) => {
            eprintln!("log-scan: {}", msg);
            result("failed", &msg)
        }
    }
}
