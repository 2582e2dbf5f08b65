//! A sweep's picture: violation rate against a parameter, one line per policy, each point
//! with its 95% interval as an error bar. A standalone SVG, written by hand like the
//! [timeline](crate::timeline): no font library, same input, same bytes.

use crate::svg::{svg, text_width_px, xml_escape};

/// Most series drawn, and most points per series: limits on everything.
pub const SERIES_MAX: usize = 32;
pub const POINTS_MAX: usize = 10_000;

const WIDTH_PX: f64 = 820.0;
const HEIGHT_PX: f64 = 480.0;
const PLOT_LEFT_PX: f64 = 72.0;
const PLOT_TOP_PX: f64 = 56.0;
const PLOT_WIDTH_PX: f64 = 520.0;
const PLOT_HEIGHT_PX: f64 = 340.0;
/// How far apart sideways the policies' points are drawn, so that equal intervals at the
/// same x do not hide each other. Small against the plot; said under the plot.
const DODGE_PX: f64 = 4.0;
/// Room between the frame and the first and last x.
const INSET_PX: f64 = 20.0;

/// One point of a policy: `(x, rate, rate_low, rate_high)`, the last two the 95% interval.
pub type RatePoint = (f64, f64, f64, f64);
/// One policy's name and points.
pub type Series = (String, Vec<RatePoint>);

/// One colour per policy, cycling; told apart on white and in print.
const COLOURS: [&str; 8] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// A plot of violation rate (0..1) against a parameter.
///
/// `series` holds, per policy, its name and points `(x, rate, rate_low, rate_high)`, the last
/// two the ends of the 95% interval. Points with a value that is not finite are left out;
/// rates are clamped to 0..1. Lines join a policy's points in order of x.
pub fn rate_plot(title: &str, x_label: &str, series: &[Series]) -> String {
    let series = &series[..series.len().min(SERIES_MAX)];
    let cleaned: Vec<Vec<RatePoint>> = series.iter().map(|(_, p)| clean(p)).collect();
    let frame = Frame::of(&cleaned);
    let mut out = String::with_capacity(16 * 1024);
    draw_head(&mut out, title);
    draw_axes(&mut out, &frame, x_label);
    // One group per policy: line, error bars, points; and its legend entry.
    let n = cleaned.len();
    for (i, ((name, _), points)) in series.iter().zip(&cleaned).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let dodge_px = (i as f64 - (n as f64 - 1.0) / 2.0) * DODGE_PX;
        svg!(
            out,
            "<g class=\"series\" data-policy=\"{}\">\n",
            xml_escape(name)
        );
        draw_points(&mut out, &frame, name, points, colour, dodge_px);
        draw_legend_entry(&mut out, i, name, colour);
    }
    out.push_str("</svg>\n");
    out
}

/// A policy's finite points, by x (total order: the same bytes for the same input), rates
/// clamped to 0..1 and each interval around its rate.
fn clean(points: &[RatePoint]) -> Vec<RatePoint> {
    let mut p: Vec<_> = points
        .iter()
        .take(POINTS_MAX)
        .copied()
        .filter(|(x, r, lo, hi)| x.is_finite() && r.is_finite() && lo.is_finite() && hi.is_finite())
        .map(|(x, r, lo, hi)| {
            let r = r.clamp(0.0, 1.0);
            (x, r, lo.clamp(0.0, r), hi.clamp(r, 1.0))
        })
        .collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    p
}

const BOTTOM_PX: f64 = PLOT_TOP_PX + PLOT_HEIGHT_PX;
const RIGHT_PX: f64 = PLOT_LEFT_PX + PLOT_WIDTH_PX;

/// The x axis: its ends and its tick step, from the data's x range.
struct Frame {
    axis_min: f64,
    axis_max: f64,
    step: f64,
}

impl Frame {
    fn of(cleaned: &[Vec<RatePoint>]) -> Frame {
        let xs = cleaned.iter().flatten().map(|p| p.0);
        let (mut x_min, mut x_max) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        if !x_min.is_finite() {
            (x_min, x_max) = (0.0, 1.0);
        }
        if x_max - x_min < 1e-12 {
            (x_min, x_max) = (x_min - 1.0, x_max + 1.0);
        }
        let step = nice_step((x_max - x_min) / 6.0);
        Frame {
            axis_min: (x_min / step).floor() * step,
            axis_max: (x_max / step).ceil() * step,
            step,
        }
    }

