//! Five restores in a chain: every restored process is dumped, killed and
//! restored again, and the pieces together make the uninterrupted output.

use migrate_tests::*;

#[test]
fn chain_of_five() {
    let dir = TestDir::new("chain");
    // Steps after which each stage is dumped; the 3rd and 4th dumps land in
    // the 20000-frame recursion (steps 30..50), the 4th restores into it.
    chain_of_restores(&dir, &Program::c(), &[5, 20, 33, 45, 62], None);
}
