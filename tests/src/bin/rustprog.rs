//! Test program 2 for migrate: a Rust program (std only) whose state is a
//! `HashMap` and a `Vec` on the heap.
//!
//! Protocol: `start`, one `step N ...` line per step, then `done <checksum>`.
//! Every line is deterministic (the map's iteration order is random per
//! process, so only order-independent sums are printed). Steps are paced with
//! a 30 ms sleep unless `MIGRATE_TEST_NOSLEEP` is set (no output changes).

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

const STEPS: u64 = 60;
const ENTRIES: u64 = 100_000;

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn main() {
    let nosleep = std::env::var_os("MIGRATE_TEST_NOSLEEP").is_some();
    let mut out = std::io::stdout().lock();
    let mut line = |s: String| {
        writeln!(out, "{s}").expect("stdout");
        out.flush().expect("stdout");
    };
    line("start".into());
    let mut map: HashMap<u64, u64> = (0..ENTRIES).map(|k| (k, mix(k))).collect();
    let mut log: Vec<u64> = Vec::new();
    let mut strings: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
    for step in 1..=STEPS {
        // Update a slice of the keys, insert new ones and remove old ones.
        for k in (step * 1000)..(step * 1000 + 1000) {
            let key = k % ENTRIES;
            let v = map.entry(key).or_insert(0);
            *v = mix(v.wrapping_add(step));
        }
        map.insert(ENTRIES + step, step);
        map.remove(&(step * 13));
        let sum = map
            .iter()
            .fold(0u64, |a, (k, v)| a.wrapping_add(mix(k ^ v)));
        log.push(sum);
        strings[(step as usize) % 1000].push_str(&step.to_string());
        let slen: usize = strings.iter().map(String::len).sum();
        line(format!(
            "step {step} len={} sum={sum:016x} log={} strings={slen}",
            map.len(),
            log.len()
        ));
        if !nosleep {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let mut check = log.iter().fold(0u64, |a, &v| mix(a ^ v));
    for s in &strings {
        check = mix(check ^ s.len() as u64);
    }
    line(format!("done {check:016x}"));
}
