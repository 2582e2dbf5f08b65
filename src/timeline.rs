//! A picture of one run: a Kleppmann-style timeline, as a standalone SVG.
//!
//! One lane per node (clients, then etcd, then storage), true time across. On a client's
//! lane: its lease session, the lock as the client believes it holds it, the lock as etcd
//! holds it for the client, the span where the two disagree, its pauses, crashes and
//! partitions, its clock skew, and its reads and writes tagged with their tokens. On the
//! storage lane: what the storage applied, accepted or rejected, joined to the client's send
//! by a line. The checker's findings get a halo and a numbered note.
//!
//! The SVG is written by hand: no font library is needed, every coordinate is ours, and the
//! same input gives the same bytes (no maps with random order, fixed float formatting).
//! It only reads [`History`], [`Verdict`], [`Scenario`] and [`FaultPlan`], so it builds with
//! or without `--cfg madsim`.

use crate::checker::{FindingKind, Verdict};
use crate::clock::Skew;
use crate::history::{EventKind, History, OpResult};
use crate::nemesis::{FaultPlan, ETCD, NETWORK, STORAGE};
use crate::protocol::Op;
use crate::scenario::Scenario;
use crate::svg::{svg, text_width_px};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::svg::xml_escape;

/// Most events drawn: beyond this a picture is unreadable and heavy, so the rest is left out
/// (and the picture says so). A 20 s standard run records about 1,000.
pub const EVENTS_DRAWN_MAX: usize = 20_000;
/// Most lines in the findings list and in the fault list under the picture.
const NOTES_MAX: usize = 40;
/// Most lanes: clients are limited to 64, plus etcd and storage and a few strays.
const LANES_MAX: usize = 80;

const LEFT_PX: f64 = 200.0;
const RIGHT_PX: f64 = 40.0;
const TITLE_PX: f64 = 64.0;
const AXIS_PX: f64 = 28.0;
const CLIENT_LANE_PX: f64 = 100.0;
const ETCD_LANE_PX: f64 = 56.0;
const STORAGE_LANE_PX: f64 = 84.0;
/// Plot width per second of true time is chosen within these bounds.
const PX_PER_S_MIN: f64 = 40.0;
const PX_PER_S_MAX: f64 = 200.0;
/// Width the plot aims for, and the most it may take.
const PLOT_PX_AIM: f64 = 2_000.0;
const PLOT_PX_MAX: f64 = 4_000.0;
const PLOT_PX_MIN: f64 = 600.0;

// Offsets inside a client lane, from its top.
const SESSION_Y_PX: f64 = 22.0;
const BELIEF_Y_PX: f64 = 16.0;
const BELIEF_H_PX: f64 = 12.0;
const ETCD_BAR_Y_PX: f64 = 31.0;
const ETCD_BAR_H_PX: f64 = 8.0;
const CLIENT_MARK_Y_PX: f64 = 56.0;
const CLIENT_LABEL_Y_PX: f64 = 72.0;
// Offsets inside the storage lane.
const STORAGE_MARK_Y_PX: f64 = 30.0;
const STORAGE_LABEL_Y_PX: f64 = 48.0;
// Offsets inside the etcd lane.
const ETCD_SEG_Y_PX: f64 = 16.0;
const ETCD_SEG_H_PX: f64 = 20.0;
/// Rows of op labels under the marks, each this far below the previous.
const LABEL_ROWS: usize = 3;
const LABEL_ROW_PX: f64 = 10.0;

/// One colour per client, cycling; chosen to be told apart on white and in print.
const CLIENT_COLOURS: [&str; 8] = [
    "#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#2ca02c",
];
const UNKNOWN_COLOUR: &str = "#ef6c00";
const VIOLATION_COLOUR: &str = "#d50000";
const STALE_COLOUR: &str = "#ff8f00";
const FALSE_REJECTION_COLOUR: &str = "#6a1b9a";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneKind {
    Client,
    Etcd,
    Storage,
}

#[derive(Debug, Clone)]
struct Lane {
    node: String,
    kind: LaneKind,
    top_px: f64,
    height_px: f64,
    colour: &'static str,
}

/// Maps true time to x.
#[derive(Debug, Clone, Copy)]
struct Frame {
    plot_px: f64,
    end_us: u64,
    width_px: f64,
    lanes_top_px: f64,
    lanes_bottom_px: f64,
}

impl Frame {
    fn x(&self, true_us: u64) -> f64 {
        LEFT_PX + true_us.min(self.end_us) as f64 / self.end_us as f64 * self.plot_px
    }
}

/// A span of time on one node's lane, with what kind of thing it is.
#[derive(Debug, Clone)]
struct Block {
    node: String,
    kind: BlockKind,
    start_us: u64,
    end_us: u64,
    label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum BlockKind {
    Partition,
    Hold,
    Pause,
    Crash,
}

impl BlockKind {
    fn fill(self) -> &'static str {
        match self {
            BlockKind::Pause => "url(#pause)",
            BlockKind::Crash => "url(#crash)",
            BlockKind::Partition => "url(#partition)",
            BlockKind::Hold => "url(#hold)",
        }
    }
}

/// A lock holding of one client: believed from `start_us` to `end_us`, held by etcd from
/// `start_us` to `etcd_end_us`.
#[derive(Debug, Clone)]
struct Holding {
    node: String,
    token: i64,
    start_us: u64,
    end_us: u64,
    etcd_end_us: u64,
    /// Why the belief ended.
    end_why: &'static str,
    /// The client's last operation (send, answer or refusal) under this holding.
    last_op_us: Option<u64>,
}

/// A lease session as the client knows it.
#[derive(Debug, Clone)]
struct Session {
    node: String,
    lease_id: i64,
    start_us: u64,
    end_us: u64,
}

/// Places labels in a few rows so that they do not overlap; a label with no room is left
/// out (its mark keeps a tooltip with everything).
#[derive(Debug, Clone)]
struct Rows {
    right_px: [f64; LABEL_ROWS],
}

impl Rows {
    fn new() -> Self {
        Rows {
            right_px: [f64::MIN; LABEL_ROWS],
        }
    }

    fn place(&mut self, left_px: f64, width_px: f64) -> Option<usize> {
        let row = self.right_px.iter().position(|r| *r + 2.0 <= left_px)?;
        self.right_px[row] = left_px + width_px;
        Some(row)
    }
}

