//! The SVG document of a timeline: its frame, lanes and axes, the faults on the lanes, and
//! the lock as each client believes it holds it and as etcd holds it.

use super::findings::draw_findings;
use super::layout::{
    tick_step_s, Frame, AXIS_PX, BELIEF_H_PX, BELIEF_Y_PX, ETCD_BAR_H_PX, ETCD_BAR_Y_PX,
    ETCD_SEG_H_PX, ETCD_SEG_Y_PX, LEFT_PX, PLOT_PX_AIM, PLOT_PX_MAX, PLOT_PX_MIN, PX_PER_S_MAX,
    PX_PER_S_MIN, RIGHT_PX, SESSION_Y_PX, TITLE_PX,
};
use super::leaders::draw_leaders;
use super::model::{
    blocks, holdings, lanes, network_windows, sessions, Block, BlockKind, Holding, Lane, LaneKind,
    Session,
};
use super::notes::{
    draw_fault_list, draw_finding_list, draw_legend, legend_items, LegendItem, NOTES_MAX,
};
use super::ops::{draw_ops, OPS_CSS};
use super::redis::draw_redis;
use super::EVENTS_DRAWN_MAX;
use crate::checker::Verdict;
use crate::clock::Skew;
use crate::fault::{FaultPlan, ETCD, REDIS};
use crate::history::{Event, History};
use crate::scenario::Scenario;
use crate::svg::{svg, text_width_px, xml_escape};
use std::collections::{BTreeMap, BTreeSet};

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
    let lanes = lanes(history, scenario);
    let (frame, tick_s) = frame_of(events, &lanes);
    let lane_of: BTreeMap<&str, &Lane> = lanes.iter().map(|l| (l.node.as_str(), l)).collect();
    let members = lanes.iter().filter(|l| l.kind == LaneKind::Member).count();
    let redis = lanes.iter().filter(|l| l.kind == LaneKind::Redis).count();
    let notes = Notes::place(&frame, (members, redis), verdict, plan);

    let mut out = String::with_capacity(64 * 1024 + events.len() * 300);
    draw_document_head(&mut out, title, frame.width_px, notes.height_px);
    // Title and the verdict in words.
    let cut = (drawn < history.events.len()).then_some((drawn, history.events.len()));
    draw_heading(&mut out, title, verdict, scenario, (members, redis), cut);
    // Lanes (background, name, clock), then the grid and axes.
    for (i, lane) in lanes.iter().enumerate() {
        draw_lane(&mut out, i, lane, &frame, plan);
    }
    draw_axis(&mut out, &frame, tick_s, AxisLabels::Above);
    draw_axis(&mut out, &frame, tick_s, AxisLabels::Below);
    // Windows of a degraded network span every lane, behind everything else.
    draw_network(&mut out, &history.events, &frame);
    // Faults behind everything else on the lanes.
    let blocks = blocks(events, frame.end_us);
    draw_faults(&mut out, &blocks, &lanes, &lane_of, &frame, plan);
    // Who led the cluster when, over the members' faults.
    draw_leaders(&mut out, events, &lanes, &lane_of, &frame);
    // Sessions, beliefs and etcd's view; on Redlock, the beliefs and the Redis nodes' grants.
    match redis {
        0 => draw_locks(&mut out, events, &frame, &lane_of),
        n => {
            draw_redlock_beliefs(&mut out, history, &frame, &lane_of, n / 2 + 1);
            draw_redis(&mut out, history, &frame, &lane_of);
        }
    }
    // Operations: lines from the client's send to the storage's apply, then the marks.
    let finding_events: BTreeSet<usize> = verdict.findings.iter().map(|f| f.event).collect();
    draw_ops(&mut out, history, drawn, &frame, &lane_of, &finding_events);
    // Findings: a halo and a numbered badge at the event, a line through every lane.
    draw_findings(&mut out, events, verdict, &frame, &lane_of);
    // Notes.
    draw_legend(
        &mut out,
        &notes.legend,
        notes.legend_cols,
        notes.legend_top_px,
        frame.width_px,
    );
    draw_finding_list(&mut out, verdict, notes.findings_top_px);
    draw_fault_list(&mut out, plan, notes.faults_top_px);
    out.push_str("</svg>\n");
    out
}

