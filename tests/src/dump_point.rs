//! Where a restored process resumes: at or after the point of the dump.
//!
//! [`crate::check_restored`] proves the restored output is the rest of an
//! uninterrupted run and resumes within what the original printed; this
//! adds the other bound: it does not resume before the last step the
//! original had printed when the dump signal was sent (a stale image, or
//! a restore that lost progress, would).

use crate::{Proc, step_of};

/// Checks that `restored`'s first `step N` line has N at or after the last
/// step `original` printed before its first dump signal ([`Proc::dump_signal`]
/// notes where that was; with several dumps the first is the bound every
/// image of them meets). `context` goes into the failure message.
pub fn check_resumed_after_dump(original: &Proc, restored: &Proc, context: &str) {
    let Some(&at_signal) = original.dump_lines().first() else {
        return;
    };
    if let Err(e) = resumed_after(
        &original.stdout_lines(),
        at_signal,
        &restored.stdout_lines(),
    ) {
        panic!(
            "{} {e}, which {} had printed before the dump signal\n{context}",
            restored.label, original.label
        );
    }
}

/// The rule of [`check_resumed_after_dump`] on the lines: the original's
/// first `at_signal` lines hold its last step before the signal (none: no
/// bound); the restored lines' first step must not be below it (no step at
/// all: it resumed after the last one).
fn resumed_after(original: &[String], at_signal: usize, restored: &[String]) -> Result<(), String> {
    let Some(last) = original[..at_signal.min(original.len())]
        .iter()
        .rev()
        .find_map(|l| step_of(l))
    else {
        return Ok(());
    };
    match restored.iter().find_map(|l| step_of(l)) {
        Some(first) if first < last => Err(format!("resumed at step {first}, before step {last}")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::resumed_after;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bound_is_the_last_step_before_the_signal() {
        let original = lines(&["start", "step 1 a", "step 2 b", "step 3 c"]);
        // Signal sent after `step 2`: resuming at 2 or later is right.
        assert!(resumed_after(&original, 3, &lines(&["step 2 b", "done"])).is_ok());
        assert!(resumed_after(&original, 3, &lines(&["step 3 c", "done"])).is_ok());
        assert!(resumed_after(&original, 3, &lines(&["done"])).is_ok());
        // Resuming before the point of the dump is not.
        assert!(resumed_after(&original, 3, &lines(&["step 1 a", "step 2 b"])).is_err());
        // No step before the signal: no bound.
        assert!(resumed_after(&original, 1, &lines(&["step 1 a"])).is_ok());
    }
}
