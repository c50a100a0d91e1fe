//! The model-based fault harness for a stated time:
//!
//! ```text
//! cargo run --release -p hokan-repo --example fault_harness -- [SECONDS] [SEED]
//! ```
//!
//! Prints how many sequences, steps and injected faults ran, and every
//! violation (a snapshot that no longer restores, a failed backup that left
//! a snapshot, a check that repairs could not make clean). Exits 1 if any.

use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    });
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let r = hokan_repo::fault_model::run_random(seed, u64::MAX, 12, Some(deadline));
    println!(
        "seed {seed}: {} sequences, {} steps, {} faults injected, {} damage steps, {} snapshots checked, {} repairs, {} object restores lost to damage, {} violations in {:.0} s",
        r.sequences,
        r.steps,
        r.faults,
        r.damage,
        r.snapshots,
        r.repairs,
        r.lost_to_damage,
        r.violations.len(),
        start.elapsed().as_secs_f64()
    );
    for v in &r.violations {
        println!("violation: {v}");
    }
    if !r.violations.is_empty() {
        std::process::exit(1);
    }
}