/// Renders a run as a standalone SVG document.
///
/// `plan` gives the clocks' skews and the fault list printed under the picture; `scenario`
/// gives the clients and the TTL. Deterministic: the same arguments give the same bytes.
pub fn render(
    history: &History,
    verdict: &Verdict,
    scenario: &Scenario,
    plan: &FaultPlan,
    title: &str,
) -> String {
    let drawn = history.events.len().min(EVENTS_DRAWN_MAX);
    let events = &history.events[..drawn];
    let last_us = events.iter().map(|e| e.true_us).max().unwrap_or(0);
    let tick_s = tick_step_s(last_us as f64 / 1e6);
    // Whole ticks, with a little room after the last event.
    let ticks = ((last_us as f64 / 1e6 + tick_s * 0.25) / tick_s)
        .ceil()
        .max(1.0);
    let end_us = ((ticks * tick_s * 1e6) as u64).max(1);
    let span_s = end_us as f64 / 1e6;
    let px_per_s = (PLOT_PX_AIM / span_s).clamp(PX_PER_S_MIN, PX_PER_S_MAX);
    let plot_px = (span_s * px_per_s).clamp(PLOT_PX_MIN, PLOT_PX_MAX);
    let width_px = LEFT_PX + plot_px + RIGHT_PX;
    let lanes = lanes(history, scenario);
    let lanes_top_px = TITLE_PX + AXIS_PX;
    let lanes_bottom_px = lanes
        .last()
        .map_or(lanes_top_px, |l| l.top_px + l.height_px);
    let frame = Frame {
        plot_px,
        end_us,
        width_px,
        lanes_top_px,
        lanes_bottom_px,
    };
    let lane_of: BTreeMap<&str, &Lane> = lanes.iter().map(|l| (l.node.as_str(), l)).collect();

    let blocks = blocks(events, end_us);
    let sessions = sessions(events, end_us);
    let holdings = holdings(events, end_us);

    // Notes under the picture: legend, findings, faults. Their height is known up front so
    // the SVG's size can be given in its root element.
    let legend = legend_items();
    let legend_cols = ((width_px - 40.0) / 440.0).floor().clamp(1.0, 4.0) as usize;
    let legend_rows = legend.len().div_ceil(legend_cols);
    let legend_top_px = lanes_bottom_px + AXIS_PX + 24.0;
    let findings_top_px = legend_top_px + 26.0 + legend_rows as f64 * 22.0 + 16.0;
    let finding_lines = verdict.findings.len().min(NOTES_MAX) + 1;
    let faults_top_px = findings_top_px + 20.0 + finding_lines as f64 * 17.0 + 12.0;
    let fault_lines = plan.faults.len().min(NOTES_MAX) + 1;
    let height_px = faults_top_px + 20.0 + fault_lines as f64 * 15.0 + 16.0;

    let mut out = String::with_capacity(64 * 1024 + events.len() * 300);
    svg!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\">\n",
        w = width_px,
        h = height_px
    );
    svg!(out, "<title>{}</title>\n", xml_escape(title));
    defs(&mut out);
    svg!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{width_px:.0}\" height=\"{height_px:.0}\" fill=\"#fff\"/>\n"
    );

    // Title and the verdict in words.
    svg!(
        out,
        "<text x=\"20\" y=\"28\" class=\"title\">{}</text>\n",
        xml_escape(title)
    );
    let verdict_class = if verdict.violates() { "bad" } else { "good" };
    svg!(
        out,
        "<text x=\"20\" y=\"50\" class=\"sub\"><tspan class=\"{verdict_class}\">{}</tspan> \
         lost updates {}, token-order breaks {}, stale acceptances {}, false rejections {} \
         · {} client(s), TTL {} s{}</text>\n",
        if verdict.violates() {
            "VIOLATED"
        } else {
            "safe"
        },
        verdict.lost_updates,
        verdict.token_order_breaks,
        verdict.stale_acceptances,
        verdict.false_rejections,
        scenario.clients,
        scenario.ttl_s,
        if drawn < history.events.len() {
            format!(
                " · only the first {drawn} of {} events drawn",
                history.events.len()
            )
        } else {
            String::new()
        }
    );

    // Lanes: background, name, clock.
    for (i, lane) in lanes.iter().enumerate() {
        draw_lane(&mut out, i, lane, &frame, plan);
    }
    // Grid and axes.
    draw_axis(
        &mut out,
        &frame,
        tick_s,
        lanes_top_px,
        lanes_bottom_px,
        lanes_top_px - 8.0,
        true,
    );
    draw_axis(
        &mut out,
        &frame,
        tick_s,
        lanes_top_px,
        lanes_bottom_px,
        lanes_bottom_px + 16.0,
        false,
    );

    // Windows of a degraded network span every lane, behind everything else.
    for (start_us, end_us, label) in network_windows(&history.events, end_us) {
        let (x0, x1) = (frame.x(start_us), frame.x(end_us));
        svg!(
            out,
            "<rect class=\"network\" x=\"{x0:.1}\" y=\"{lanes_top_px:.1}\" width=\"{:.1}\" \
             height=\"{:.1}\" fill=\"#f4e04d\" fill-opacity=\"0.18\"><title>{}</title></rect>\n",
            (x1 - x0).max(1.0),
            lanes_bottom_px - lanes_top_px,
            xml_escape(&format!(
                "{label} ({:.3} s to {:.3} s)",
                start_us as f64 / 1e6,
                end_us as f64 / 1e6
            ))
        );
    }

    // Faults behind everything else on the lanes.
    out.push_str("<g class=\"faults\">\n");
    for b in &blocks {
        let Some(lane) = lane_of.get(b.node.as_str()) else {
            continue;
        };
        let (x0, x1) = (frame.x(b.start_us), frame.x(b.end_us));
        svg!(
            out,
            "<rect class=\"fault\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
             fill=\"{}\" stroke=\"#666\" stroke-width=\"0.6\"><title>{}</title></rect>\n",
            lane.top_px + 2.0,
            (x1 - x0).max(1.0),
            lane.height_px - 4.0,
            b.kind.fill(),
            xml_escape(&format!(
                "{}: {} ({:.3} s to {:.3} s)",
                b.node,
                b.label,
                b.start_us as f64 / 1e6,
                b.end_us as f64 / 1e6
            ))
        );
        svg!(
            out,
            "<text class=\"fl\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            x0 + 3.0,
            lane.top_px + lane.height_px - 6.0,
            xml_escape(&b.label)
        );
    }
    for lane in &lanes {
        draw_steps(&mut out, lane, &frame, plan);
    }
    out.push_str("</g>\n");

    // Sessions, beliefs and etcd's view.
    out.push_str("<g class=\"locks\">\n");
    for s in &sessions {
        let Some(lane) = lane_of.get(s.node.as_str()) else {
            continue;
        };
        let y = lane.top_px + SESSION_Y_PX;
        svg!(
            out,
            "<line class=\"session\" x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" \
             stroke=\"#555\" stroke-width=\"1.2\" stroke-dasharray=\"3 2\"><title>{}</title></line>\n",
            frame.x(s.start_us),
            frame.x(s.end_us),
            xml_escape(&format!(
                "{}: lease {:x} from {:.3} s to {:.3} s",
                s.node,
                s.lease_id,
                s.start_us as f64 / 1e6,
                s.end_us as f64 / 1e6
            ))
        );
    }
    for h in &holdings {
        let Some(lane) = lane_of.get(h.node.as_str()) else {
            continue;
        };
        draw_holding(&mut out, h, lane, &frame, &lane_of);
    }
    out.push_str("</g>\n");

    // Operations: lines from the client's send to the storage's apply, then the marks.
    let finding_events: BTreeSet<usize> = verdict.findings.iter().map(|f| f.event).collect();
    draw_ops(&mut out, history, drawn, &frame, &lane_of, &finding_events);

    // Findings: a halo and a numbered badge at the event, a line through every lane.
    draw_findings(&mut out, events, verdict, &frame, &lane_of);

    // Notes.
    draw_legend(&mut out, &legend, legend_cols, legend_top_px, width_px);
    draw_finding_list(&mut out, verdict, findings_top_px);
    draw_fault_list(&mut out, plan, faults_top_px);
    out.push_str("</svg>\n");
    out
}

/// A tick step in seconds that leaves about 10-25 ticks on the axis.
fn tick_step_s(span_s: f64) -> f64 {
    const STEPS_S: [f64; 14] = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1_200.0,
    ];
    STEPS_S
        .iter()
        .copied()
        .find(|s| span_s / s <= 25.0)
        .unwrap_or(1_200.0)
}

/// One lane per node: the scenario's clients, any other client seen in the history, etcd,
/// storage.
fn lanes(history: &History, scenario: &Scenario) -> Vec<Lane> {
    let mut clients: Vec<String> = scenario.client_names();
    let known: BTreeSet<String> = clients.iter().cloned().collect();
    let strays: BTreeSet<&str> = history
        .events
        .iter()
        .map(|e| e.node.as_str())
        // Network-wide faults are notes about every link, not a node with a lane.
        .filter(|n| *n != ETCD && *n != STORAGE && *n != NETWORK && !known.contains(*n))
        .collect();
    clients.extend(strays.into_iter().map(str::to_string));
    clients.truncate(LANES_MAX - 2);
    let mut lanes = Vec::with_capacity(clients.len() + 2);
    let mut top_px = TITLE_PX + AXIS_PX;
    for (i, node) in clients.into_iter().enumerate() {
        lanes.push(Lane {
            node,
            kind: LaneKind::Client,
            top_px,
            height_px: CLIENT_LANE_PX,
            colour: CLIENT_COLOURS[i % CLIENT_COLOURS.len()],
        });
        top_px += CLIENT_LANE_PX;
    }
    for (node, kind, height_px) in [
        (ETCD, LaneKind::Etcd, ETCD_LANE_PX),
        (STORAGE, LaneKind::Storage, STORAGE_LANE_PX),
    ] {
        lanes.push(Lane {
            node: node.to_string(),
            kind,
            top_px,
            height_px,
            colour: "#444",
        });
        top_px += height_px;
    }
    lanes
}

