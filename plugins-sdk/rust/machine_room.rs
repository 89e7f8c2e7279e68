//! Machine Room agent SDK for Rust (ABI v1, see ../ABI.md). No crates, `#![no_std]`
//! friendly, builds with Debian rustc 1.63:
//!
//! ```sh
//! rustc --target wasm32-unknown-unknown --crate-type cdylib --edition 2018 \
//!   -C opt-level=s -C panic=abort -o agent.wasm agent.rs
//! ```
//!
//! Include it as a module: `#[path = "…/plugins-sdk/rust/machine_room.rs"] mod mr;`.
//! Host functions take and return JSON (`Buf` holds both); refusals come back as
//! `{"error":{"code","message"}}` (`has_error`).
#![allow(dead_code)]

mod ffi {
    #[link(wasm_import_module = "extism:host/env")]
    extern "C" {
        pub fn input_length() -> u64;
        pub fn input_load_u8(offs: u64) -> u8;
        pub fn alloc(n: u64) -> u64;
        pub fn free(offs: u64);
        pub fn length(offs: u64) -> u64;
        pub fn store_u8(offs: u64, v: u8);
        pub fn load_u8(offs: u64) -> u8;
        pub fn output_set(offs: u64, n: u64);
    }
    #[link(wasm_import_module = "extism:host/user")]
    extern "C" {
        pub fn mr_log(p: u64) -> u64;
        pub fn mr_facts(p: u64) -> u64;
        pub fn mr_event(p: u64) -> u64;
        pub fn mr_submit(p: u64) -> u64;
        pub fn mr_metric(p: u64) -> u64;
        pub fn mr_state_get(p: u64) -> u64;
        pub fn mr_state_put(p: u64) -> u64;
        pub fn mr_kv_get(p: u64) -> u64;
        pub fn mr_exec(p: u64) -> u64;
        pub fn mr_http(p: u64) -> u64;
        pub fn mr_file_read(p: u64) -> u64;
        pub fn mr_file_write(p: u64) -> u64;
        pub fn mr_governor(p: u64) -> u64;
        pub fn mr_is_leader(p: u64) -> u64;
        pub fn mr_transition(p: u64) -> u64;
    }
}

/// A fixed-capacity byte buffer (JSON text); writes past the capacity are dropped.
pub struct Buf {
    pub data: [u8; 4096],
    pub len: usize,
}

