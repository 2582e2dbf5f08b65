//! Redlock end to end, written once over the seam: does the double grant happen against real
//! servers exactly when it happens in the model?
//!
//! Kleppmann's clock-jump story on five nodes A..E, run by the simulation's own Redlock recipe
//! (`lock::acquire`, majority 3, node timeout 5 % of the TTL) over a grid of cells:
//! 1. a third client holds D and E (`PX` [`BLOCKER_PX_MS`]) or not; Kleppmann has them
//!    unreachable, and a refusal takes them from client 1's quorum just as a lost answer does,
//!    without the stall, whose real and model connection setups differ (see
//!    `tools/real/redlock_nodes.rs`: a real client's connect to a stopped server never ends);
//! 2. client 1 locks: A, B and C, or all five;
//! 3. the third client deletes its keys; C's wall clock steps `step_ms` ahead;
//! 4. client 2 makes one attempt (its campaign is shorter than a retry delay);
//! 5. the cell's figure: which nodes each client's value is on, and whether client 2 holds
//!    while client 1's validity, by client 1's own clock, has time left.
//!
//! The steps straddle the TTL: C's key, set δ before client 2's `SET` (a few ms in the model,
//! tens of ms with a real offset file's step), expires by the step when `step_ms > TTL − δ`,
//! so 1.5 s keeps it and 2.5 s ends it for any δ below 500 ms. Expected: a double grant only
//! with D and E taken and a step of 2.5 s or more, in both.

use super::*;
use crate::clock::NodeClock;
use crate::lock::redlock::REDLOCK_KEY;
use crate::lock::{self, Holding, LockConfig, Redlock, ServiceContext};

/// The story's lock TTL, s.
pub const STORY_TTL_S: i64 = 2;
/// C's steps, ms: none, short of the TTL, past it, far past it.
pub const STORY_STEPS_MS: [i64; 4] = [0, 1_500, 2_500, 4_000];
/// How long the third client's keys on D and E live, ms: past the whole cell.
pub const BLOCKER_PX_MS: i64 = 20_000;
/// The nodes' names, as Kleppmann's.
const LABELS: [char; 5] = ['A', 'B', 'C', 'D', 'E'];

/// One cell of the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoryCell {
    /// A third client held D and E while client 1 locked.
    pub d_e_taken: bool,
    /// C's wall-clock step after client 1 locked, ms.
    pub step_ms: i64,
    /// The nodes holding client 1's value once it locked, e.g. "ABC".
    pub client1_nodes: String,
    /// The nodes holding client 2's value, if client 2 took the lock.
    pub client2_nodes: Option<String>,
    /// Client 2 took the lock while client 1's validity had time left.
    pub double_grant: bool,
}

/// The grid's cells, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoryFigures {
    pub ttl_s: i64,
    pub cells: Vec<StoryCell>,
}

/// The lock's knobs: the story's TTL; client 2's campaign ends before its first retry delay
/// (100 ms at least), so it makes one attempt.
fn story_config() -> LockConfig {
    LockConfig {
        ttl_s: STORY_TTL_S,
        campaign_timeout: Duration::from_millis(60),
        request_timeout: Duration::from_millis(Redlock::node_timeout_ms(STORY_TTL_S * 1000) * 2),
        lock_delay_ms: 0,
    }
}

/// Which nodes hold a value starting `client:`, as a string of labels.
async fn holders(nodes: &[Arc<dyn Redis>], client: &str) -> Result<String, String> {
    let mut on = String::new();
    for (i, node) in nodes.iter().enumerate() {
        let v = call("GET", node.get(REDLOCK_KEY)).await?;
        if v.is_some_and(|v| v.starts_with(&format!("{client}:"))) {
            on.push(LABELS[i]);
        }
    }
    Ok(on)
}

/// Every node without the lock key, C's clock back at 0.
async fn clean(nodes: &[Arc<dyn Redis>], c_wall: &dyn WallStep) -> Result<(), String> {
    c_wall.set_offset_ms(0).await?;
    for node in nodes {
        call("DEL", node.del(REDLOCK_KEY)).await?;
    }
    Ok(())
}

/// A client of the story: its name, nonce and clock.
struct StoryClient {
    name: &'static str,
    nonce: u64,
    clock: NodeClock,
}

impl StoryClient {
    async fn acquire(
        &self,
        nodes: &[Arc<dyn Redis>],
        recipe: &Redlock,
    ) -> Result<Holding, lock::LockError> {
        let service = ServiceContext::Redis { nodes };
        let cfg = story_config();
        lock::acquire(service, &self.clock, &cfg, recipe, self.name, self.nonce).await
    }
}

