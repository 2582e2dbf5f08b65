//! The fence in fencelab's world: the standard nemesis (client pauses, clock skew, delayed
//! packets, partitions, crashes, etcd stalls and timeouts) over many seeds, each replayable.

use byo_fence::AtLeastStored;
use fencelab::harness::Harness;
use fencelab::scenario::{Scenario, WorkloadKind};
use fencelab::world::Builder;

/// One write per client (`contrib/lock`'s workload): a stale holder's write comes after a newer
/// holder's and is refused, so no write is ever accepted below an earlier one.
#[test]
fn single_writes_keep_token_order() {
    let scenario = Scenario {
        workload: WorkloadKind::Single,
        ..Scenario::standard()
    };
    Harness::new(Builder::new(scenario).fence(AtLeastStored))
        .seeds(0..300)
        .run();
}

/// Read-modify-write with unchecked reads: some seed loses an acknowledged increment. The
/// harness panics with the seed, the shrunk plan and the line that replays it.
#[test]
#[should_panic(expected = "replay: FENCELAB_SEED=")]
fn counter_loses_updates_when_reads_are_unchecked() {
    Harness::new(Builder::new(Scenario::standard()).fence(AtLeastStored))
        .seeds(0..300)
        .run();
}
