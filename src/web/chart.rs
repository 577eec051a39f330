//! The earnings chart: one bar per day as inline SVG, drawn on the server (no chart library, no
//! script, no inline style: sizes are SVG attributes and colours come from the style sheet, so
//! it follows the theme and the Content-Security-Policy).

use super::html::{esc, money};
use chrono::NaiveDate;
use std::fmt::Write as _;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 160.0;
/// Room for the scale on the left and the dates below.
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

/// A bar chart of `days` (oldest first); `label` names it for screen readers.
pub fn earnings_bars(label: &str, days: &[(NaiveDate, f64)]) -> String {
    let max = days.iter().map(|d| d.1).fold(0.0_f64, f64::max);
    let total: f64 = days.iter().map(|d| d.1).sum();
    let with_data = days.iter().filter(|d| d.1 > 0.0).count();
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let mut svg = format!(
        "<figure class=\"chart\"><svg class=\"bars\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
aria-label=\"{}\" data-days=\"{}\" data-days-with-earnings=\"{with_data}\" data-total=\"{total:.6}\">",
        esc(label),
        days.len()
    );
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{WIDTH}\" y2=\"{base}\"/>\
<text class=\"scale\" x=\"{x}\" y=\"{top}\">{top_label}</text>\
<text class=\"scale\" x=\"{x}\" y=\"{base}\">$0</text>",
        base = TOP + plot_h,
        x = LEFT - 4.0,
        top = TOP + 8.0,
        top_label = money(max),
    );
    for (i, (day, amount)) in days.iter().enumerate() {
        let h = if max > 0.0 {
            (amount / max * plot_h).max(if *amount > 0.0 { 1.0 } else { 0.0 })
        } else {
            0.0
        };
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" \
data-day=\"{day}\" data-amount=\"{amount:.6}\"><title>{day}: {m}</title></rect>",
            x = LEFT + i as f64 * slot + slot * 0.1,
            y = TOP + plot_h - h,
            w = slot * 0.8,
            m = money(*amount),
        );
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            svg,
            "<text class=\"date\" x=\"{LEFT}\" y=\"{y}\">{}</text>\
<text class=\"date end\" x=\"{WIDTH}\" y=\"{y}\">{}</text>",
            first.0.format("%b %d"),
            last.0.format("%b %d"),
            y = HEIGHT - 4.0,
        );
    }
    let _ = write!(
        svg,
        "</svg><figcaption>{} over {} days{}</figcaption></figure>",
        money(total),
        days.len(),
        if with_data == 0 {
            " (no earnings recorded yet)"
        } else {
            ""
        }
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_best_day_and_carry_their_data() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let svg = earnings_bars(
            "alice <rig>",
            &[
                (d("2026-03-01"), 0.0),
                (d("2026-03-02"), 5.0),
                (d("2026-03-03"), 10.0),
            ],
        );
        assert!(svg.contains("aria-label=\"alice &lt;rig&gt;\""));
        assert!(svg.contains("data-days-with-earnings=\"2\""));
        assert!(svg.contains("data-day=\"2026-03-03\" data-amount=\"10.000000\""));
        assert!(
            svg.contains("height=\"132.0\""),
            "the best day fills the plot"
        );
        assert!(svg.contains("height=\"66.0\""));
        assert!(!svg.contains("style="), "no inline style under the CSP");
        assert!(earnings_bars("x", &[(d("2026-03-01"), 0.0)]).contains("no earnings recorded"));
    }
}
