//! The atlas' picture: a heatmap of violation rate over two parameters, one map per policy,
//! each cell coloured from white (0) to red (1) and labelled with its rate; optionally a line
//! (the renewal slack on the pause × TTL map). A standalone SVG written by hand, like the
//! [rate plot](crate::plot), with its [helpers](crate::svg): same input, same bytes.

use crate::svg::{svg, xml_escape};

/// Most cells along one side: a limit on everything.
pub const SIDE_MAX: usize = 64;

const WIDTH_PX: f64 = 640.0;
const HEIGHT_PX: f64 = 520.0;
const LEFT_PX: f64 = 90.0;
const TOP_PX: f64 = 56.0;
const MAP_PX: f64 = 400.0;

/// A heatmap. `xs` and `ys` are the axis values in order; `rate(ix, iy)` the rate of a cell
/// (not finite: drawn grey, no label); `line` points `(x, y)` in axis units, drawn over the map.
pub fn heatmap(
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: &[f64],
    ys: &[f64],
    rate: impl Fn(usize, usize) -> f64,
    line: Option<(&str, &[(f64, f64)])>,
) -> String {
    let (xs, ys) = (&xs[..xs.len().min(SIDE_MAX)], &ys[..ys.len().min(SIDE_MAX)]);
    let (nx, ny) = (xs.len().max(1) as f64, ys.len().max(1) as f64);
    let (cw, ch) = (MAP_PX / nx, MAP_PX / ny);
    let mut out = String::new();
    svg!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH_PX}\" height=\"{HEIGHT_PX}\" \
         viewBox=\"0 0 {WIDTH_PX} {HEIGHT_PX}\" font-family=\"sans-serif\">\n\
         <style>text{{font-size:11px}}\n.title{{font-size:14px;font-weight:bold}}\n\
         .label{{font-size:12px}}</style>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text class=\"title\" x=\"{LEFT_PX}\" y=\"28\">{}</text>\n",
        xml_escape(title)
    );
    // Rows from the bottom up: y grows upwards, as on a plot.
    for (iy, _) in ys.iter().enumerate() {
        for (ix, _) in xs.iter().enumerate() {
            let r = rate(ix, iy);
            let (x, y) = (
                LEFT_PX + ix as f64 * cw,
                TOP_PX + MAP_PX - (iy as f64 + 1.0) * ch,
            );
            draw_cell(&mut out, (x, y), (cw, ch), r);
        }
    }
    // Ticks: the value at each column and row centre.
    for (ix, v) in xs.iter().enumerate() {
        svg!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            LEFT_PX + (ix as f64 + 0.5) * cw,
            TOP_PX + MAP_PX + 16.0,
            v
        );
    }
    for (iy, v) in ys.iter().enumerate() {
        svg!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            LEFT_PX - 6.0,
            TOP_PX + MAP_PX - (iy as f64 + 0.5) * ch + 4.0,
            v
        );
    }
    svg!(
        out,
        "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
         <text class=\"label\" transform=\"translate(22,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        LEFT_PX + MAP_PX / 2.0,
        TOP_PX + MAP_PX + 36.0,
        xml_escape(x_label),
        TOP_PX + MAP_PX / 2.0,
        xml_escape(y_label)
    );
    if let Some((name, points)) = line {
        draw_line(&mut out, name, points, xs, ys, cw, ch);
    }
    out.push_str("</svg>\n");
    out
}

/// One cell of the map at `(x, y)` px, of `(cw, ch)` px: its fill from the rate `r` and, when
/// the rate is finite, its label, white on the darker cells so it stays legible.
fn draw_cell(out: &mut String, (x, y): (f64, f64), (cw, ch): (f64, f64), r: f64) {
    let (fill, text) = if r.is_finite() {
        let r = r.clamp(0.0, 1.0);
        let fade = (255.0 * (1.0 - r)).round() as u8;
        (
            format!("#ff{fade:02x}{fade:02x}"),
            format!("{:.0}%", r * 100.0),
        )
    } else {
        ("#dddddd".to_string(), String::new())
    };
    svg!(
        out,
        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cw:.1}\" height=\"{ch:.1}\" fill=\"{fill}\" stroke=\"#ffffff\"/>\n"
    );
    if !text.is_empty() {
        let colour = if r > 0.6 { "white" } else { "black" };
        svg!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{colour}\">{text}</text>\n",
            x + cw / 2.0,
            y + ch / 2.0 + 4.0
        );
    }
}

/// Maps axis units to pixels by interpolating between cell centres.
fn position(v: f64, axis: &[f64], cell_px: f64) -> Option<f64> {
    let first = *axis.first()?;
    let last = *axis.last()?;
    if axis.len() < 2 || last == first {
        return Some(cell_px / 2.0);
    }
    let f = (v - first) / (last - first);
    Some(cell_px / 2.0 + f * (axis.len() - 1) as f64 * cell_px)
}

fn draw_line(
    out: &mut String,
    name: &str,
    points: &[(f64, f64)],
    xs: &[f64],
    ys: &[f64],
    cw: f64,
    ch: f64,
) {
    let pts: Vec<String> = points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .filter_map(|(x, y)| {
            let px = LEFT_PX + position(*x, xs, cw)?;
            let py = TOP_PX + MAP_PX - position(*y, ys, ch)?;
            // A point beyond the map is left out rather than drawn over the labels.
            let inside = (LEFT_PX..=LEFT_PX + MAP_PX).contains(&px)
                && (TOP_PX..=TOP_PX + MAP_PX).contains(&py);
            inside.then(|| format!("{px:.1},{py:.1}"))
        })
        .collect();
    if pts.is_empty() {
        return;
    }
    svg!(
        out,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2.5\" stroke-dasharray=\"6 4\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#1f77b4\">- - {}</text>\n",
        pts.join(" "),
        LEFT_PX + MAP_PX + 10.0,
        TOP_PX + MAP_PX / 2.0,
        xml_escape(name)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heatmap_is_well_formed_and_the_same_for_the_same_input() {
        let xs = [250.0, 1000.0, 2000.0];
        let ys = [2.0, 4.0];
        let rate = |ix: usize, iy: usize| if ix == 2 && iy == 0 { 0.9 } else { 0.0 };
        let line = [(1312.0, 2.0), (2640.0, 4.0)];
        let a = heatmap("t", "x", "y", &xs, &ys, rate, Some(("slack", &line)));
        let b = heatmap("t", "x", "y", &xs, &ys, rate, Some(("slack", &line)));
        assert_eq!(a, b);
        let doc = roxmltree::Document::parse(&a).expect("well-formed SVG");
        let rects = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
        assert_eq!(rects, 1 + 6, "background and one rect per cell");
        assert!(a.contains("90%") && a.contains("polyline"));
    }
}