/// Windows of a degraded network (start, end, what), from the nemesis' notes.
fn network_windows(events: &[crate::history::Event], end_us: u64) -> Vec<(u64, u64, String)> {
    let mut windows = Vec::new();
    let mut open: Option<(u64, String)> = None;
    for e in events.iter().filter(|e| e.node == NETWORK) {
        let EventKind::Fault { what } = &e.kind else {
            continue;
        };
        if what.starts_with("network degraded") {
            open.get_or_insert((e.true_us, what.clone()));
        } else if let Some((start_us, label)) = open.take() {
            windows.push((start_us, e.true_us, label));
        }
    }
    if let Some((start_us, label)) = open {
        windows.push((start_us, end_us, format!("{label} (to the end)")));
    }
    windows
}

/// Pauses, crashes, partitions and held requests as spans, from the nemesis' notes.
///
/// A node is paused or running (madsim keeps no count of pauses), so a second "paused"
/// while paused changes nothing and the first "resumed" ends the span.
fn blocks(events: &[crate::history::Event], end_us: u64) -> Vec<Block> {
    let mut open: BTreeMap<(String, BlockKind, String), (u64, String)> = BTreeMap::new();
    let mut done = Vec::new();
    for e in events {
        let EventKind::Fault { what } = &e.kind else {
            continue;
        };
        let node = e.node.clone();
        let (kind, peer, opens) = if what.starts_with("paused") {
            (BlockKind::Pause, String::new(), true)
        } else if what == "resumed" {
            (BlockKind::Pause, String::new(), false)
        } else if what.starts_with("crashed") {
            (BlockKind::Crash, String::new(), true)
        } else if what == "restarted" {
            (BlockKind::Crash, String::new(), false)
        } else if let Some(peer) = what.strip_prefix("partitioned from ") {
            (BlockKind::Partition, peer.to_string(), true)
        } else if let Some(rest) = what.strip_prefix("partition from ") {
            let peer = rest.strip_suffix(" healed").unwrap_or(rest);
            (BlockKind::Partition, peer.to_string(), false)
        } else if what.starts_with("storage request held") {
            (BlockKind::Hold, String::new(), true)
        } else if what == "held storage request released" {
            (BlockKind::Hold, String::new(), false)
        } else {
            continue;
        };
        let key = (node.clone(), kind, peer.clone());
        if opens {
            let label = match kind {
                BlockKind::Pause => what.clone(),
                BlockKind::Crash => "crashed".to_string(),
                BlockKind::Partition => format!("partitioned from {peer}"),
                BlockKind::Hold => "storage request held".to_string(),
            };
            open.entry(key).or_insert((e.true_us, label));
        } else if let Some((start_us, label)) = open.remove(&key) {
            close_block(&mut done, node, kind, peer, start_us, e.true_us, label);
        }
    }
    for ((node, kind, peer), (start_us, label)) in open {
        let label = format!("{label} (to the end)");
        close_block(&mut done, node, kind, peer, start_us, end_us, label);
    }
    // Drawn wide ones first would hide nothing (they are translucent), but a fixed order
    // keeps the bytes the same whatever the map did.
    done.sort_by(|a, b| (a.start_us, &a.node, a.kind).cmp(&(b.start_us, &b.node, b.kind)));
    done
}

fn close_block(
    done: &mut Vec<Block>,
    node: String,
    kind: BlockKind,
    peer: String,
    start_us: u64,
    end_us: u64,
    label: String,
) {
    // A partition is a fact about two nodes: show it on the other one's lane too.
    if kind == BlockKind::Partition {
        done.push(Block {
            node: peer,
            kind,
            start_us,
            end_us,
            label: format!("partitioned from {node}"),
        });
    }
    done.push(Block {
        node,
        kind,
        start_us,
        end_us,
        label,
    });
}

/// Lease sessions as each client knows them: granted until lost, released, given up, or the
/// node crashed.
fn sessions(events: &[crate::history::Event], end_us: u64) -> Vec<Session> {
    let mut open: BTreeMap<&str, Session> = BTreeMap::new();
    let mut done = Vec::new();
    for e in events {
        let node = e.node.as_str();
        let closes = match &e.kind {
            EventKind::LeaseGranted { lease_id, .. } => {
                if let Some(mut s) = open.remove(node) {
                    s.end_us = e.true_us;
                    done.push(s);
                }
                open.insert(
                    node,
                    Session {
                        node: node.to_string(),
                        lease_id: *lease_id,
                        start_us: e.true_us,
                        end_us,
                    },
                );
                false
            }
            EventKind::LeaseLost { lease_id, .. }
            | EventKind::Released { lease_id, .. }
            | EventKind::CampaignTimedOut { lease_id } => {
                open.get(node).is_some_and(|s| s.lease_id == *lease_id)
            }
            EventKind::Fault { what } => what.starts_with("crashed"),
            EventKind::NodeStarted { .. } => true,
            _ => false,
        };
        if closes {
            if let Some(mut s) = open.remove(node) {
                s.end_us = e.true_us;
                done.push(s);
            }
        }
    }
    done.extend(open.into_values());
    done.sort_by(|a, b| (a.start_us, &a.node).cmp(&(b.start_us, &b.node)));
    done
}

/// Lock holdings: believed from `Acquired` to release, lease loss or crash; held by etcd until
/// then or until another client acquires a higher token, whichever is first. A client that
/// learns of its lock after a higher token was already handed out never held it at etcd.
fn holdings(events: &[crate::history::Event], end_us: u64) -> Vec<Holding> {
    let mut open: BTreeMap<&str, Holding> = BTreeMap::new();
    let mut done: Vec<Holding> = Vec::new();
    let mut highest_token = i64::MIN;
    for e in events {
        let node = e.node.as_str();
        match &e.kind {
            EventKind::Acquired { token, .. } => {
                // etcd has moved on from every holding of a lower token by someone else.
                for h in open.values_mut() {
                    if h.node != node && h.token < *token && h.etcd_end_us > e.true_us {
                        h.etcd_end_us = e.true_us;
                    }
                }
                if let Some(mut h) = open.remove(node) {
                    h.end_us = e.true_us;
                    h.etcd_end_us = h.etcd_end_us.min(e.true_us);
                    done.push(h);
                }
                let late = *token < highest_token;
                highest_token = highest_token.max(*token);
                open.insert(
                    node,
                    Holding {
                        node: node.to_string(),
                        token: *token,
                        start_us: e.true_us,
                        end_us,
                        etcd_end_us: if late { e.true_us } else { end_us },
                        end_why: "held to the end",
                        last_op_us: None,
                    },
                );
            }
            EventKind::Invoke { .. }
            | EventKind::Complete { .. }
            | EventKind::LocalCheckRefused { .. } => {
                if let Some(h) = open.get_mut(node) {
                    h.last_op_us = Some(e.true_us);
                }
            }
            EventKind::Released { token, .. } => {
                // `Released` is recorded after resign and revoke have been answered, while
                // the next holder may already have the lock: the client stopped relying on
                // it when its work ended, at its last operation.
                let last_op_us = open.get(node).and_then(|h| h.last_op_us);
                let end_us = last_op_us.unwrap_or(e.true_us);
                close_holding(&mut open, &mut done, node, end_us, "released", |h| {
                    h.token == *token
                });
            }
            EventKind::LeaseLost { .. } => {
                close_holding(&mut open, &mut done, node, e.true_us, "lease lost", |_| {
                    true
                });
            }
            EventKind::Fault { what } if what.starts_with("crashed") => {
                close_holding(&mut open, &mut done, node, e.true_us, "crashed", |_| true);
            }
            _ => {}
        }
    }
    done.extend(open.into_values());
    done.sort_by(|a, b| (a.start_us, &a.node).cmp(&(b.start_us, &b.node)));
    done
}

