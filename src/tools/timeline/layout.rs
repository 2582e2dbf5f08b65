//! Where things go on a timeline's page: sizes and offsets in pixels, the scale of true time
//! across, and rows that keep labels from overlapping.

pub(super) const LEFT_PX: f64 = 200.0;
pub(super) const RIGHT_PX: f64 = 40.0;
pub(super) const TITLE_PX: f64 = 64.0;
pub(super) const AXIS_PX: f64 = 28.0;
pub(super) const CLIENT_LANE_PX: f64 = 100.0;
pub(super) const ETCD_LANE_PX: f64 = 56.0;
/// A member's lane is thin: a leader band, its faults, the leadership marks.
pub(super) const MEMBER_LANE_PX: f64 = 30.0;
pub(super) const STORAGE_LANE_PX: f64 = 84.0;
/// A Redis node's lane: the grants of the lock key, what their clients still believe, the
/// double grants.
pub(super) const REDIS_LANE_PX: f64 = 52.0;
/// Plot width per second of true time is chosen within these bounds.
pub(super) const PX_PER_S_MIN: f64 = 40.0;
pub(super) const PX_PER_S_MAX: f64 = 200.0;
/// Width the plot aims for, and the most it may take.
pub(super) const PLOT_PX_AIM: f64 = 2_000.0;
pub(super) const PLOT_PX_MAX: f64 = 4_000.0;
pub(super) const PLOT_PX_MIN: f64 = 600.0;

// Offsets inside a client lane, from its top.
pub(super) const SESSION_Y_PX: f64 = 22.0;
pub(super) const BELIEF_Y_PX: f64 = 16.0;
pub(super) const BELIEF_H_PX: f64 = 12.0;
pub(super) const ETCD_BAR_Y_PX: f64 = 31.0;
pub(super) const ETCD_BAR_H_PX: f64 = 8.0;
pub(super) const CLIENT_MARK_Y_PX: f64 = 56.0;
pub(super) const CLIENT_LABEL_Y_PX: f64 = 72.0;
// Offsets inside the storage lane.
pub(super) const STORAGE_MARK_Y_PX: f64 = 30.0;
pub(super) const STORAGE_LABEL_Y_PX: f64 = 48.0;
// Offsets inside the etcd lane.
pub(super) const ETCD_SEG_Y_PX: f64 = 16.0;
pub(super) const ETCD_SEG_H_PX: f64 = 20.0;
// Offsets inside a Redis node's lane.
pub(super) const GRANT_Y_PX: f64 = 14.0;
pub(super) const GRANT_H_PX: f64 = 14.0;
pub(super) const BELIEVES_Y_PX: f64 = 34.0;
// Offsets inside a member's lane.
pub(super) const LEADER_Y_PX: f64 = 6.0;
pub(super) const LEADER_H_PX: f64 = 11.0;
/// Rows of op labels under the marks, each this far below the previous.
const LABEL_ROWS: usize = 3;
pub(super) const LABEL_ROW_PX: f64 = 10.0;

/// Maps true time to x.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frame {
    pub(super) plot_px: f64,
    pub(super) end_us: u64,
    pub(super) width_px: f64,
    pub(super) lanes_top_px: f64,
    pub(super) lanes_bottom_px: f64,
}

impl Frame {
    pub(super) fn x(&self, true_us: u64) -> f64 {
        LEFT_PX + true_us.min(self.end_us) as f64 / self.end_us as f64 * self.plot_px
    }
}

/// A tick step in seconds that leaves about 10-25 ticks on the axis.
pub(super) fn tick_step_s(span_s: f64) -> f64 {
    const STEPS_S: [f64; 14] = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1_200.0,
    ];
    STEPS_S
        .iter()
        .copied()
        .find(|s| span_s / s <= 25.0)
        .unwrap_or(1_200.0)
}

/// Places labels in a few rows so that they do not overlap; a label with no room is left
/// out (its mark keeps a tooltip with everything).
#[derive(Debug, Clone)]
pub(super) struct Rows {
    right_px: [f64; LABEL_ROWS],
}

impl Rows {
    pub(super) fn new() -> Self {
        Rows {
            right_px: [f64::MIN; LABEL_ROWS],
        }
    }

    pub(super) fn place(&mut self, left_px: f64, width_px: f64) -> Option<usize> {
        let row = self.right_px.iter().position(|r| *r + 2.0 <= left_px)?;
        self.right_px[row] = left_px + width_px;
        Some(row)
    }
}
