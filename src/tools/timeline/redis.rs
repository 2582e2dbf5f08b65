//! The Redis nodes' lanes of a Redlock run: on each, who holds the lock key there (a bar per
//! grant, from `SET NX` to its deletion, expiry or loss in a restart, in the client's colour),
//! the stretch where that client still believes it holds the lock after the node let the key
//! go, and each *double grant* (the node granting the key to another client inside that
//! stretch) hatched in red. Clock steps and crashes are drawn as on every lane.
//!
//! Everything comes from [`redlock_story`](crate::redlock_story), which reads the history: the
//! picture and `demo` tell the same thing.

use super::layout::{Frame, BELIEVES_Y_PX, GRANT_H_PX, GRANT_Y_PX};
use super::model::{Lane, LaneKind};
use crate::history::History;
use crate::redlock_story::{
    belief_of, beliefs, double_grants, index, node_grants, stood_on, Belief, NodeGrant,
};
use crate::svg::{svg, text_width_px, xml_escape};
use std::collections::BTreeMap;

/// Most grants drawn on the Redis lanes: beyond this the lanes are a smear (a run of many
/// clients retrying for minutes), and the rest is left out.
const GRANTS_DRAWN_MAX: usize = 5_000;

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

/// The Redis lanes' grants, what their clients still believe, and the double grants.
pub(super) fn draw_redis(
    out: &mut String,
    history: &History,
    frame: &Frame,
    lane_of: &BTreeMap<&str, &Lane>,
) {
    let redis_lane = |node: &str| {
        lane_of
            .get(node)
            .copied()
            .filter(|l| l.kind == LaneKind::Redis)
    };
    let grants = node_grants(history);
    let beliefs = beliefs(history);
    let index = index(&beliefs);
    out.push_str("<g class=\"redis\">\n");
    for g in grants.iter().take(GRANTS_DRAWN_MAX) {
        let Some(lane) = redis_lane(&g.node) else {
            continue;
        };
        let colour = lane_of.get(g.client.as_str()).map_or("#666", |l| l.colour);
        draw_grant(out, g, lane, frame, colour);
        if let Some(b) = belief_of(g, &index).filter(|b| outlives(g, b)) {
            draw_believes(out, g, b, lane, frame, colour);
        }
    }
    for d in double_grants(history) {
        let Some(lane) = redis_lane(&d.node) else {
            continue;
        };
        let (x0, x1) = (
            frame.x(d.later.start_us),
            frame.x(d.later.end_us.min(d.believed_until_us)),
        );
        svg!(
            out,
            "<rect class=\"double-grant\" data-node=\"{}\" data-earlier=\"{}\" data-later=\"{}\" \
             x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"url(#zombie)\" \
             stroke=\"#d50000\" stroke-width=\"1.5\"><title>{}</title></rect>\n",
            xml_escape(&d.node),
            xml_escape(&d.earlier.client),
            xml_escape(&d.later.client),
            lane.top_px + GRANT_Y_PX - 3.0,
            (x1 - x0).max(2.0),
            GRANT_H_PX + 6.0,
            xml_escape(&format!(
                "DOUBLE GRANT: {} grants {} to {} at {:.3} s while {}, granted it there at {:.3} s, \
                 believes it holds the lock until {:.3} s",
                d.node,
                d.later.key,
                d.later.client,
                secs(d.later.start_us),
                d.earlier.client,
                secs(d.earlier.start_us),
                secs(d.believed_until_us)
            ))
        );
        // Beside the hatching, where the bar's own words leave room. Styled inline: the
        // shared style sheet, and so every etcd picture, stays as it was.
        svg!(
            out,
            "<text class=\"double-label\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"#d50000\" \
             font-weight=\"bold\">double grant</text>\n",
            x0.max(x1) + 3.0,
            lane.top_px + GRANT_Y_PX + 10.5
        );
    }
    out.push_str("</g>\n");
}

/// Whether a grant is one its client's acquisition stood on and the node let the key go
/// (expired, lost) before the client stopped believing.
fn outlives(g: &NodeGrant, b: &Belief) -> bool {
    stood_on(g, b) && g.end_us < b.end_us && g.end_why != "deleted"
}

/// One grant: a bar in the client's colour, its name on it, and how it ended.
fn draw_grant(out: &mut String, g: &NodeGrant, lane: &Lane, frame: &Frame, colour: &str) {
    let (x0, x1) = (frame.x(g.start_us), frame.x(g.end_us));
    svg!(
        out,
        "<rect class=\"grant\" data-node=\"{}\" data-client=\"{}\" data-start-us=\"{}\" \
         data-end-us=\"{}\" data-end=\"{}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
         height=\"{GRANT_H_PX:.1}\" fill=\"{colour}\" fill-opacity=\"0.8\" stroke=\"{colour}\">\
         <title>{}</title></rect>\n",
        xml_escape(&g.node),
        xml_escape(&g.client),
        g.start_us,
        g.end_us,
        g.end_why,
        lane.top_px + GRANT_Y_PX,
        (x1 - x0).max(1.0),
        xml_escape(&format!(
            "{} holds {} for {} ({}) from {:.3} s to {:.3} s, deadline {} ms on its wall clock: {}",
            g.node,
            g.key,
            g.client,
            g.value,
            secs(g.start_us),
            secs(g.end_us),
            g.deadline_ms,
            g.end_why
        ))
    );
    if text_width_px(&g.client, 9.0) + 6.0 < x1 - x0 {
        svg!(
            out,
            "<text class=\"tok\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            x0 + 3.0,
            lane.top_px + GRANT_Y_PX + 10.5,
            xml_escape(&g.client)
        );
    }
    let end_word = match g.end_why {
        "expired" => "expired",
        "lost in a restart" => "lost",
        _ => return,
    };
    // Inside the bar at its end, right of the client's name: what follows may be a new grant.
    let name_px = text_width_px(&g.client, 9.0) + 6.0;
    if name_px + text_width_px(end_word, 8.5) + 6.0 < x1 - x0 {
        svg!(
            out,
            "<text class=\"tok\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{end_word}</text>\n",
            x1 - 3.0,
            lane.top_px + GRANT_Y_PX + 10.5
        );
    }
}

/// Where the grant's client still believes it holds the lock after the node let its key go:
/// a dashed line in its colour.
fn draw_believes(
    out: &mut String,
    g: &NodeGrant,
    b: &Belief,
    lane: &Lane,
    frame: &Frame,
    colour: &str,
) {
    let (x0, x1) = (frame.x(g.end_us), frame.x(b.end_us));
    let y = lane.top_px + BELIEVES_Y_PX;
    svg!(
        out,
        "<line class=\"believes\" data-node=\"{}\" data-client=\"{}\" data-start-us=\"{}\" \
         data-end-us=\"{}\" x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{x1:.1}\" y2=\"{y:.1}\" \
         stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"4 2\"><title>{}</title></line>\n",
        xml_escape(&g.node),
        xml_escape(&g.client),
        g.end_us,
        b.end_us,
        xml_escape(&format!(
            "{} still believes it holds the lock until {:.3} s; {} no longer holds its key ({} at {:.3} s)",
            b.client,
            secs(b.end_us),
            g.node,
            g.end_why,
            secs(g.end_us)
        ))
    );
    let label = format!("{} still believes", b.client);
    if text_width_px(&label, 8.5) + 4.0 < x1 - x0 {
        svg!(
            out,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            x0 + 2.0,
            y + 10.0,
            xml_escape(&label)
        );
    }
}
