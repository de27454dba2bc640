//! Threaded test program for migrate: a Rust worker pool (std only) built on
//! `std::thread`, `std::sync::mpsc` and a `Mutex`.
//!
//! Main sends each of `WORKERS` workers one job per step over the worker's
//! own channel; a worker folds the job into its private `Vec`, adds to a
//! shared `Mutex<HashMap>` of totals (order-independent updates), and sends
//! its result back over one shared results channel. Main collects the
//! step's results, orders them by worker, and prints the step's line. At the
//! end it closes the job channels and joins the workers, which return a
//! checksum of their private state.
//!
//! Protocol: `start`, one `step N ...` line per step, then `done <checksum>`.
//! Every line is deterministic (it depends on neither scheduling nor the
//! map's iteration order). Steps are paced with a 30 ms sleep in main and
//! short sleeps in the workers unless `MIGRATE_TEST_NOSLEEP` is set (no
//! output changes).

mod testprog;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use testprog::mix;

const STEPS: u64 = 60;
const WORKERS: u64 = 4;

struct Job {
    step: u64,
    seed: u64,
}

struct Done {
    worker: u64,
    step: u64,
    value: u64,
}

fn worker(
    id: u64,
    jobs: mpsc::Receiver<Job>,
    results: mpsc::Sender<Done>,
    totals: Arc<Mutex<HashMap<u64, u64>>>,
    nosleep: bool,
) -> u64 {
    let mut history: Vec<u64> = Vec::new();
    let mut state = mix(id + 1);
    for job in jobs {
        for i in 0..2000 {
            state = mix(state ^ job.seed ^ i);
        }
        history.push(state);
        {
            let mut t = totals.lock().expect("totals lock");
            let e = t.entry(job.step % 16).or_insert(0);
            *e = e.wrapping_add(state);
            *t.entry(100 + id).or_insert(0) += 1;
        }
        if id & 1 == 0 {
            testprog::pace(nosleep, Duration::from_millis(3));
        }
        results
            .send(Done {
                worker: id,
                step: job.step,
                value: state,
            })
            .expect("send result");
    }
    history.iter().fold(id, |a, &v| mix(a ^ v))
}

fn main() {
    let nosleep = testprog::nosleep();
    let mut line = testprog::start();
    let totals: Arc<Mutex<HashMap<u64, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    let (res_tx, res_rx) = mpsc::channel::<Done>();
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for id in 0..WORKERS {
        let (tx, rx) = mpsc::channel::<Job>();
        let results = res_tx.clone();
        let totals = Arc::clone(&totals);
        senders.push(tx);
        handles.push(
            thread::Builder::new()
                .name(format!("worker-{id}"))
                .spawn(move || worker(id, rx, results, totals, nosleep))
                .expect("spawn worker"),
        );
    }
    drop(res_tx);
    let mut check = 0u64;
    for step in 1..=STEPS {
        for (id, tx) in senders.iter().enumerate() {
            tx.send(Job {
                step,
                seed: mix(step * 1000 + id as u64),
            })
            .expect("send job");
        }
        let mut got: Vec<Done> = (0..WORKERS)
            .map(|_| res_rx.recv().expect("receive result"))
            .collect();
        got.sort_by_key(|d| d.worker);
        assert!(got.iter().all(|d| d.step == step), "result of another step");
        let fold = got.iter().fold(step, |a, d| mix(a ^ d.value));
        check = mix(check ^ fold);
        let (sum, count) = {
            let t = totals.lock().expect("totals lock");
            let sum = (0..16).fold(0u64, |a, k| mix(a ^ t.get(&k).copied().unwrap_or(0)));
            let count: u64 = (0..WORKERS).map(|w| t[&(100 + w)]).sum();
            (sum, count)
        };
        line(format!(
            "step {step} fold={fold:016x} totals={sum:016x} jobs={count}"
        ));
        testprog::pace(nosleep, Duration::from_millis(30));
    }
    drop(senders);
    for h in handles {
        check = mix(check ^ h.join().expect("join worker"));
    }
    line(format!("done {check:016x}"));
}