fn close_holding(
    open: &mut BTreeMap<&str, Holding>,
    done: &mut Vec<Holding>,
    node: &str,
    true_us: u64,
    why: &'static str,
    matches: impl Fn(&Holding) -> bool,
) {
    if open.get(node).is_some_and(matches) {
        let mut h = open.remove(node).expect("checked above");
        h.end_us = true_us.max(h.start_us);
        h.etcd_end_us = h.etcd_end_us.min(true_us);
        h.end_why = why;
        done.push(h);
    }
}

fn defs(out: &mut String) {
    out.push_str(
        "<defs>\n\
<style>\n\
text{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;fill:#222}\n\
.title{font-size:18px;font-weight:bold}\n\
.sub{font-size:12px;fill:#444}\n\
.good{fill:#2e7d32;font-weight:bold}\n\
.bad{fill:#d50000;font-weight:bold}\n\
.node{font-size:13px;font-weight:bold}\n\
.clock{font-size:10px;fill:#555}\n\
.tick{font-size:10px;fill:#555}\n\
.fl{font-size:9px;fill:#333;font-style:italic}\n\
.ol{font-size:8.5px;fill:#333}\n\
.tok{font-size:9px;fill:#fff;font-weight:bold}\n\
.badge{font-size:10px;font-weight:bold}\n\
.note{font-size:12px}\n\
.small{font-size:11px;fill:#444}\n\
.head{font-size:12px;font-weight:bold}\n\
.m{stroke-width:1.4}\n\
.mo{fill:#2e7d32;stroke:#2e7d32}\n\
.mr{fill:#c62828;stroke:#c62828}\n\
.mf{fill:#9e9e9e;stroke:#9e9e9e}\n\
.mu{fill:#ef6c00;stroke:#ef6c00}\n\
.hol{fill:#fff}\n\
.x{fill:none;stroke-width:1.8}\n\
.rl{stroke-width:1}\n\
.wa{stroke:#2e7d32;stroke-width:0.8;stroke-opacity:0.45}\n\
.wr{stroke:#c62828;stroke-width:1.2;stroke-opacity:0.7}\n\
.wf{stroke:#d50000;stroke-width:2.2;stroke-opacity:0.9}\n\
</style>\n\
<pattern id=\"pause\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
<rect width=\"6\" height=\"6\" fill=\"#e0e0e0\" fill-opacity=\"0.7\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#9e9e9e\" stroke-width=\"2\"/></pattern>\n\
<pattern id=\"crash\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\">\
<rect width=\"6\" height=\"6\" fill=\"#bdbdbd\" fill-opacity=\"0.8\"/><path d=\"M0 0L6 6M6 0L0 6\" stroke=\"#424242\" stroke-width=\"1\"/></pattern>\n\
<pattern id=\"partition\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\">\
<rect width=\"8\" height=\"8\" fill=\"#ffe0b2\" fill-opacity=\"0.6\"/><circle cx=\"4\" cy=\"4\" r=\"1.2\" fill=\"#ef6c00\"/></pattern>\n\
<pattern id=\"hold\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(-45)\">\
<rect width=\"8\" height=\"8\" fill=\"#e1bee7\" fill-opacity=\"0.6\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"8\" stroke=\"#8e24aa\" stroke-width=\"1\"/></pattern>\n\
<pattern id=\"zombie\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
<rect width=\"5\" height=\"5\" fill=\"#ffcdd2\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"5\" stroke=\"#d50000\" stroke-width=\"2\"/></pattern>\n\
</defs>\n",
    );
}

fn draw_lane(out: &mut String, i: usize, lane: &Lane, frame: &Frame, plan: &FaultPlan) {
    let fill = if i.is_multiple_of(2) {
        "#f7f7f7"
    } else {
        "#ffffff"
    };
    svg!(
        out,
        "<g class=\"lane\" data-node=\"{node}\">\n<rect x=\"0\" y=\"{:.1}\" width=\"{:.1}\" \
         height=\"{:.1}\" fill=\"{fill}\"/>\n<line x1=\"0\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" \
         stroke=\"#ddd\"/>\n<text class=\"node\" x=\"12\" y=\"{:.1}\" fill=\"{}\">{node}</text>\n",
        lane.top_px,
        LEFT_PX + frame.plot_px + RIGHT_PX,
        lane.height_px,
        lane.top_px + lane.height_px,
        LEFT_PX + frame.plot_px + RIGHT_PX,
        lane.top_px + lane.height_px,
        lane.top_px + 20.0,
        lane.colour,
        node = xml_escape(&lane.node),
    );
    let notes: Vec<String> = match lane.kind {
        LaneKind::Client => skew_notes(&plan.skew_of(&lane.node)),
        LaneKind::Etcd => vec!["lock holder, by token".into()],
        LaneKind::Storage => vec!["applies reads and writes".into()],
    };
    for (k, note) in notes.iter().enumerate() {
        svg!(
            out,
            "<text class=\"clock\" x=\"12\" y=\"{:.1}\">{}</text>\n",
            lane.top_px + 36.0 + k as f64 * 13.0,
            xml_escape(note)
        );
    }
    out.push_str("</g>\n");
}

/// Each clock step as a tick at the top of the client's lane, with its size.
fn draw_steps(out: &mut String, lane: &Lane, frame: &Frame, plan: &FaultPlan) {
    if lane.kind != LaneKind::Client {
        return;
    }
    for step in plan
        .skew_of(&lane.node)
        .steps
        .iter()
        .take(crate::clock::STEPS_MAX)
    {
        let x = frame.x(step.at_ms.saturating_mul(1000));
        svg!(
            out,
            "<g class=\"step\"><path d=\"M{x:.1} {:.1}l-4 -7h8z\" fill=\"#000\"/>\
             <text class=\"clock\" x=\"{:.1}\" y=\"{:.1}\">clock {:+} ms</text></g>\n",
            lane.top_px + 9.0,
            x + 6.0,
            lane.top_px + 10.0,
            step.delta_ms
        );
    }
}

/// The clock's skew in words, for the lane label.
fn skew_notes(skew: &Skew) -> Vec<String> {
    if skew.is_perfect() {
        return vec!["clock: true time".into()];
    }
    let mut notes = vec![format!(
        "clock {:+} ms, {:+} ppm",
        skew.offset_ms, skew.drift_ppm
    )];
    if !skew.steps.is_empty() {
        notes.push(format!("{} step(s) ▼ on the lane", skew.steps.len()));
    }
    notes
}

fn draw_axis(
    out: &mut String,
    frame: &Frame,
    tick_s: f64,
    lanes_top_px: f64,
    lanes_bottom_px: f64,
    label_y_px: f64,
    grid: bool,
) {
    let ticks = (frame.end_us as f64 / 1e6 / tick_s).round() as u64;
    out.push_str("<g class=\"axis\">\n");
    // Bounded by tick_step_s: at most about 25 ticks.
    for k in 0..=ticks.min(1_000) {
        let t_s = k as f64 * tick_s;
        let x = frame.x((t_s * 1e6).round() as u64);
        if grid {
            svg!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{lanes_top_px:.1}\" x2=\"{x:.1}\" y2=\"{lanes_bottom_px:.1}\" \
                 stroke=\"#ccc\" stroke-width=\"0.6\"/>\n"
            );
        }
        let label = if tick_s < 1.0 {
            format!("{t_s:.1} s")
        } else {
            format!("{t_s:.0} s")
        };
        svg!(
            out,
            "<text class=\"tick\" x=\"{x:.1}\" y=\"{label_y_px:.1}\" text-anchor=\"middle\">{label}</text>\n"
        );
    }
    if !grid {
        svg!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">true time →</text>\n",
            LEFT_PX + frame.plot_px,
            label_y_px + 14.0
        );
    }
    out.push_str("</g>\n");
}

