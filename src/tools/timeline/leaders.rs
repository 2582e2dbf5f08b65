//! The members of an etcd cluster on a timeline: when each led, as a band on its lane, and
//! the notes that are no span (leadership changes, the issue-15247 stale leader), as marks
//! whose tooltips give their words.
//!
//! Who led comes from the history's [`EventKind::Leadership`] events. The first member
//! leads from time 0 in term 1 with no event; a member elected leads until it steps down or
//! another member is elected, whichever is first.

use super::layout::{Frame, LEADER_H_PX, LEADER_Y_PX};
use super::model::{block_note, Lane, LaneKind};
use crate::fault::ETCD;
use crate::history::{Event, EventKind};
use crate::svg::{svg, text_width_px, xml_escape};
use std::collections::BTreeMap;

/// The band of a member's time as leader.
const LEADER_FILL: &str = "#ffc107";
const LEADER_STROKE: &str = "#b26a00";

/// A member's time as leader.
#[derive(Debug, Clone)]
pub(super) struct Reign {
    pub(super) node: String,
    pub(super) term: Option<u64>,
    pub(super) start_us: u64,
    pub(super) end_us: u64,
    /// How it began and how it ended, in words.
    pub(super) began: String,
    pub(super) ended: String,
}

/// What a [`Mark`] marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MarkKind {
    Elected,
    SteppedDown,
    /// Any other note of etcd's that is no span.
    Note,
}

/// A moment on a member's lane (or on etcd's, for a note about a role), with its words.
#[derive(Debug, Clone)]
pub(super) struct Mark {
    pub(super) lane: String,
    pub(super) kind: MarkKind,
    pub(super) true_us: u64,
    pub(super) words: String,
}

/// Who led when, given the member lanes in order (none: no cluster of several, no reign).
pub(super) fn reigns(events: &[Event], members: &[&str], end_us: u64) -> Vec<Reign> {
    let Some(first) = members.first() else {
        return Vec::new();
    };
    let mut done = Vec::new();
    let mut open = Some(Reign {
        node: first.to_string(),
        term: Some(1),
        start_us: 0,
        end_us,
        began: "the first leader, from the start".into(),
        ended: String::new(),
    });
    for e in events {
        let EventKind::Leadership { leader, what } = &e.kind else {
            continue;
        };
        let ends = match leader {
            Some(l) => Some(format!("until {l} was elected")),
            // A member that no longer leads in the cluster's eyes may step down later.
            None if open.as_ref().is_some_and(|r| r.node == e.node) => Some(format!("then {what}")),
            None => None,
        };
        if let Some((ended, mut r)) = ends.and_then(|ended| Some((ended, open.take()?))) {
            r.end_us = e.true_us;
            r.ended = ended;
            done.push(r);
        }
        if let Some(l) = leader {
            open = Some(Reign {
                node: l.clone(),
                term: term_of(what),
                start_us: e.true_us,
                end_us,
                began: what.clone(),
                ended: String::new(),
            });
        }
    }
    if let Some(mut r) = open {
        r.ended = "to the end".into();
        done.push(r);
    }
    done
}

