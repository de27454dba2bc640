//! Keeping the image's PID and TIDs: a fresh user + PID namespace.
pub fn enter(_image: &dumpfmt::Image<'_>) -> bool {
    false
}
