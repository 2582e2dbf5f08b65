//! What a timeline says under the picture: the legend, the checker's findings and the fault
//! plan, in words.

use super::findings::finding_colour;
use crate::checker::Verdict;
use crate::fault::FaultPlan;
use crate::svg::{svg, xml_escape};

/// Most lines in the findings list and in the fault list under the picture.
pub(super) const NOTES_MAX: usize = 40;

/// A legend entry: a small picture and its words.
pub(super) struct LegendItem {
    glyph: &'static str,
    words: &'static str,
}

/// The legend; member lanes (`members` > 0) add what only they show, and Redis lanes
/// (`redis` > 0) replace etcd's view of the lock with the nodes'.
pub(super) fn legend_items(members: usize, redis: usize) -> Vec<LegendItem> {
    let mut items = common_legend_items();
    if members > 0 {
        items.extend(member_legend_items());
    }
    if redis > 0 {
        // Items 1 and 2 are etcd's holding and the belief that outlives it.
        items.splice(1..3, redis_legend_items());
    }
    items
}

fn redis_legend_items() -> [LegendItem; 4] {
    [
        LegendItem {
            glyph: "<rect x=\"0\" y=\"1\" width=\"36\" height=\"12\" fill=\"url(#zombie)\" stroke=\"#d50000\"/>",
            words: "client: believes it holds the lock, but fewer than a quorum of Redis nodes hold its key",
        },
        LegendItem {
            glyph: "<rect x=\"0\" y=\"1\" width=\"36\" height=\"12\" fill=\"#1f77b4\" fill-opacity=\"0.8\"/>",
            words: "Redis node holds the lock key for the client (SET NX → deleted, expired or lost)",
        },
        LegendItem {
            glyph: "<line x1=\"0\" y1=\"7\" x2=\"36\" y2=\"7\" stroke=\"#1f77b4\" stroke-width=\"2\" stroke-dasharray=\"4 2\"/>",
            words: "Redis node let the key go, its client still believes it holds the lock",
        },
        LegendItem {
            glyph: "<rect x=\"0\" y=\"0\" width=\"36\" height=\"14\" fill=\"url(#zombie)\" stroke=\"#d50000\" stroke-width=\"1.5\"/>",
            words: "double grant: the node grants the key to another client meanwhile",
        },
    ]
}

fn member_legend_items() -> [LegendItem; 2] {
    [
        LegendItem {
            glyph: "<rect x=\"0\" y=\"1.5\" width=\"36\" height=\"11\" fill=\"#ffc107\" stroke=\"#b26a00\" stroke-width=\"0.8\"/>",
            words: "etcd member leads the cluster (the first from the start; labelled with its term)",
        },
        LegendItem {
            glyph: "<path d=\"M8 2.5l4.5 4.5l-4.5 4.5l-4.5 -4.5z\" fill=\"#b26a00\"/><path d=\"M22 2.5l4.5 4.5l-4.5 4.5l-4.5 -4.5z\" fill=\"#fff\" stroke=\"#b26a00\" stroke-width=\"1.4\"/><circle cx=\"33\" cy=\"7\" r=\"2.5\" fill=\"#fff\" stroke=\"#333\" stroke-width=\"1.2\"/>",
            words: "elected ◆ / stepped down ◇ / other etcd note ○ (words in the tooltip)",
        },
    ]
}

fn common_legend_items() -> Vec<LegendItem> {
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

pub(super) fn draw_legend(
    out: &mut String,
    items: &[LegendItem],
    cols: usize,
    top_px: f64,
    width_px: f64,
) {
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

pub(super) fn draw_finding_list(out: &mut String, verdict: &Verdict, top_px: f64) {
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

pub(super) fn draw_fault_list(out: &mut String, plan: &FaultPlan, top_px: f64) {
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