    /// Data sit a little inside the frame, so that points, caps and the sideways shift at the
    /// ends of the axis stay inside it.
    fn x_px(&self, x: f64) -> f64 {
        PLOT_LEFT_PX
            + INSET_PX
            + (x - self.axis_min) / (self.axis_max - self.axis_min)
                * (PLOT_WIDTH_PX - 2.0 * INSET_PX)
    }

    fn y_px(rate: f64) -> f64 {
        PLOT_TOP_PX + (1.0 - rate) * PLOT_HEIGHT_PX
    }
}

/// The XML head, the style, the white page and the title.
fn draw_head(out: &mut String, title: &str) {
    svg!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{WIDTH_PX:.0}\" height=\"{HEIGHT_PX:.0}\" viewBox=\"0 0 {WIDTH_PX:.0} {HEIGHT_PX:.0}\">\n\
         <title>{t}</title>\n<style>\ntext{{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;fill:#222}}\n\
         .title{{font-size:16px;font-weight:bold}}\n.tick{{font-size:11px;fill:#444}}\n\
         .label{{font-size:12px}}\n.small{{font-size:10px;fill:#555}}\n</style>\n\
         <rect x=\"0\" y=\"0\" width=\"{WIDTH_PX:.0}\" height=\"{HEIGHT_PX:.0}\" fill=\"#fff\"/>\n\
         <text class=\"title\" x=\"{PLOT_LEFT_PX:.0}\" y=\"30\">{t}</text>\n",
        t = xml_escape(title)
    );
}

/// Grid and axes: rate in fifths, x in nice steps (at most 50 ticks by nice_step); the
/// frame, the axes' labels and the note on error bars.
fn draw_axes(out: &mut String, frame: &Frame, x_label: &str) {
    out.push_str("<g class=\"axes\">\n");
    for k in 0..=5 {
        let rate = k as f64 / 5.0;
        let y = Frame::y_px(rate);
        svg!(
            out,
            "<line x1=\"{PLOT_LEFT_PX:.1}\" y1=\"{y:.1}\" x2=\"{RIGHT_PX:.1}\" y2=\"{y:.1}\" stroke=\"#e0e0e0\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{rate:.1}</text>\n",
            PLOT_LEFT_PX - 6.0,
            y + 4.0
        );
    }
    let step = frame.step;
    let ticks = ((frame.axis_max - frame.axis_min) / step).round() as usize;
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    for k in 0..=ticks.min(50) {
        let x = frame.axis_min + k as f64 * step;
        let xp = frame.x_px(x);
        svg!(
            out,
            "<line x1=\"{xp:.1}\" y1=\"{PLOT_TOP_PX:.1}\" x2=\"{xp:.1}\" y2=\"{BOTTOM_PX:.1}\" stroke=\"#f0f0f0\"/>\
             <line x1=\"{xp:.1}\" y1=\"{BOTTOM_PX:.1}\" x2=\"{xp:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\
             <text class=\"tick\" x=\"{xp:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x:.decimals$}</text>\n",
            BOTTOM_PX + 5.0,
            BOTTOM_PX + 18.0
        );
    }
    svg!(
        out,
        "<rect x=\"{PLOT_LEFT_PX:.1}\" y=\"{PLOT_TOP_PX:.1}\" width=\"{PLOT_WIDTH_PX:.1}\" \
         height=\"{PLOT_HEIGHT_PX:.1}\" fill=\"none\" stroke=\"#444\"/>\n\
         <text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
         <text class=\"label\" transform=\"translate(20,{:.1}) rotate(-90)\" text-anchor=\"middle\">violation rate</text>\n\
         <text class=\"small\" x=\"{PLOT_LEFT_PX:.1}\" y=\"{:.1}\">error bars: 95% interval; policies shifted {DODGE_PX:.0} px apart sideways to stay visible</text>\n",
        PLOT_LEFT_PX + PLOT_WIDTH_PX / 2.0,
        BOTTOM_PX + 38.0,
        xml_escape(x_label),
        PLOT_TOP_PX + PLOT_HEIGHT_PX / 2.0,
        BOTTOM_PX + 62.0
    );
    out.push_str("</g>\n");
}