/// The scale across: whole ticks of true time with a little room after the last event, and
/// where the lanes start and end; with the tick step in seconds.
fn frame_of(events: &[Event], lanes: &[Lane]) -> (Frame, f64) {
    let last_us = events.iter().map(|e| e.true_us).max().unwrap_or(0);
    let tick_s = tick_step_s(last_us as f64 / 1e6);
    let ticks = ((last_us as f64 / 1e6 + tick_s * 0.25) / tick_s)
        .ceil()
        .max(1.0);
    let end_us = ((ticks * tick_s * 1e6) as u64).max(1);
    let span_s = end_us as f64 / 1e6;
    let px_per_s = (PLOT_PX_AIM / span_s).clamp(PX_PER_S_MIN, PX_PER_S_MAX);
    let plot_px = (span_s * px_per_s).clamp(PLOT_PX_MIN, PLOT_PX_MAX);
    let lanes_top_px = TITLE_PX + AXIS_PX;
    let lanes_bottom_px = lanes
        .last()
        .map_or(lanes_top_px, |l| l.top_px + l.height_px);
    let frame = Frame {
        plot_px,
        end_us,
        width_px: LEFT_PX + plot_px + RIGHT_PX,
        lanes_top_px,
        lanes_bottom_px,
    };
    (frame, tick_s)
}

/// The notes under the picture: legend, findings, faults. Their height is known up front so
/// the SVG's size can be given in its root element.
struct Notes {
    legend: Vec<LegendItem>,
    legend_cols: usize,
    legend_top_px: f64,
    findings_top_px: f64,
    faults_top_px: f64,
    /// The whole picture's height.
    height_px: f64,
}

impl Notes {
    /// `lanes` counts the member lanes and the Redis lanes (what the legend explains).
    fn place(frame: &Frame, lanes: (usize, usize), verdict: &Verdict, plan: &FaultPlan) -> Notes {
        let legend = legend_items(lanes.0, lanes.1);
        let legend_cols = ((frame.width_px - 40.0) / 440.0).floor().clamp(1.0, 4.0) as usize;
        let legend_rows = legend.len().div_ceil(legend_cols);
        let legend_top_px = frame.lanes_bottom_px + AXIS_PX + 24.0;
        let findings_top_px = legend_top_px + 26.0 + legend_rows as f64 * 22.0 + 16.0;
        let finding_lines = verdict.findings.len().min(NOTES_MAX) + 1;
        let faults_top_px = findings_top_px + 20.0 + finding_lines as f64 * 17.0 + 12.0;
        let fault_lines = plan.faults.len().min(NOTES_MAX) + 1;
        let height_px = faults_top_px + 20.0 + fault_lines as f64 * 15.0 + 16.0;
        Notes {
            legend,
            legend_cols,
            legend_top_px,
            findings_top_px,
            faults_top_px,
            height_px,
        }
    }
}

/// The XML declaration, the root element with the picture's size, its title, the styles and
/// the white page.
fn draw_document_head(out: &mut String, title: &str, width_px: f64, height_px: f64) {
    svg!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\">\n",
        w = width_px,
        h = height_px
    );
    svg!(out, "<title>{}</title>\n", xml_escape(title));
    defs(out);
    svg!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{width_px:.0}\" height=\"{height_px:.0}\" fill=\"#fff\"/>\n"
    );
}

/// Sessions, what each client believes and what etcd holds.
fn draw_locks(out: &mut String, events: &[Event], frame: &Frame, lane_of: &BTreeMap<&str, &Lane>) {
    out.push_str("<g class=\"locks\">\n");
    draw_sessions(out, &sessions(events, frame.end_us), lane_of, frame);
    for h in &holdings(events, frame.end_us) {
        let Some(lane) = lane_of.get(h.node.as_str()) else {
            continue;
        };
        draw_belief(out, h, lane, frame, "etcd has moved on");
        draw_etcd_holding(out, h, lane, frame, lane_of.get(ETCD).copied());
    }
    out.push_str("</g>\n");
}

