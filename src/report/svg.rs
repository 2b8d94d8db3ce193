//! A latency distribution as an SVG file: one cumulative curve (CDF) per series, on a
//! logarithmic time axis, for a lab report. Plain SVG 1.1, no scripts, no fonts to fetch.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

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

/// Writes the plot of `series` (name, latencies in microseconds) to `path`.
pub fn write(path: &Path, title: &str, series: &[(String, &Histogram<u64>)]) -> Result<()> {
    std::fs::write(path, render(title, series))
        .with_context(|| format!("write the plot to {}", path.display()))
}

/// The SVG text.
pub fn render(title: &str, series: &[(String, &Histogram<u64>)]) -> String {
    let lo = series
        .iter()
        .map(|(_, h)| h.min().max(1))
        .min()
        .unwrap_or(1);
    let hi = series
        .iter()
        .map(|(_, h)| h.max())
        .max()
        .unwrap_or(10)
        .max(lo * 10);
    let (lo_exp, hi_exp) = ((lo as f64).log10().floor(), (hi as f64).log10().ceil());
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |us: f64| LEFT + ((us.max(1.0).log10() - lo_exp) / (hi_exp - lo_exp)) * plot_w;
    let y = |q: f64| TOP + (1.0 - q) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(title)
    );
    // Axes, with a tick per power of ten and per quarter.
    let _ = writeln!(
        svg,
        r#"<path d="M{LEFT},{TOP} V{} H{}" fill="none" stroke="black"/>"#,
        TOP + plot_h,
        LEFT + plot_w
    );
    let mut exp = lo_exp;
    while exp <= hi_exp {
        let px = x(10f64.powf(exp));
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            label(10f64.powf(exp))
        );
        exp += 1.0;
    }
    for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let py = y(q);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}%</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0,
            (q * 100.0) as u32
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">round-trip latency (log scale)</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">requests at or below</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    for (i, (name, h)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut points = String::new();
        for v in h.iter_quantiles(2) {
            let _ = write!(
                points,
                "{:.1},{:.1} ",
                x(v.value_iterated_to() as f64),
                y(v.quantile_iterated_to())
            );
        }
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"><title>{}</title></polyline>"#,
            points.trim_end(),
            escape(name)
        );
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
    svg.push_str("</svg>\n");
    svg
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
        let mut a = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut b = a.clone();
        for v in [10, 20, 30, 1000] {
            a.record(v).unwrap();
            b.record(v * 3).unwrap();
        }
        let svg = render("t <1>", &[("tcp".into(), &a), ("udp & co".into(), &b)]);
        assert!(svg.starts_with("<?xml"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("udp &amp; co") && svg.contains("t &lt;1&gt;"));
        assert!(svg.contains(">1 ms<"));
    }
}
