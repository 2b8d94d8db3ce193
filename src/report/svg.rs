//! A latency distribution as an SVG file: one cumulative curve (CDF) per series, on a
//! logarithmic time axis and a percentile axis that gives each nine (90%, 99%, 99.9%,
//! 99.99%) as much room as the first 90%, so the tails can be read. Plain SVG 1.1, no
//! scripts, no fonts to fetch.

use hdrhistogram::Histogram;
use std::fmt::Write as _;

use super::run::round;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// One colour per series, distinct for the usual colour-vision deficiencies.
const COLOURS: [&str; 10] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
    "#999999", "#882255",
];

/// The plot's area inside the margins.
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// The SVG text of the plot of `series` (name, latencies in nanoseconds), with `caption`
/// (what the curves are, a line each) under it.
pub(crate) fn render(
    title: &str,
    caption: &[String],
    series: &[(String, &Histogram<u64>)],
) -> String {
    let scale = Scale::of(series);
    let mut svg = String::new();
    heading(
        &mut svg,
        title,
        HEIGHT + CAPTION_LINE * caption.len() as f64,
    );
    axes(&mut svg, &scale);
    for (i, (name, h)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        curve(&mut svg, &scale, name, h, colour);
        legend(&mut svg, i, name, colour);
    }
    for (i, line) in caption.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text class="caption" x="12" y="{}" font-size="11">{}</text>"#,
            HEIGHT + CAPTION_LINE * (i as f64 + 0.5),
            escape(line)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The height of a caption's line, below the plot.
const CAPTION_LINE: f64 = 16.0;

/// Nines shown on the percentile axis: up to 99.99%; the slowest samples sit at its top.
const NINES: f64 = 4.0;

/// Where a latency and a quantile fall on the page: latencies on a log scale from the power
/// of ten at or below the fastest sample to the one at or above the slowest (a decade at
/// least), quantiles by their nines, 0% at the bottom and 99.99% at the top.
struct Scale {
    lo_exp: f64,
    hi_exp: f64,
}

impl Scale {
    /// The scale of `series`, from 1 us at the lowest; its ends to a tenth of a
    /// microsecond, as the reports print them.
    fn of(series: &[(String, &Histogram<u64>)]) -> Scale {
        let lo = series
            .iter()
            .map(|(_, h)| round(micros(h.min()), 1).max(1.0))
            .min_by(f64::total_cmp)
            .unwrap_or(1.0);
        let hi = series
            .iter()
            .map(|(_, h)| round(micros(h.max()), 1))
            .max_by(f64::total_cmp)
            .unwrap_or(10.0)
            .max(lo * 10.0);
        Scale {
            lo_exp: lo.log10().floor(),
            hi_exp: hi.log10().ceil(),
        }
    }

    fn x(&self, us: f64) -> f64 {
        LEFT + ((us.max(1.0).log10() - self.lo_exp) / (self.hi_exp - self.lo_exp)) * PLOT_W
    }

    fn y(q: f64) -> f64 {
        let nines = (-(1.0 - q).max(1e-12).log10()).clamp(0.0, NINES);
        TOP + (1.0 - nines / NINES) * PLOT_H
    }
}

/// The XML prologue, the page (`height` high) and the title.
fn heading(svg: &mut String, title: &str, height: f64) {
    let _ = writeln!(
        svg,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + PLOT_W / 2.0,
        escape(title)
    );
}

/// Axes, with a tick per power of ten and per nine, and their labels.
fn axes(svg: &mut String, scale: &Scale) {
    let _ = writeln!(
        svg,
        r#"<path d="M{LEFT},{TOP} V{} H{}" fill="none" stroke="black"/>"#,
        TOP + PLOT_H,
        LEFT + PLOT_W
    );
    let mut exp = scale.lo_exp;
    while exp <= scale.hi_exp {
        let px = scale.x(10f64.powf(exp));
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + PLOT_H,
            TOP + PLOT_H + 16.0,
            label(10f64.powf(exp))
        );
        exp += 1.0;
    }
    for (q, name) in [
        (0.0, "0%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
    ] {
        let py = Scale::y(q);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{name}</text>"##,
            LEFT + PLOT_W,
            LEFT - 6.0,
            py + 4.0,
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">round-trip latency (log scale)</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">requests at or below (by nines)</text>"#,
        LEFT + PLOT_W / 2.0,
        HEIGHT - 12.0,
        TOP + PLOT_H / 2.0,
        TOP + PLOT_H / 2.0
    );
}

/// One series' cumulative curve, named in its tooltip.
fn curve(svg: &mut String, scale: &Scale, name: &str, h: &Histogram<u64>, colour: &str) {
    let mut points = String::new();
    for v in h.iter_quantiles(2) {
        let _ = write!(
            points,
            "{:.1},{:.1} ",
            scale.x(micros(v.value_iterated_to())),
            Scale::y(v.quantile_iterated_to())
        );
    }
    let _ = writeln!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"><title>{}</title></polyline>"#,
        points.trim_end(),
        escape(name)
    );
}

/// Series number `i`'s line in the legend, right of the plot.
fn legend(svg: &mut String, i: usize, name: &str, colour: &str) {
    let ly = TOP + 10.0 + i as f64 * 18.0;
    let lx = WIDTH - RIGHT + 15.0;
    let _ = writeln!(
        svg,
        r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
        lx + 20.0,
        lx + 26.0,
        ly + 4.0,
        escape(name)
    );
}

/// A histogram's nanoseconds in microseconds.
fn micros(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// 1 µs, 10 µs, 100 µs, 1 ms, 10 ms, 100 ms, 1 s ...
fn label(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{us} µs")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_curve_per_series_with_its_name() {
        let mut a = crate::report::latency_histogram();
        let mut b = a.clone();
        for us in [10, 20, 30, 1000] {
            a.record(us * 1000).unwrap();
            b.record(us * 3000).unwrap();
        }
        let svg = render("t <1>", &[], &[("tcp".into(), &a), ("udp & co".into(), &b)]);
        assert!(svg.starts_with("<?xml"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("udp &amp; co") && svg.contains("t &lt;1&gt;"));
        assert!(svg.contains(">1 ms<"));
        assert!(svg.contains(">99.9%<"));
    }

    #[test]
    fn each_nine_gets_as_much_height_as_the_first_ninety_percent() {
        let step = Scale::y(0.0) - Scale::y(0.9);
        assert!((Scale::y(0.9) - Scale::y(0.99) - step).abs() < 1e-6);
        assert!((Scale::y(0.99) - Scale::y(0.999) - step).abs() < 1e-6);
        assert_eq!(Scale::y(1.0), TOP);
        assert_eq!(Scale::y(0.0), TOP + PLOT_H);
    }
}