fn draw_holding(
    out: &mut String,
    h: &Holding,
    lane: &Lane,
    frame: &Frame,
    lane_of: &BTreeMap<&str, &Lane>,
) {
    let (x0, x1) = (frame.x(h.start_us), frame.x(h.end_us));
    let xe = frame.x(h.etcd_end_us);
    let secs = |us: u64| us as f64 / 1e6;
    // What the client believes: from the grant of the lock to its end as the client knows it.
    svg!(
        out,
        "<rect class=\"belief\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{BELIEF_H_PX:.1}\" \
         fill=\"{c}\" fill-opacity=\"0.25\" stroke=\"{c}\"><title>{}</title></rect>\n",
        lane.top_px + BELIEF_Y_PX,
        (x1 - x0).max(1.0),
        xml_escape(&format!(
            "{} believes it holds the lock with token {} from {:.3} s to {:.3} s ({})",
            h.node,
            h.token,
            secs(h.start_us),
            secs(h.end_us),
            h.end_why
        )),
        c = lane.colour,
    );
    // Where the belief outlives etcd's: the client acts on a lock that is gone.
    if h.end_us > h.etcd_end_us && x1 - xe >= 0.5 {
        svg!(
            out,
            "<rect class=\"zombie\" x=\"{xe:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{BELIEF_H_PX:.1}\" \
             fill=\"url(#zombie)\" stroke=\"#d50000\"><title>{}</title></rect>\n",
            lane.top_px + BELIEF_Y_PX,
            x1 - xe,
            xml_escape(&format!(
                "{} still believes it holds token {} from {:.3} s to {:.3} s, but etcd has moved on",
                h.node,
                h.token,
                secs(h.etcd_end_us),
                secs(h.end_us)
            ))
        );
    }
    let label = format!("token {}", h.token);
    if text_width_px(&label, 9.0) + 6.0 < x1 - x0 {
        svg!(
            out,
            "<text class=\"ol\" x=\"{:.1}\" y=\"{:.1}\">{label}</text>\n",
            x0 + 3.0,
            lane.top_px + BELIEF_Y_PX + 9.5
        );
    }
    if xe > x0 {
        let title = xml_escape(&format!(
            "etcd holds the lock for {} with token {} from {:.3} s to {:.3} s",
            h.node,
            h.token,
            secs(h.start_us),
            secs(h.etcd_end_us)
        ));
        svg!(
            out,
            "<rect class=\"held\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{ETCD_BAR_H_PX:.1}\" \
             fill=\"{}\"><title>{title}</title></rect>\n",
            lane.top_px + ETCD_BAR_Y_PX,
            xe - x0,
            lane.colour
        );
        // The same holding on etcd's lane, coloured by client.
        if let Some(etcd) = lane_of.get(ETCD) {
            svg!(
                out,
                "<rect class=\"holder\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{ETCD_SEG_H_PX:.1}\" \
                 fill=\"{}\" stroke=\"#fff\" stroke-width=\"0.5\"><title>{title}</title></rect>\n",
                etcd.top_px + ETCD_SEG_Y_PX,
                xe - x0,
                lane.colour
            );
            let tok = h.token.to_string();
            if text_width_px(&tok, 9.0) + 4.0 < xe - x0 {
                svg!(
                    out,
                    "<text class=\"tok\" x=\"{:.1}\" y=\"{:.1}\">{tok}</text>\n",
                    x0 + 2.0,
                    etcd.top_px + ETCD_SEG_Y_PX + 14.0
                );
            }
        }
    }
}

/// The CSS class of a client's mark (see `defs`) by how the operation ended, as the client
/// saw it, and the word for it. Classes, not inline colours: they keep a picture small.
fn outcome_class(outcome: Option<&OpResult>) -> (&'static str, &'static str) {
    match outcome {
        Some(OpResult::Ok { .. }) => ("mo", "ok"),
        Some(OpResult::Rejected { .. }) => ("mr", "rejected"),
        Some(OpResult::Failed { .. }) => ("mf", "failed"),
        Some(OpResult::Unknown { .. }) | None => ("mu", "no answer"),
    }
}

/// A read is a circle, a write a square; `filled` or hollow; `crossed` adds an X.
fn mark(out: &mut String, op: Op, x: f64, y: f64, class: &str, filled: bool, crossed: bool) {
    let hollow = if filled { "" } else { " hol" };
    match op {
        Op::Read => svg!(
            out,
            "<circle class=\"m {class}{hollow}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.8\"/>"
        ),
        Op::Write => svg!(
            out,
            "<rect class=\"m {class}{hollow}\" x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\"/>",
            x - 3.5,
            y - 3.5
        ),
    }
    if crossed {
        svg!(
            out,
            "<path class=\"{class} x\" d=\"M{:.1} {:.1}l10 10m0 -10l-10 10\"/>",
            x - 5.0,
            y - 5.0
        );
    }
}