/// The term in `elected leader of term T; ...`.
fn term_of(what: &str) -> Option<u64> {
    let rest = what.strip_prefix("elected leader of term ")?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// The marks: every leadership event on its member's lane, every other note on a member
/// that is no span, and every note about a role (`etcd:leader` when nobody led) on etcd's.
pub(super) fn marks(events: &[Event], lane_of: &BTreeMap<&str, &Lane>) -> Vec<Mark> {
    let member = |node: &str| {
        lane_of
            .get(node)
            .is_some_and(|l| l.kind == LaneKind::Member)
    };
    let mut marks = Vec::new();
    for e in events {
        let (lane, kind, words) = match &e.kind {
            EventKind::Leadership { leader, what } if member(&e.node) => {
                let kind = match leader {
                    Some(_) => MarkKind::Elected,
                    None => MarkKind::SteppedDown,
                };
                (e.node.as_str(), kind, what.clone())
            }
            EventKind::Fault { what } if member(&e.node) && block_note(what).is_none() => {
                (e.node.as_str(), MarkKind::Note, what.clone())
            }
            EventKind::Fault { what }
                if e.node.starts_with("etcd:") && lane_of.contains_key(ETCD) =>
            {
                (ETCD, MarkKind::Note, format!("{}: {what}", e.node))
            }
            _ => continue,
        };
        marks.push(Mark {
            lane: lane.to_string(),
            kind,
            true_us: e.true_us,
            words,
        });
    }
    marks
}

/// Draws the reigns and the marks; nothing at all when there are none (one member).
pub(super) fn draw_leaders(
    out: &mut String,
    events: &[Event],
    lanes: &[Lane],
    lane_of: &BTreeMap<&str, &Lane>,
    frame: &Frame,
) {
    let members: Vec<&str> = lanes
        .iter()
        .filter(|l| l.kind == LaneKind::Member)
        .map(|l| l.node.as_str())
        .collect();
    let reigns = reigns(events, &members, frame.end_us);
    let marks = marks(events, lane_of);
    if reigns.is_empty() && marks.is_empty() {
        return;
    }
    out.push_str("<g class=\"leaders\">\n");
    for r in &reigns {
        if let Some(lane) = lane_of.get(r.node.as_str()) {
            draw_reign(out, r, lane, frame);
        }
    }
    for m in &marks {
        if let Some(lane) = lane_of.get(m.lane.as_str()) {
            draw_mark(out, m, lane, frame);
        }
    }
    out.push_str("</g>\n");
}

fn draw_reign(out: &mut String, r: &Reign, lane: &Lane, frame: &Frame) {
    let (x0, x1) = (frame.x(r.start_us), frame.x(r.end_us));
    let width_px = (x1 - x0).max(1.0);
    let y = lane.top_px + LEADER_Y_PX;
    let term = r.term.map_or(String::new(), |t| format!(" in term {t}"));
    svg!(
        out,
        "<rect class=\"leader\" data-node=\"{}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{width_px:.1}\" \
         height=\"{LEADER_H_PX:.1}\" fill=\"{LEADER_FILL}\" stroke=\"{LEADER_STROKE}\" \
         stroke-width=\"0.8\"><title>{}</title></rect>\n",
        xml_escape(&r.node),
        xml_escape(&format!(
            "{} leads{term} from {:.3} s to {:.3} s: {}; {}",
            r.node,
            r.start_us as f64 / 1e6,
            r.end_us as f64 / 1e6,
            r.began,
            r.ended
        ))
    );
    let labels = match r.term {
        Some(t) => vec![
            format!("leader, term {t}"),
            format!("term {t}"),
            t.to_string(),
        ],
        None => vec!["leader".to_string()],
    };
    if let Some(label) = labels
        .into_iter()
        .find(|l| text_width_px(l, 8.5) + 9.0 < width_px)
    {
        svg!(
            out,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>\n",
            x0 + 6.0,
            y + LEADER_H_PX - 2.5,
            xml_escape(&label)
        );
    }
}

fn draw_mark(out: &mut String, m: &Mark, lane: &Lane, frame: &Frame) {
    let x = frame.x(m.true_us);
    let title = xml_escape(&format!(
        "{} at {:.3} s: {}",
        m.lane,
        m.true_us as f64 / 1e6,
        m.words
    ));
    let y = match lane.kind {
        LaneKind::Member => lane.top_px + LEADER_Y_PX + LEADER_H_PX / 2.0,
        _ => lane.top_px + 8.0,
    };
    let (class, shape) = match m.kind {
        MarkKind::Elected => (
            "leadership",
            format!(
                "<path d=\"M{x:.1} {:.1}l4.5 4.5l-4.5 4.5l-4.5 -4.5z\" fill=\"{LEADER_STROKE}\"/>",
                y - 4.5
            ),
        ),
        MarkKind::SteppedDown => (
            "leadership",
            format!(
                "<path d=\"M{x:.1} {:.1}l4.5 4.5l-4.5 4.5l-4.5 -4.5z\" fill=\"#fff\" \
                 stroke=\"{LEADER_STROKE}\" stroke-width=\"1.4\"/>",
                y - 4.5
            ),
        ),
        MarkKind::Note => (
            "etcd-note",
            format!(
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"#fff\" stroke=\"#333\" \
                 stroke-width=\"1.2\"/>"
            ),
        ),
    };
    svg!(
        out,
        "<g class=\"{class}\"><title>{title}</title>{shape}</g>\n"
    );
}
