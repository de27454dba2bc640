//! Test program 2 for migrate: a Rust program (std only) whose state is a
//! `HashMap` and a `Vec` on the heap.
//!
//! Protocol: `start`, one `step N ...` line per step, then `done <checksum>`.
//! Every line is deterministic (the map's iteration order is random per
//! process, so only order-independent sums are printed). Steps are paced with
//! a 30 ms sleep unless `MIGRATE_TEST_NOSLEEP` is set (no output changes).

mod testprog;

use std::collections::HashMap;
use std::time::Duration;

use testprog::mix;

const STEPS: u64 = 60;
const ENTRIES: u64 = 100_000;

fn main() {
    let nosleep = testprog::nosleep();
    let mut line = testprog::start();
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
        testprog::pace(nosleep, Duration::from_millis(30));
    }
    let mut check = log.iter().fold(0u64, |a, &v| mix(a ^ v));
    for s in &strings {
        check = mix(check ^ s.len() as u64);
    }
    line(format!("done {check:016x}"));
}