fn draw_ops(
    out: &mut String,
    history: &History,
    drawn: usize,
    frame: &Frame,
    lane_of: &BTreeMap<&str, &Lane>,
    finding_events: &BTreeSet<usize>,
) {
    let events = &history.events[..drawn];
    let mut ops = history.ops();
    ops.retain(|o| o.invoke_index < drawn);
    // Invocations by op id, for the storage's side.
    let mut invoked: BTreeMap<u64, usize> = BTreeMap::new();
    for (k, o) in ops.iter().enumerate() {
        if let EventKind::Invoke { op_id, .. } = o.invoke.kind {
            invoked.insert(op_id, k);
        }
    }
    let storage = lane_of.get(STORAGE).copied();

    // Lines first, so that marks sit on top of them.
    out.push_str("<g class=\"wires\">\n");
    for (i, e) in events.iter().enumerate() {
        let EventKind::StorageApplied {
            op_id, accepted, ..
        } = &e.kind
        else {
            continue;
        };
        let (Some(storage), Some(k)) = (storage, op_id.and_then(|id| invoked.get(&id))) else {
            continue;
        };
        let inv = ops[*k].invoke;
        let Some(client) = lane_of.get(inv.node.as_str()) else {
            continue;
        };
        let flagged = finding_events.contains(&i);
        let class = match (flagged, accepted) {
            (true, _) => "wf",
            (false, true) => "wa",
            (false, false) => "wr",
        };
        svg!(
            out,
            "<line class=\"{class}\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\n",
            frame.x(inv.true_us),
            client.top_px + CLIENT_MARK_Y_PX,
            frame.x(e.true_us),
            storage.top_px + STORAGE_MARK_Y_PX
        );
    }
    out.push_str("</g>\n");

    // Client marks: at the send, with a thin line to the answer.
    out.push_str("<g class=\"ops\">\n");
    let mut rows: BTreeMap<&str, Rows> = BTreeMap::new();
    for o in &ops {
        let EventKind::Invoke {
            op,
            key,
            val,
            token,
            version,
            ..
        } = &o.invoke.kind
        else {
            continue;
        };
        let Some(lane) = lane_of.get(o.invoke.node.as_str()) else {
            continue;
        };
        let x = frame.x(o.invoke.true_us);
        let y = lane.top_px + CLIENT_MARK_Y_PX;
        let outcome = o.outcome();
        let (class, said) = outcome_class(outcome);
        if let Some(c) = o.complete {
            svg!(
                out,
                "<line class=\"rl {class}\" x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
                frame.x(c.true_us)
            );
        }
        let what = match op {
            Op::Read => format!("read {key}"),
            Op::Write => format!("write {key}={val:?}"),
        };
        let detail = match outcome {
            Some(OpResult::Ok { val, version }) => format!("ok: {val:?} v{version}"),
            Some(OpResult::Rejected { err })
            | Some(OpResult::Failed { err })
            | Some(OpResult::Unknown { err }) => format!("{said}: {err}"),
            None => "never answered".to_string(),
        };
        svg!(
            out,
            "<g class=\"op\"><title>{}</title>",
            xml_escape(&format!(
                "{} at {:.3} s: {what}, token {token}, version {version} → {detail}",
                o.invoke.node,
                o.invoke.true_us as f64 / 1e6
            ))
        );
        let rejected = matches!(outcome, Some(OpResult::Rejected { .. }));
        mark(
            out,
            *op,
            x,
            y,
            class,
            !matches!(outcome, Some(OpResult::Unknown { .. }) | None),
            rejected,
        );
        out.push_str("</g>\n");
        let label = format!("{}{token}", &op.as_str()[..1]);
        let row_set = rows.entry(o.invoke.node.as_str()).or_insert_with(Rows::new);
        let w = text_width_px(&label, 8.5);
        if let Some(row) = row_set.place(x - w / 2.0, w) {
            svg!(
                out,
                "<text class=\"ol\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
                lane.top_px + CLIENT_LABEL_Y_PX + row as f64 * LABEL_ROW_PX
            );
        }
    }

    // Local lease checks that refused to write, and restarts.
    for e in events {
        let Some(lane) = lane_of.get(e.node.as_str()) else {
            continue;
        };
        let x = frame.x(e.true_us);
        match &e.kind {
            EventKind::LocalCheckRefused { token, deadline_us } => svg!(
                out,
                "<g class=\"refused\"><title>{}</title><path d=\"M{x:.1} {:.1}l5 9h-10z\" \
                 fill=\"#fff\" stroke=\"{UNKNOWN_COLOUR}\" stroke-width=\"1.5\"/></g>\n",
                xml_escape(&format!(
                    "{} at {:.3} s: local lease check refused to write with token {token} \
                     (deadline {:.3} s by its clock)",
                    e.node,
                    e.true_us as f64 / 1e6,
                    *deadline_us as f64 / 1e6
                )),
                lane.top_px + CLIENT_MARK_Y_PX - 5.0
            ),
            EventKind::NodeStarted { incarnation } => svg!(
                out,
                "<g class=\"start\"><title>{} starts (incarnation {incarnation}) at {:.3} s</title>\
                 <path d=\"M{x:.1} {:.1}v10l6 -5z\" fill=\"#555\"/></g>\n",
                xml_escape(&e.node),
                e.true_us as f64 / 1e6,
                lane.top_px + SESSION_Y_PX - 5.0
            ),
            _ => {}
        }
    }

    // Storage marks: accepted filled green, rejected crossed red.
    let mut storage_rows = Rows::new();
    if let Some(storage) = storage {
        for e in events {
            let EventKind::StorageApplied {
                op_id,
                op,
                key,
                version,
                accepted,
                err,
                ..
            } = &e.kind
            else {
                continue;
            };
            let x = frame.x(e.true_us);
            let y = storage.top_px + STORAGE_MARK_Y_PX;
            let inv = op_id
                .and_then(|id| invoked.get(&id))
                .map(|k| ops[*k].invoke);
            let (who, token) = match inv.map(|i| (&i.node, &i.kind)) {
                Some((node, EventKind::Invoke { token, .. })) => (node.as_str(), Some(*token)),
                _ => ("?", None),
            };
            let class = if *accepted { "mo" } else { "mr" };
            svg!(
                out,
                "<g class=\"applied\"><title>{}</title>",
                xml_escape(&format!(
                    "storage at {:.3} s: {} {key} from {who} with version {version}: {}",
                    e.true_us as f64 / 1e6,
                    op.as_str(),
                    if *accepted {
                        "ACCEPTED".to_string()
                    } else {
                        format!("REJECTED ({err})")
                    }
                ))
            );
            mark(out, *op, x, y, class, *accepted, !*accepted);
            out.push_str("</g>\n");
            let label = match token {
                Some(t) => format!("{}{t}", &op.as_str()[..1]),
                None => format!("{}?", &op.as_str()[..1]),
            };
            let w = text_width_px(&label, 8.5);
            if let Some(row) = storage_rows.place(x - w / 2.0, w) {
                svg!(
                    out,
                    "<text class=\"ol\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
                    storage.top_px + STORAGE_LABEL_Y_PX + row as f64 * LABEL_ROW_PX
                );
            }
        }
    }
    out.push_str("</g>\n");
}

fn finding_colour(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::LostUpdate | FindingKind::TokenOrderBreak => VIOLATION_COLOUR,
        FindingKind::StaleAcceptance => STALE_COLOUR,
        FindingKind::FalseRejection => FALSE_REJECTION_COLOUR,
    }
}

fn draw_findings(
    out: &mut String,
    events: &[crate::history::Event],
    verdict: &Verdict,
    frame: &Frame,
    lane_of: &BTreeMap<&str, &Lane>,
) {
    let (lanes_top_px, lanes_bottom_px) = (frame.lanes_top_px, frame.lanes_bottom_px);
    // Group by event: one halo per event, its badge lists the findings' numbers.
    let mut by_event: BTreeMap<usize, Vec<(usize, FindingKind)>> = BTreeMap::new();
    for (n, f) in verdict.findings.iter().enumerate() {
        by_event.entry(f.event).or_default().push((n + 1, f.kind));
    }
    out.push_str("<g class=\"findings\">\n");
    for (event, found) in &by_event {
        let Some(e) = events.get(*event) else {
            continue;
        };
        let Some(lane) = lane_of.get(e.node.as_str()) else {
            continue;
        };
        let y = match lane.kind {
            LaneKind::Storage => lane.top_px + STORAGE_MARK_Y_PX,
            _ => lane.top_px + CLIENT_MARK_Y_PX,
        };
        // The worst finding at the event picks the colour.
        let worst = found
            .iter()
            .map(|(_, k)| *k)
            .min_by_key(|k| match k {
                FindingKind::LostUpdate | FindingKind::TokenOrderBreak => 0,
                FindingKind::StaleAcceptance => 1,
                FindingKind::FalseRejection => 2,
            })
            .unwrap_or(FindingKind::StaleAcceptance);
        let colour = finding_colour(worst);
        let x = frame.x(e.true_us);
        let numbers: Vec<String> = found.iter().map(|(n, _)| n.to_string()).collect();
        let badge = format!("[{}]", numbers.join(","));
        let words: Vec<&str> = found.iter().map(|(_, k)| k.as_str()).collect();
        let badge = format!("{badge} {}", dedup_keep_order(&words).join(", "));
        // Right of the halo, unless that runs off the picture.
        let (badge_x, anchor) = if x + 13.0 + text_width_px(&badge, 10.0) < frame.width_px - 4.0 {
            (x + 13.0, "start")
        } else {
            (x - 13.0, "end")
        };
        svg!(
            out,
            "<g class=\"finding\" data-event=\"{event}\"><title>{}</title>\
             <line x1=\"{x:.1}\" y1=\"{lanes_top_px:.1}\" x2=\"{x:.1}\" y2=\"{lanes_bottom_px:.1}\" \
             stroke=\"{colour}\" stroke-width=\"1\" stroke-dasharray=\"4 3\" stroke-opacity=\"0.7\"/>\
             <circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"11\" fill=\"{colour}\" fill-opacity=\"0.15\" \
             stroke=\"{colour}\" stroke-width=\"2.5\"/>\
             <text class=\"badge\" x=\"{badge_x:.1}\" y=\"{:.1}\" fill=\"{colour}\" \
             text-anchor=\"{anchor}\">{}</text></g>\n",
            xml_escape(
                &found
                    .iter()
                    .filter_map(|(n, _)| verdict.findings.get(n - 1))
                    .map(|f| format!("{}: {}", f.kind.as_str(), f.detail))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            lane.top_px + 11.0,
            xml_escape(&badge),
        );
    }
    out.push_str("</g>\n");
}

fn dedup_keep_order<'a>(words: &[&'a str]) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    words.iter().copied().filter(|w| seen.insert(*w)).collect()
}

