//! Each member's own random streams: its randomized election timeouts and the request faults
//! it draws. Seeded from the run's seed and the member's index, never from madsim's global RNG:
//! that RNG also draws every message latency and the poll order of ready tasks, so a draw of
//! the model's on it would shift all of those, and one extra wake-up anywhere would shift the
//! model's draws (`docs/determinism.md`, "How chaotic a world is"). Its own file so that the
//! cluster and a member's handle both draw from it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;
use std::time::Duration;

/// Mixed into the run's seed for the members' election timers, so they are not the nemesis's
/// or a workload's draws (which use labels of their own).
const ELECTION_STREAM: u64 = 0x6574_6364_656c_6563;
/// Mixed into the run's seed for the members' request faults: a stream apart from the
/// timers', so a request more or less does not move the next election's timeouts.
const FAULT_STREAM: u64 = 0x6574_6364_6661_756c;

/// One member's two streams.
struct Streams {
    election: ChaCha8Rng,
    faults: ChaCha8Rng,
}

/// Every member's streams; see the module doc.
pub(super) struct Draws {
    members: Mutex<Vec<Streams>>,
}

/// Member `index`'s stream under `label`: the seed picks the key, the member the ChaCha
/// stream, so no two members (and no two labels) share a sequence.
fn stream(seed: u64, label: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ label);
    rng.set_stream(index as u64);
    rng
}

impl Draws {
    /// The streams of `members` members of a run of `seed`.
    pub(super) fn new(seed: u64, members: usize) -> Self {
        let members = (0..members)
            .map(|m| Streams {
                election: stream(seed, ELECTION_STREAM, m),
                faults: stream(seed, FAULT_STREAM, m),
            })
            .collect();
        Draws {
            members: Mutex::new(members),
        }
    }

    fn with<T>(&self, member: usize, f: impl FnOnce(&mut Streams) -> T) -> T {
        let mut members = self.members.lock().expect("member draws");
        let n = members.len();
        let streams = members
            .get_mut(member)
            .unwrap_or_else(|| panic!("no member {member} of {n}"));
        f(streams)
    }

    /// `member`'s next randomized election timeout: between 1× and 2× `election_timeout`, as
    /// raft's `resetRandomizedElectionTimeout` draws it (in whole ms).
    pub(super) fn election_timeout(&self, member: usize, election_timeout: Duration) -> Duration {
        let ms = election_timeout.as_millis() as u64;
        let drawn_ms = self.with(member, |s| s.election.gen_range(ms..2 * ms));
        Duration::from_millis(drawn_ms)
    }

    /// `member`'s next request-fault draw, in 0..1000 (per mille).
    pub(super) fn fault_permille(&self, member: usize) -> u32 {
        self.with(member, |s| s.faults.gen_range(0..1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_draw_apart_and_alike_per_seed() {
        let a = Draws::new(7, 3);
        let b = Draws::new(7, 3);
        let second = Duration::from_millis(1000);
        let xs: Vec<_> = (0..3).map(|m| a.election_timeout(m, second)).collect();
        let ys: Vec<_> = (0..3).map(|m| b.election_timeout(m, second)).collect();
        assert_eq!(xs, ys, "the same seed draws the same timeouts");
        assert!(
            xs[0] != xs[1] || xs[1] != xs[2],
            "members share a stream: {xs:?}"
        );
        // A fault draw of member 0 moves neither its timers nor another member's.
        let c = Draws::new(7, 3);
        c.fault_permille(0);
        let zs: Vec<_> = (0..3).map(|m| c.election_timeout(m, second)).collect();
        assert_eq!(xs, zs);
        assert!(xs.iter().all(|d| (1000..2000).contains(&d.as_millis())));
    }
}
