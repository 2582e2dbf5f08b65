//! The checker's findings on a timeline: a halo and a numbered badge at each event with
//! findings, and a line through every lane.

use super::layout::{Frame, CLIENT_MARK_Y_PX, STORAGE_MARK_Y_PX};
use super::model::{Lane, LaneKind};
use crate::checker::{FindingKind, Verdict};
use crate::svg::{svg, text_width_px, xml_escape};
use std::collections::{BTreeMap, BTreeSet};

const VIOLATION_COLOUR: &str = "#d50000";
const STALE_COLOUR: &str = "#ff8f00";
const FALSE_REJECTION_COLOUR: &str = "#6a1b9a";

pub(super) fn finding_colour(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::LostUpdate | FindingKind::TokenOrderBreak | FindingKind::InvariantBreak => {
            VIOLATION_COLOUR
        }
        FindingKind::StaleAcceptance => STALE_COLOUR,
        FindingKind::FalseRejection => FALSE_REJECTION_COLOUR,
    }
}

pub(super) fn draw_findings(
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
                FindingKind::LostUpdate
                | FindingKind::TokenOrderBreak
                | FindingKind::InvariantBreak => 0,
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