/// A legend entry: a small picture and its words.
struct LegendItem {
    glyph: &'static str,
    words: &'static str,
}

fn legend_items() -> Vec<LegendItem> {
    // Each glyph is drawn in a 36×14 box whose top-left is (0, 0).
    vec![
        LegendItem {
            glyph: "<rect x=\"0\" y=\"1\" width=\"36\" height=\"12\" fill=\"#1f77b4\" fill-opacity=\"0.25\" stroke=\"#1f77b4\"/>",
            words: "client believes it holds the lock (acquired → its last op before releasing; lease lost; crash)",
        },
        LegendItem {
            glyph: "<rect x=\"0\" y=\"3\" width=\"36\" height=\"8\" fill=\"#1f77b4\"/>",
            words: "etcd holds the lock for it (until a higher token is acquired or it releases)",
        },
        LegendItem {
            glyph: "<rect x=\"0\" y=\"1\" width=\"36\" height=\"12\" fill=\"url(#zombie)\" stroke=\"#d50000\"/>",
            words: "believes it holds the lock, but etcd has moved on",
        },
        LegendItem {
            glyph: "<line x1=\"0\" y1=\"7\" x2=\"36\" y2=\"7\" stroke=\"#555\" stroke-width=\"1.2\" stroke-dasharray=\"3 2\"/>",
            words: "lease session, granted until lost, revoked or crashed",
        },
        LegendItem {
            glyph: "<rect x=\"0\" y=\"0\" width=\"36\" height=\"14\" fill=\"url(#pause)\" stroke=\"#666\" stroke-width=\"0.6\"/>",
            words: "paused (GC pause; on etcd, a stall)",
        },
        LegendItem {
            glyph: "<rect x=\"0\" y=\"0\" width=\"36\" height=\"14\" fill=\"url(#crash)\" stroke=\"#666\" stroke-width=\"0.6\"/>",
            words: "crashed, until restarted",
        },
        LegendItem {
            glyph: "<rect x=\"0\" y=\"0\" width=\"36\" height=\"14\" fill=\"url(#partition)\" stroke=\"#666\" stroke-width=\"0.6\"/>",
            words: "partitioned (on both nodes' lanes)",
        },
        LegendItem {
            glyph: "<rect x=\"0\" y=\"0\" width=\"36\" height=\"14\" fill=\"url(#hold)\" stroke=\"#666\" stroke-width=\"0.6\"/>",
            words: "storage request held in the network",
        },
        LegendItem {
            glyph: "<circle cx=\"8\" cy=\"7\" r=\"3.8\" fill=\"#2e7d32\" stroke=\"#2e7d32\" stroke-width=\"1.4\"/><rect x=\"20.5\" y=\"3.5\" width=\"7\" height=\"7\" fill=\"#2e7d32\" stroke=\"#2e7d32\" stroke-width=\"1.4\"/>",
            words: "read ○ / write □, labelled r/w + token (client: at send; storage: at apply)",
        },
        LegendItem {
            glyph: "<rect x=\"4.5\" y=\"3.5\" width=\"7\" height=\"7\" fill=\"#fff\" stroke=\"#c62828\" stroke-width=\"1.4\"/><path d=\"M3 2l10 10m0 -10l-10 10\" stroke=\"#c62828\" stroke-width=\"1.8\"/><line x1=\"18\" y1=\"7\" x2=\"36\" y2=\"7\" stroke=\"#2e7d32\" stroke-width=\"1.2\"/>",
            words: "crossed red: rejected · green: ok · line: send → apply",
        },
        LegendItem {
            glyph: "<circle cx=\"8\" cy=\"7\" r=\"3.8\" fill=\"#fff\" stroke=\"#ef6c00\" stroke-width=\"1.4\"/><circle cx=\"26\" cy=\"7\" r=\"3.8\" fill=\"#9e9e9e\" stroke=\"#9e9e9e\" stroke-width=\"1.4\"/>",
            words: "hollow orange: no answer (timeout, crash) · grey: failed to send",
        },
        LegendItem {
            glyph: "<circle cx=\"9\" cy=\"7\" r=\"6.5\" fill=\"#d50000\" fill-opacity=\"0.15\" stroke=\"#d50000\" stroke-width=\"2\"/><circle cx=\"27\" cy=\"7\" r=\"6.5\" fill=\"#ff8f00\" fill-opacity=\"0.15\" stroke=\"#ff8f00\" stroke-width=\"2\"/>",
            words: "checker finding [n]: red violation, orange stale acceptance, purple false rejection",
        },
        LegendItem {
            glyph: "<path d=\"M18 9l-4 -7h8z\" fill=\"#000\"/>",
            words: "clock step of the node's clock (skew is on the lane label)",
        },
        LegendItem {
            glyph: "<path d=\"M18 2l5 9h-10z\" fill=\"#fff\" stroke=\"#ef6c00\" stroke-width=\"1.5\"/>",
            words: "local lease check refused to write",
        },
    ]
}

fn draw_legend(out: &mut String, items: &[LegendItem], cols: usize, top_px: f64, width_px: f64) {
    let col_px = (width_px - 40.0) / cols as f64;
    svg!(
        out,
        "<g class=\"legend\">\n<text class=\"head\" x=\"20\" y=\"{:.1}\">Legend</text>\n",
        top_px + 12.0
    );
    for (i, item) in items.iter().enumerate() {
        let (row, col) = (i / cols, i % cols);
        let x = 20.0 + col as f64 * col_px;
        let y = top_px + 24.0 + row as f64 * 22.0;
        svg!(
            out,
            "<g transform=\"translate({x:.1},{y:.1})\">{}</g><text class=\"small\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            item.glyph,
            x + 44.0,
            y + 11.0,
            xml_escape(item.words)
        );
    }
    out.push_str("</g>\n");
}

/// A titled list of lines under the picture: the findings, the fault plan.
struct NoteList<'a> {
    group: &'a str,
    head: String,
    /// What to say when there is nothing to list.
    empty: &'a str,
    /// Text class and line height of the items.
    class: &'a str,
    first_px: f64,
    line_px: f64,
    /// Each item's text, and its colour when it has one.
    items: Vec<(Option<&'static str>, String)>,
}

fn draw_note_list(out: &mut String, list: NoteList<'_>, top_px: f64) {
    svg!(
        out,
        "<g class=\"{}\">\n<text class=\"head\" x=\"20\" y=\"{:.1}\">{}</text>\n",
        list.group,
        top_px + 12.0,
        xml_escape(&list.head)
    );
    if list.items.is_empty() {
        svg!(
            out,
            "<text class=\"{}\" x=\"20\" y=\"{:.1}\">{}</text>\n",
            list.class,
            top_px + list.first_px,
            xml_escape(list.empty)
        );
    }
    for (n, (fill, text)) in list.items.iter().enumerate().take(NOTES_MAX) {
        let fill = fill.map_or(String::new(), |c| format!(" fill=\"{c}\""));
        svg!(
            out,
            "<text class=\"{}\" x=\"20\" y=\"{:.1}\"{fill}>{}</text>\n",
            list.class,
            top_px + list.first_px + n as f64 * list.line_px,
            xml_escape(text)
        );
    }
    if list.items.len() > NOTES_MAX {
        svg!(
            out,
            "<text class=\"{}\" x=\"20\" y=\"{:.1}\">… and {} more</text>\n",
            list.class,
            top_px + list.first_px + NOTES_MAX as f64 * list.line_px,
            list.items.len() - NOTES_MAX
        );
    }
    out.push_str("</g>\n");
}