impl Buf {
    pub const fn new() -> Buf {
        Buf { data: [0; 4096], len: 0 }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    pub fn push(&mut self, s: &[u8]) -> &mut Buf {
        for &b in s {
            if self.len < self.data.len() {
                self.data[self.len] = b;
                self.len += 1;
            }
        }
        self
    }
    /// Appends a JSON string literal.
    pub fn push_str(&mut self, s: &[u8]) -> &mut Buf {
        self.push(b"\"");
        for &b in s {
            match b {
                b'"' => { self.push(b"\\\""); }
                b'\\' => { self.push(b"\\\\"); }
                b'\n' => { self.push(b"\\n"); }
                c if c < 32 => { self.push(b" "); }
                c => { self.push(&[c]); }
            }
        }
        self.push(b"\"")
    }
    pub fn push_int(&mut self, v: i64) -> &mut Buf {
        let mut tmp = [0u8; 20];
        let mut n = 0;
        let mut u = if v < 0 { (-v) as u64 } else { v as u64 };
        if v < 0 {
            self.push(b"-");
        }
        loop {
            tmp[n] = b'0' + (u % 10) as u8;
            n += 1;
            u /= 10;
            if u == 0 {
                break;
            }
        }
        while n > 0 {
            n -= 1;
            self.push(&[tmp[n]]);
        }
        self
    }
}

/// The call input.
pub fn input(out: &mut Buf) {
    out.clear();
    let n = unsafe { ffi::input_length() };
    for i in 0..n {
        let b = unsafe { ffi::input_load_u8(i) };
        out.push(&[b]);
    }
}

fn block(s: &[u8]) -> u64 {
    let off = unsafe { ffi::alloc(s.len() as u64) };
    for (i, &b) in s.iter().enumerate() {
        unsafe { ffi::store_u8(off + i as u64, b) };
    }
    off
}

/// Sets the call output.
pub fn output(json: &[u8]) {
    let off = block(json);
    unsafe { ffi::output_set(off, json.len() as u64) };
}

fn call(f: unsafe extern "C" fn(u64) -> u64, json: &[u8], out: &mut Buf) {
    out.clear();
    let input = block(json);
    let r = unsafe { f(input) };
    unsafe { ffi::free(input) };
    if r != 0 {
        let n = unsafe { ffi::length(r) };
        for i in 0..n {
            let b = unsafe { ffi::load_u8(r + i) };
            out.push(&[b]);
        }
        unsafe { ffi::free(r) };
    }
}

pub fn log(json: &[u8], out: &mut Buf) { call(ffi::mr_log, json, out) }
pub fn facts(json: &[u8], out: &mut Buf) { call(ffi::mr_facts, json, out) }
pub fn event(json: &[u8], out: &mut Buf) { call(ffi::mr_event, json, out) }
pub fn submit(json: &[u8], out: &mut Buf) { call(ffi::mr_submit, json, out) }
pub fn metric(json: &[u8], out: &mut Buf) { call(ffi::mr_metric, json, out) }
pub fn state_get(json: &[u8], out: &mut Buf) { call(ffi::mr_state_get, json, out) }
pub fn state_put(json: &[u8], out: &mut Buf) { call(ffi::mr_state_put, json, out) }
pub fn kv_get(json: &[u8], out: &mut Buf) { call(ffi::mr_kv_get, json, out) }
pub fn exec(json: &[u8], out: &mut Buf) { call(ffi::mr_exec, json, out) }
pub fn http(json: &[u8], out: &mut Buf) { call(ffi::mr_http, json, out) }
pub fn file_read(json: &[u8], out: &mut Buf) { call(ffi::mr_file_read, json, out) }
pub fn file_write(json: &[u8], out: &mut Buf) { call(ffi::mr_file_write, json, out) }
pub fn governor(json: &[u8], out: &mut Buf) { call(ffi::mr_governor, json, out) }
pub fn is_leader(json: &[u8], out: &mut Buf) { call(ffi::mr_is_leader, json, out) }
pub fn transition(json: &[u8], out: &mut Buf) { call(ffi::mr_transition, json, out) }

// ---- tiny JSON lookups (first occurrence of "key":) ----

/// Index of the value after `"key":`.
pub fn find(json: &[u8], key: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + key.len() + 2 <= json.len() {
        if json[i] == b'"' && &json[i + 1..i + 1 + key.len()] == key && json[i + 1 + key.len()] == b'"' {
            let mut j = i + key.len() + 2;
            while j < json.len() && json[j] == b' ' {
                j += 1;
            }
            if j < json.len() && json[j] == b':' {
                j += 1;
                while j < json.len() && json[j] == b' ' {
                    j += 1;
                }
                return Some(j);
            }
        }
        i += 1;
    }
    None
}

/// The raw JSON value text at `key` (a string with its quotes, an array, a number …).
pub fn raw<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = find(json, key)?;
    let mut depth = 0i32;
    let mut in_str = false;
    let mut i = start;
    while i < json.len() {
        let c = json[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
                if depth == 0 {
                    return Some(&json[start..=i]);
                }
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    if depth == 0 {
                        return Some(&json[start..i]);
                    }
                    depth -= 1;
                    if depth == 0 {
                        return Some(&json[start..=i]);
                    }
                }
                b',' if depth == 0 => return Some(&json[start..i]),
                _ => {}
            }
        }
        i += 1;
    }
    Some(&json[start..])
}

/// The integer at `key`.
pub fn int(json: &[u8], key: &[u8]) -> Option<i64> {
    let v = raw(json, key)?;
    let (neg, digits) = if !v.is_empty() && v[0] == b'-' { (true, &v[1..]) } else { (false, v) };
    let mut n: i64 = 0;
    let mut any = false;
    for &c in digits {
        if !(b'0'..=b'9').contains(&c) {
            break;
        }
        n = n * 10 + (c - b'0') as i64;
        any = true;
    }
    if !any {
        return None;
    }
    Some(if neg { -n } else { n })
}

/// The string at `key` without quotes (escapes kept as they are).
pub fn string<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let v = raw(json, key)?;
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        Some(&v[1..v.len() - 1])
    } else {
        None
    }
}

pub fn has_error(json: &[u8]) -> bool {
    find(json, b"error").is_some() && find(json, b"code").is_some()
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