/// What each Redlock client believes, and where it outlives a quorum of Redis nodes holding
/// its key: a Redlock holder has no lock service's view of its own, only the nodes'.
fn draw_redlock_beliefs(
    out: &mut String,
    history: &History,
    frame: &Frame,
    lane_of: &BTreeMap<&str, &Lane>,
    quorum: usize,
) {
    out.push_str("<g class=\"locks\">\n");
    let losses = crate::redlock_story::quorum_losses(history, quorum);
    for mut h in holdings(&history.events, frame.end_us) {
        let Some(lane) = lane_of.get(h.node.as_str()) else {
            continue;
        };
        let lost_us = losses.get(&(h.node.clone(), h.start_us)).copied();
        h.etcd_end_us = lost_us.unwrap_or(h.end_us).clamp(h.start_us, h.end_us);
        draw_belief(
            out,
            &h,
            lane,
            frame,
            "fewer than a quorum of Redis nodes hold its key",
        );
    }
    out.push_str("</g>\n");
}

/// Windows of a degraded network, across every lane.
fn draw_network(out: &mut String, events: &[Event], frame: &Frame) {
    let (lanes_top_px, lanes_bottom_px) = (frame.lanes_top_px, frame.lanes_bottom_px);
    for (start_us, end_us, label) in network_windows(events, frame.end_us) {
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
}

/// The faults on the lanes (pauses, crashes, partitions, held requests) and the clock steps.
fn draw_faults(
    out: &mut String,
    blocks: &[Block],
    lanes: &[Lane],
    lane_of: &BTreeMap<&str, &Lane>,
    frame: &Frame,
    plan: &FaultPlan,
) {
    out.push_str("<g class=\"faults\">\n");
    for b in blocks {
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
            "<text class=\"fault-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            x0 + 3.0,
            lane.top_px + lane.height_px - 6.0,
            xml_escape(&b.label)
        );
    }
    for lane in lanes {
        draw_steps(out, lane, frame, plan);
    }
    out.push_str("</g>\n");
}