fn draw_finding_list(out: &mut String, verdict: &Verdict, top_px: f64) {
    let items = verdict
        .findings
        .iter()
        .enumerate()
        .map(|(n, f)| {
            let text = format!(
                "[{}] {:.3} s  {}  {}: {}",
                n + 1,
                f.true_us as f64 / 1e6,
                f.node,
                f.kind.as_str(),
                f.detail
            );
            (Some(finding_colour(f.kind)), text)
        })
        .collect();
    let list = NoteList {
        group: "finding-list",
        head: format!("Findings ({})", verdict.findings.len()),
        empty: "none: every accepted operation kept token order and no update was lost",
        class: "note",
        first_px: 30.0,
        line_px: 17.0,
        items,
    };
    draw_note_list(out, list, top_px);
}

fn draw_fault_list(out: &mut String, plan: &FaultPlan, top_px: f64) {
    let list = NoteList {
        group: "fault-list",
        head: format!("Fault plan ({} fault(s))", plan.faults.len()),
        empty: "none",
        class: "small",
        first_px: 28.0,
        line_px: 15.0,
        items: plan.faults.iter().map(|f| (None, f.describe())).collect(),
    };
    draw_note_list(out, list, top_px);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker;
    use crate::history::Event;
    use crate::nemesis::{Fault, Trigger};

    fn ev(true_us: u64, node: &str, kind: EventKind) -> Event {
        Event {
            true_us,
            perceived_us: Some(true_us as i64),
            node: node.into(),
            kind,
        }
    }

    fn write(op_id: u64, token: i64) -> EventKind {
        EventKind::Invoke {
            op_id,
            op: Op::Write,
            key: "key0".into(),
            val: format!("v<{token}>"),
            version: token,
            lease_id: token * 10,
            token,
        }
    }

    fn applied(op_id: u64, token: i64) -> EventKind {
        EventKind::StorageApplied {
            op_id: Some(op_id),
            op: Op::Write,
            key: "key0".into(),
            val: format!("v<{token}>"),
            version: token,
            accepted: true,
            err: String::new(),
        }
    }

    fn ok(op_id: u64) -> EventKind {
        EventKind::Complete {
            op_id,
            outcome: OpResult::Ok {
                val: String::new(),
                version: 0,
            },
        }
    }

    /// The walkthrough by hand: client1 paused past its lease writes after client2.
    fn walkthrough() -> History {
        History {
            events: vec![
                ev(
                    8_000,
                    "client1",
                    EventKind::LeaseGranted {
                        lease_id: 20,
                        ttl_s: 2,
                    },
                ),
                ev(
                    21_000,
                    "client1",
                    EventKind::Acquired {
                        lease_id: 20,
                        token: 2,
                    },
                ),
                ev(
                    21_000,
                    "client1",
                    EventKind::Fault {
                        what: "paused at after-acquire #1 for 5000 ms".into(),
                    },
                ),
                ev(
                    1_013_000,
                    "client2",
                    EventKind::LeaseGranted {
                        lease_id: 40,
                        ttl_s: 2,
                    },
                ),
                ev(
                    2_011_000,
                    "client2",
                    EventKind::Acquired {
                        lease_id: 40,
                        token: 4,
                    },
                ),
                ev(2_012_000, "client2", write(1, 4)),
                ev(2_017_000, STORAGE, applied(1, 4)),
                ev(2_021_000, "client2", ok(1)),
                ev(
                    2_052_000,
                    "client2",
                    EventKind::Released {
                        lease_id: 40,
                        token: 4,
                    },
                ),
                ev(
                    5_020_000,
                    "client1",
                    EventKind::Fault {
                        what: "resumed".into(),
                    },
                ),
                ev(5_021_000, "client1", write(2, 2)),
                ev(
                    5_028_000,
                    "client1",
                    EventKind::LeaseLost {
                        lease_id: 20,
                        why: "gone & <lost>".into(),
                    },
                ),
                ev(5_034_000, STORAGE, applied(2, 2)),
                ev(5_043_000, "client1", ok(2)),
            ],
            ..History::default()
        }
    }

    fn plan() -> FaultPlan {
        FaultPlan {
            faults: vec![
                Fault::Pause {
                    node: "client1".into(),
                    at: Trigger::AtMs(21),
                    duration_ms: 5_000,
                },
                Fault::Skew {
                    node: "client2".into(),
                    skew: Skew {
                        offset_ms: -150,
                        drift_ppm: 400,
                        steps: vec![crate::clock::ClockStep {
                            at_ms: 3_000,
                            delta_ms: 700,
                        }],
                    },
                },
            ],
        }
    }

    fn count(doc: &roxmltree::Document<'_>, class: &str) -> usize {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .count()
    }

    #[test]
    fn walkthrough_picture_is_well_formed_with_lanes_and_highlights() {
        let history = walkthrough();
        let verdict = checker::check(&history);
        assert!(verdict.violates());
        let scenario = Scenario::seed_story(2);
        let svg = render(
            &history,
            &verdict,
            &scenario,
            &plan(),
            "walk <&> \"through\"",
        );
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let lanes: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("lane"))
            .filter_map(|n| n.attribute("data-node"))
            .collect();
        assert_eq!(lanes, ["client1", "client2", "etcd", "storage"]);
        // Both findings are on one event: one halo, listing both.
        assert_eq!(count(&doc, "finding"), 1);
        assert!(svg.contains("[1,2]"));
        assert_eq!(count(&doc, "zombie"), 1, "client1 believes past etcd");
        assert_eq!(count(&doc, "fault"), 1, "one pause");
        assert_eq!(count(&doc, "step"), 1, "client2's clock step");
        assert!(svg.contains("clock -150 ms, +400 ppm"));
        assert!(svg.contains("walk &lt;&amp;&gt; &quot;through&quot;"));
        assert_eq!(
            svg,
            render(
                &history,
                &verdict,
                &scenario,
                &plan(),
                "walk <&> \"through\""
            )
        );
    }

    /// The picture of a two-client story history, with the checker's findings.
    fn story_picture(history: &History) -> String {
        let verdict = checker::check(history);
        render(
            history,
            &verdict,
            &Scenario::seed_story(2),
            &FaultPlan::none(),
            "t",
        )
    }

    #[test]
    fn a_network_window_spans_every_lane_and_no_lane_is_named_network() {
        let mut history = walkthrough();
        let note = |what: &str| EventKind::Fault { what: what.into() };
        history.events.push(ev(
            1_000_000,
            NETWORK,
            note("network degraded: latency 1..2 ms, loss 5‰"),
        ));
        history
            .events
            .push(ev(2_000_000, NETWORK, note("network restored")));
        history.events.push(ev(
            3_000_000,
            NETWORK,
            note("network degraded: latency 3..4 ms, loss 0‰"),
        ));
        history.events.sort_by_key(|e| e.true_us);
        let svg = story_picture(&history);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        // One closed window, one to the end of the run.
        assert_eq!(count(&doc, "network"), 2);
        assert!(svg.contains("(to the end)"));
        assert!(!svg.contains(">network</text>"), "no lane for the network");
    }

    #[test]
    fn no_findings_no_highlights() {
        let mut history = walkthrough();
        // Drop client1's stale write: nothing left to find.
        history.events.retain(|e| {
            !matches!(e.kind, EventKind::Invoke { op_id: 2, .. })
                && !matches!(e.kind, EventKind::StorageApplied { op_id: Some(2), .. })
                && !matches!(e.kind, EventKind::Complete { op_id: 2, .. })
        });
        assert!(checker::check(&history).findings.is_empty());
        let svg = story_picture(&history);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert_eq!(count(&doc, "finding"), 0);
        assert!(!svg.contains("class=\"wf\""));
    }

    #[test]
    fn empty_history_still_draws() {
        let svg = render(
            &History::default(),
            &Verdict::default(),
            &Scenario::standard(),
            &FaultPlan::none(),
            "",
        );
        roxmltree::Document::parse(&svg).expect("well-formed XML");
    }
}