/// One cell: see the module's doc.
async fn cell(
    nodes: &[Arc<dyn Redis>],
    c_wall: &dyn WallStep,
    d_e_taken: bool,
    step_ms: i64,
) -> Result<StoryCell, String> {
    clean(nodes, c_wall).await?;
    let recipe = Redlock::default();
    let clock = NodeClock::perfect(Instant::now());
    let (c1, c2) = (
        StoryClient {
            name: "client1",
            nonce: 1,
            clock: clock.clone(),
        },
        StoryClient {
            name: "client2",
            nonce: 2,
            clock,
        },
    );
    if d_e_taken {
        for node in &nodes[3..] {
            call(
                "the third client's SET NX",
                node.set_nx_px(REDLOCK_KEY, "third:0", BLOCKER_PX_MS),
            )
            .await?;
        }
    }
    let held1 = c1
        .acquire(nodes, &recipe)
        .await
        .map_err(|e| format!("client 1 did not lock: {e}"))?;
    let client1_nodes = holders(nodes, c1.name).await?;
    if d_e_taken {
        for node in &nodes[3..] {
            call(
                "the third client's unlock",
                node.del_if_eq(REDLOCK_KEY, "third:0"),
            )
            .await?;
        }
    }
    c_wall.set_offset_ms(step_ms).await?;
    let held2 = c2.acquire(nodes, &recipe).await;
    let client2_nodes = match &held2 {
        Ok(_) => Some(holders(nodes, c2.name).await?),
        Err(_) => None,
    };
    let validity = held1.validity.ok_or("Redlock's holding has a validity")?;
    let double_grant = held2.is_ok() && validity.holds(&c1.clock, 0);
    clean(nodes, c_wall).await?;
    Ok(StoryCell {
        d_e_taken,
        step_ms,
        client1_nodes,
        client2_nodes,
        double_grant,
    })
}

/// The grid: D and E taken or not, each of [`STORY_STEPS_MS`]. `nodes` are A..E, `c_wall`
/// steps C's wall clock. Leaves every node without the lock key and C's clock at 0.
pub async fn redlock_story(
    nodes: &[Arc<dyn Redis>],
    c_wall: &dyn WallStep,
) -> Result<StoryFigures, String> {
    if nodes.len() != LABELS.len() {
        return Err(format!("the story needs five nodes, got {}", nodes.len()));
    }
    let mut figures = StoryFigures {
        ttl_s: STORY_TTL_S,
        cells: Vec::new(),
    };
    for d_e_taken in [true, false] {
        for step_ms in STORY_STEPS_MS {
            let c = cell(nodes, c_wall, d_e_taken, step_ms)
                .await
                .map_err(|e| format!("D and E taken {d_e_taken}, step {step_ms} ms: {e}"))?;
            // A double grant needs client 2's own quorum.
            assert!(!c.double_grant || c.client2_nodes.as_ref().is_some_and(|n| n.len() >= 3));
            figures.cells.push(c);
        }
    }
    debug_assert_eq!(figures.cells.len(), 2 * STORY_STEPS_MS.len());
    Ok(figures)
}

/// Every cell's outcome equal, candidate (the model) against reference (the real servers):
/// one line per cell that differs; empty when they agree.
pub fn story_differences(reference: &StoryFigures, candidate: &StoryFigures) -> Vec<String> {
    let mut out = Vec::new();
    if reference.cells.len() != candidate.cells.len() || reference.ttl_s != candidate.ttl_s {
        out.push(format!(
            "grids differ: {} cells at TTL {} s against {} at {} s",
            reference.cells.len(),
            reference.ttl_s,
            candidate.cells.len(),
            candidate.ttl_s
        ));
        return out;
    }
    for (r, c) in reference.cells.iter().zip(&candidate.cells) {
        if r != c {
            out.push(format!("real {r:?}\nmodel {c:?}"));
        }
    }
    out
}

/// The grid as a Markdown table, one row per cell.
pub fn story_table(figures: &StoryFigures) -> String {
    let mut t = String::from(
        "| D and E taken | C's step | client 1 on | client 2 on | double grant |\n|---|---|---|---|---|\n",
    );
    for c in &figures.cells {
        t += &format!(
            "| {} | {} ms | {} | {} | {} |\n",
            if c.d_e_taken { "yes" } else { "no" },
            c.step_ms,
            c.client1_nodes,
            c.client2_nodes.as_deref().unwrap_or("no lock"),
            if c.double_grant { "**yes**" } else { "no" }
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(grant_at_ms: i64) -> StoryFigures {
        let cells = STORY_STEPS_MS
            .iter()
            .map(|&step_ms| StoryCell {
                d_e_taken: true,
                step_ms,
                client1_nodes: "ABC".into(),
                client2_nodes: (step_ms >= grant_at_ms).then(|| "CDE".into()),
                double_grant: step_ms >= grant_at_ms,
            })
            .collect();
        StoryFigures {
            ttl_s: STORY_TTL_S,
            cells,
        }
    }

    #[test]
    fn differences_name_each_cell_that_differs() {
        assert!(story_differences(&grid(2_500), &grid(2_500)).is_empty());
        // A model that granted at 1.5 s too: one cell differs.
        let d = story_differences(&grid(2_500), &grid(1_500));
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("step_ms: 1500"), "{d:?}");
        let mut short = grid(2_500);
        short.cells.pop();
        assert_eq!(story_differences(&grid(2_500), &short).len(), 1);
        let t = story_table(&grid(2_500));
        assert!(t.contains("| yes | 2500 ms | ABC | CDE | **yes** |"), "{t}");
    }
}