/// Lease sessions as dashed lines on the clients' lanes.
fn draw_sessions(
    out: &mut String,
    sessions: &[Session],
    lane_of: &BTreeMap<&str, &Lane>,
    frame: &Frame,
) {
    for s in sessions {
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
}

/// The title, and under it the verdict and the run's shape in words; `cut` is (drawn, all)
/// when not every event is drawn.
fn draw_heading(
    out: &mut String,
    title: &str,
    verdict: &Verdict,
    scenario: &Scenario,
    (members, redis): (usize, usize),
    cut: Option<(usize, usize)>,
) {
    svg!(
        out,
        "<text x=\"20\" y=\"28\" class=\"title\">{}</text>\n",
        xml_escape(title)
    );
    let (verdict_class, verdict_word) = match verdict.violates() {
        true => ("bad", "VIOLATED"),
        false => ("good", "safe"),
    };
    let cluster = match (members, redis) {
        (0, 0) => String::new(),
        (0, n) => format!(" · {n} Redis node(s), quorum {}", n / 2 + 1),
        (n, _) => format!(" · etcd cluster of {n} members"),
    };
    let cut = cut.map_or(String::new(), |(drawn, all)| {
        format!(" · only the first {drawn} of {all} events drawn")
    });
    svg!(
        out,
        "<text x=\"20\" y=\"50\" class=\"sub\"><tspan class=\"{verdict_class}\">{verdict_word}</tspan> \
         lost updates {}, token-order breaks {}, stale acceptances {}, false rejections {} \
         · {} client(s), TTL {} s{cluster}{cut}</text>\n",
        verdict.lost_updates,
        verdict.token_order_breaks,
        verdict.stale_acceptances,
        verdict.false_rejections,
        scenario.clients,
        scenario.ttl_s,
    );
}

impl BlockKind {
    pub(super) fn fill(self) -> &'static str {
        match self {
            BlockKind::Pause => "url(#pause)",
            BlockKind::Crash => "url(#crash)",
            BlockKind::Partition => "url(#partition)",
            BlockKind::Hold => "url(#hold)",
        }
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
.fault-label{font-size:9px;fill:#333;font-style:italic}\n\
.label{font-size:8.5px;fill:#333}\n\
.tok{font-size:9px;fill:#fff;font-weight:bold}\n\
.badge{font-size:10px;font-weight:bold}\n\
.note{font-size:12px}\n\
.small{font-size:11px;fill:#444}\n\
.head{font-size:12px;font-weight:bold}\n\
",
    );
    out.push_str(OPS_CSS);
    out.push_str(
        "</style>\n\
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
        // Thin: its words go beside its name.
        LaneKind::Member => {
            svg!(
                out,
                "<text class=\"clock\" x=\"{:.1}\" y=\"{:.1}\">member</text>\n",
                20.0 + text_width_px(&lane.node, 13.0),
                lane.top_px + 19.0
            );
            Vec::new()
        }
        // Thin: one line, the steps when they are all its clock does.
        LaneKind::Redis => {
            let skew = plan.skew_of_member(&lane.node, REDIS);
            let mut notes = skew_notes(&skew);
            let only_steps = skew.offset_ms == 0 && skew.drift_ppm == 0;
            vec![match (only_steps, notes.len()) {
                (true, 2) => notes.remove(1),
                _ => notes.remove(0),
            }]
        }
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
    let skew = match lane.kind {
        LaneKind::Client => plan.skew_of(&lane.node),
        // A Redis node's clock is its own skew, else its group's (as the world sets it).
        LaneKind::Redis => plan.skew_of_member(&lane.node, REDIS),
        _ => return,
    };
    for step in skew.steps.iter().take(crate::clock::STEPS_MAX) {
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

/// Which of the two axes: the one above the lanes also draws the grid through them, the one
/// below says which way true time runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AxisLabels {
    Above,
    Below,
}

fn draw_axis(out: &mut String, frame: &Frame, tick_s: f64, labels: AxisLabels) {
    let (lanes_top_px, lanes_bottom_px) = (frame.lanes_top_px, frame.lanes_bottom_px);
    let label_y_px = match labels {
        AxisLabels::Above => lanes_top_px - 8.0,
        AxisLabels::Below => lanes_bottom_px + 16.0,
    };
    let ticks = (frame.end_us as f64 / 1e6 / tick_s).round() as u64;
    out.push_str("<g class=\"axis\">\n");
    // Bounded by tick_step_s: at most about 25 ticks.
    for k in 0..=ticks.min(1_000) {
        let t_s = k as f64 * tick_s;
        let x = frame.x((t_s * 1e6).round() as u64);
        if labels == AxisLabels::Above {
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
    if labels == AxisLabels::Below {
        svg!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">true time →</text>\n",
            LEFT_PX + frame.plot_px,
            label_y_px + 14.0
        );
    }
    out.push_str("</g>\n");
}

/// What the client believes, where it outlives the lock service's view (`moved_on` says
/// how), and the token on it.
fn draw_belief(out: &mut String, h: &Holding, lane: &Lane, frame: &Frame, moved_on: &str) {
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
                "{} still believes it holds token {} from {:.3} s to {:.3} s, but {moved_on}",
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
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\">{label}</text>\n",
            x0 + 3.0,
            lane.top_px + BELIEF_Y_PX + 9.5
        );
    }
}

/// etcd's holding: a bar on the client's lane and, when etcd has a lane, the same span on it
/// coloured by client, with the token.
fn draw_etcd_holding(
    out: &mut String,
    h: &Holding,
    lane: &Lane,
    frame: &Frame,
    etcd_lane: Option<&Lane>,
) {
    let x0 = frame.x(h.start_us);
    let xe = frame.x(h.etcd_end_us);
    let secs = |us: u64| us as f64 / 1e6;
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
        if let Some(etcd) = etcd_lane {
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