/// A policy's line, then each point with its error bar, all shifted `dodge_px` sideways.
fn draw_points(
    out: &mut String,
    frame: &Frame,
    name: &str,
    points: &[RatePoint],
    colour: &str,
    dodge_px: f64,
) {
    if points.len() > 1 {
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", frame.x_px(p.0) + dodge_px, Frame::y_px(p.1)))
            .collect();
        svg!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\n",
            path.join(" ")
        );
    }
    for (x, rate, lo, hi) in points {
        let xp = frame.x_px(*x) + dodge_px;
        let (yl, yh) = (Frame::y_px(*lo), Frame::y_px(*hi));
        svg!(
            out,
            "<g class=\"point\"><title>{}: x {x}, rate {rate:.3} (95% {lo:.3} to {hi:.3})</title>\
             <path d=\"M{xp:.1} {yl:.1}V{yh:.1}M{:.1} {yl:.1}h8M{:.1} {yh:.1}h8\" stroke=\"{colour}\" stroke-width=\"1.3\"/>\
             <circle cx=\"{xp:.1}\" cy=\"{:.1}\" r=\"3.8\" fill=\"{colour}\" stroke=\"#fff\" stroke-width=\"1\"/></g>\n",
            xml_escape(name),
            xp - 4.0,
            xp - 4.0,
            Frame::y_px(*rate)
        );
    }
}

/// The `i`th policy's legend entry, right of the plot; it also closes the policy's group.
fn draw_legend_entry(out: &mut String, i: usize, name: &str, colour: &str) {
    let ly = PLOT_TOP_PX + 14.0 + i as f64 * 22.0;
    let lx = RIGHT_PX + 24.0;
    // Long names are cut to the legend's width, whole names stay in the tooltip.
    let mut shown: String = name.chars().take(28).collect();
    if text_width_px(name, 12.0) > text_width_px(&shown, 12.0) {
        shown.push('…');
    }
    svg!(
        out,
        "<g class=\"legend\"><title>{}</title><line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" \
         stroke=\"{colour}\" stroke-width=\"2\"/><circle cx=\"{:.1}\" cy=\"{ly:.1}\" r=\"3.8\" fill=\"{colour}\"/>\
         <text class=\"label\" x=\"{:.1}\" y=\"{:.1}\">{}</text></g>\n</g>\n",
        xml_escape(name),
        lx + 28.0,
        lx + 14.0,
        lx + 36.0,
        ly + 4.0,
        xml_escape(&shown)
    );
}

/// A step of 1, 2 or 5 times a power of ten, at least `raw` (and never zero).
fn nice_step(raw: f64) -> f64 {
    let raw = if raw.is_finite() && raw > 0.0 {
        raw
    } else {
        1.0
    };
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).expect("well-formed XML")
    }

    #[test]
    fn one_series_per_policy_and_well_formed() {
        let series = vec![
            (
                "none".to_string(),
                vec![
                    (0.0, 0.0, 0.0, 0.1),
                    (500.0, 0.4, 0.3, 0.5),
                    (1000.0, 0.9, 0.8, 0.95),
                ],
            ),
            (
                "token <&> \"quoted\"".to_string(),
                vec![(0.0, 0.0, 0.0, 0.05), (1000.0, 0.0, 0.0, 0.05)],
            ),
            ("empty".to_string(), vec![]),
        ];
        let svg = rate_plot("Rate vs pause", "pause (ms)", &series);
        let doc = parse(&svg);
        let groups: Vec<_> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("series"))
            .collect();
        assert_eq!(groups.len(), 3);
        assert_eq!(
            groups[1].attribute("data-policy"),
            Some("token <&> \"quoted\"")
        );
        // Three points in the first, two in the second.
        let points = |g: &roxmltree::Node| {
            g.descendants()
                .filter(|n| n.attribute("class") == Some("point"))
                .count()
        };
        assert_eq!(points(&groups[0]), 3);
        assert_eq!(points(&groups[1]), 2);
        assert_eq!(points(&groups[2]), 0);
        assert_eq!(svg, rate_plot("Rate vs pause", "pause (ms)", &series));
    }

    #[test]
    fn odd_input_still_draws() {
        let series = vec![(
            "p".to_string(),
            vec![(f64::NAN, 0.5, 0.4, 0.6), (3.0, 1.5, -1.0, 2.0)],
        )];
        let svg = rate_plot("t", "x", &series);
        parse(&svg);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        parse(&rate_plot("t", "x", &[]));
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(3.3), 5.0);
        assert_eq!(nice_step(170.0), 200.0);
        assert_eq!(nice_step(0.0), 1.0);
    }
}
