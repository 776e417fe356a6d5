//! Latency histograms (HdrHistogram, nanoseconds) and their reports: HdrHistogram percentile
//! text (`.hgrm`), a JSON summary, and an SVG plot of the percentile curve.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest value tracked: 60 s in nanoseconds. Larger values are clamped to it.
const MAX_NS: u64 = 60_000_000_000;

/// The latencies xdptcp records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyKind {
    /// SYN arrival to ESTABLISHED (passive opens) or SYN sent to ESTABLISHED (active opens).
    Handshake,
    /// A complete request to its response handed to the TX ring (http app, load generator).
    Request,
    /// One RX batch: taken from the RX ring to replies handed to the TX ring.
    RxBatch,
    /// Load generator, open loop: a request's intended send time to the moment the generator
    /// woke its connection for it (how late the generator itself is; a request that then waits
    /// for its connection's previous answer waits on the server).
    SendLag,
}

impl LatencyKind {
    /// Every kind, in report order.
    pub const ALL: [LatencyKind; 4] = [
        LatencyKind::Handshake,
        LatencyKind::Request,
        LatencyKind::RxBatch,
        LatencyKind::SendLag,
    ];

    /// File-name friendly name.
    pub fn label(self) -> &'static str {
        match self {
            LatencyKind::Handshake => "handshake",
            LatencyKind::Request => "request",
            LatencyKind::RxBatch => "rx_batch",
            LatencyKind::SendLag => "send_lag",
        }
    }
}

/// One histogram per [`LatencyKind`], recorded without locks by one worker and merged by the
/// control thread.
#[derive(Debug, Clone)]
pub struct Latencies {
    hists: [Histogram<u64>; 4],
}

impl Default for Latencies {
    fn default() -> Latencies {
        let h = || Histogram::new_with_bounds(1, MAX_NS, 3).expect("static bounds are valid");
        Latencies {
            hists: [h(), h(), h(), h()],
        }
    }
}

impl Latencies {
    /// Records one latency (clamped to 1 ns .. 60 s).
    pub fn record(&mut self, kind: LatencyKind, d: Duration) {
        let ns = (d.as_nanos() as u64).clamp(1, MAX_NS);
        // Within bounds by the clamp, so this cannot fail.
        let _ = self.hists[kind as usize].record(ns);
    }

    /// The histogram of one kind.
    pub fn get(&self, kind: LatencyKind) -> &Histogram<u64> {
        &self.hists[kind as usize]
    }

    /// Adds another set into this one.
    pub fn merge(&mut self, other: &Latencies) {
        for (a, b) in self.hists.iter_mut().zip(other.hists.iter()) {
            // Same bounds on both sides: add cannot fail.
            let _ = a.add(b);
        }
    }

    /// Empties every histogram (after sending a delta to the control thread).
    pub fn reset(&mut self) {
        for h in &mut self.hists {
            h.reset();
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hists.iter().all(|h| h.is_empty())
    }

    /// JSON summary of one kind: count, min, p50, p90, p99, p99.9, max, mean (microseconds).
    pub fn summary(&self, kind: LatencyKind) -> serde_json::Value {
        let h = self.get(kind);
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return serde_json::json!({ "count": 0 });
        }
        serde_json::json!({
            "count": h.len(),
            "min_us": us(h.min()),
            "p50_us": us(h.value_at_quantile(0.50)),
            "p90_us": us(h.value_at_quantile(0.90)),
            "p99_us": us(h.value_at_quantile(0.99)),
            "p999_us": us(h.value_at_quantile(0.999)),
            "max_us": us(h.max()),
            "mean_us": h.mean() / 1000.0,
        })
    }

    /// JSON summary of every kind, keyed by label.
    pub fn summary_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for kind in LatencyKind::ALL {
            map.insert(kind.label().to_string(), self.summary(kind));
        }
        serde_json::Value::Object(map)
    }

    /// One line: `label p50/p99/p99.9 (count)` per non-empty kind, in microseconds.
    pub fn one_line(&self) -> String {
        let mut out = String::new();
        for kind in LatencyKind::ALL {
            let h = self.get(kind);
            if h.is_empty() {
                continue;
            }
            let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
            let _ = write!(
                out,
                "{}{} p50={:.1}us p99={:.1}us p99.9={:.1}us n={}",
                if out.is_empty() { "" } else { " | " },
                kind.label(),
                q(0.5),
                q(0.99),
                q(0.999),
                h.len()
            );
        }
        out
    }
}

/// HdrHistogram's percentile distribution text (the `.hgrm` format of `outputPercentileDistribution`),
/// values in microseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if h.is_empty() {
        return out;
    }
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            1.0 / (1.0 - q)
        } else {
            f64::INFINITY
        };
        let _ = writeln!(
            out,
            "{:>12.3} {:>14.12} {:>10} {:>14.2}",
            v.value_iterated_to() as f64 / 1000.0,
            q,
            v.count_since_last_iteration(),
            inv
        );
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

/// An SVG plot of the percentile curve: x = percentile on the usual 1/(1-p) log axis
/// (0 %, 90 %, 99 %, 99.9 %, ...), y = latency in microseconds (linear).
pub fn svg(title: &str, h: &Histogram<u64>) -> String {
    let (w, ht, m) = (720.0_f64, 400.0_f64, 60.0_f64);
    let mut pts: Vec<(f64, f64)> = Vec::new();
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to().min(0.999_999);
            pts.push((
                (1.0 / (1.0 - q)).log10(),
                v.value_iterated_to() as f64 / 1000.0,
            ));
        }
    }
    let xmax = pts.iter().map(|p| p.0).fold(3.0_f64, f64::max);
    let ymax = pts.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.1;
    let x = |v: f64| m + v / xmax * (w - 2.0 * m);
    let y = |v: f64| ht - m - v / ymax * (ht - 2.0 * m);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{ht}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14">{} latency by percentile (n={})</text>"#,
        w / 2.0,
        xml_escape(title),
        h.len()
    );
    // Axes and percentile grid lines.
    let _ = writeln!(
        s,
        r#"<line x1="{m}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{m}" y1="{m}" x2="{m}" y2="{}" stroke="black"/>"#,
        ht - m,
        w - m,
        ht - m,
        ht - m
    );
    let mut decade = 0.0;
    while decade <= xmax {
        let label = match decade as u32 {
            0 => "0%".to_string(),
            1 => "90%".to_string(),
            2 => "99%".to_string(),
            n => format!("99.{}%", "9".repeat(n as usize - 2)),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{0}" y1="{m}" x2="{0}" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" text-anchor="middle">{3}</text>"##,
            x(decade),
            ht - m,
            ht - m + 16.0,
            label
        );
        decade += 1.0;
    }
    for i in 0..=4 {
        let v = ymax * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{:.1}</text>"#,
            m - 6.0,
            y(v) + 4.0,
            v
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">latency (us)</text>"#,
        ht / 2.0,
        ht / 2.0
    );
    let path: Vec<String> = pts
        .iter()
        .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#c0392b" stroke-width="2" points="{}"/>"##,
        path.join(" ")
    );
    s.push_str("</svg>\n");
    s
}

/// Writes `<kind>.hgrm` and `<kind>.svg` for every kind, and `summary.json` with the
/// latency summaries under `"latency"` plus whatever `extra` holds (counters, say), into
/// `dir` (each file written aside and renamed, so a reader never sees half of one).
pub fn write_reports(
    dir: &crate::output::OutputDir,
    latencies: &Latencies,
    extra: serde_json::Value,
) -> Result<(), crate::output::OutputError> {
    for kind in LatencyKind::ALL {
        let h = latencies.get(kind);
        dir.write(&format!("{}.hgrm", kind.label()), hgrm(h).as_bytes())?;
        dir.write(
            &format!("{}.svg", kind.label()),
            svg(kind.label(), h).as_bytes(),
        )?;
    }
    let mut summary = serde_json::Map::new();
    summary.insert("latency".into(), latencies.summary_json());
    if let serde_json::Value::Object(map) = extra {
        summary.extend(map);
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(summary))
        .expect("a JSON value always serialises");
    dir.write("summary.json", (text + "\n").as_bytes())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Latencies {
        let mut l = Latencies::default();
        for i in 1..=1000u64 {
            l.record(LatencyKind::Handshake, Duration::from_micros(i));
        }
        l
    }

    #[test]
    fn summary_reports_percentiles_in_microseconds() {
        let s = sample().summary(LatencyKind::Handshake);
        assert_eq!(s["count"], 1000);
        let p50 = s["p50_us"].as_f64().unwrap();
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        let p99 = s["p99_us"].as_f64().unwrap();
        assert!((989.0..=991.0).contains(&p99), "{p99}");
        assert_eq!(sample().summary(LatencyKind::Request)["count"], 0);
    }

    #[test]
    fn merge_adds_counts_and_reset_empties() {
        let mut a = sample();
        a.merge(&sample());
        assert_eq!(a.get(LatencyKind::Handshake).len(), 2000);
        a.reset();
        assert!(a.is_empty());
    }

    #[test]
    fn values_beyond_the_range_are_clamped_not_lost() {
        let mut l = Latencies::default();
        l.record(LatencyKind::RxBatch, Duration::from_secs(3600));
        l.record(LatencyKind::RxBatch, Duration::ZERO);
        assert_eq!(l.get(LatencyKind::RxBatch).len(), 2);
    }

    #[test]
    fn reports_are_written_for_every_kind() {
        let dir = std::env::temp_dir().join(format!("xdptcp-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = crate::output::OutputDir::open(&dir, crate::output::effective_ids()).unwrap();
        write_reports(
            &out,
            &sample(),
            serde_json::json!({ "counters": { "x": 1 } }),
        )
        .unwrap();
        for kind in LatencyKind::ALL {
            assert!(dir.join(format!("{}.hgrm", kind.label())).exists());
            assert!(dir.join(format!("{}.svg", kind.label())).exists());
        }
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["latency"]["handshake"]["count"], 1000);
        assert_eq!(summary["counters"]["x"], 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hgrm_and_svg_describe_the_distribution() {
        let l = sample();
        let text = hgrm(l.get(LatencyKind::Handshake));
        assert!(text.contains("Percentile"));
        assert!(text.contains("Total count    =         1000"), "{text}");
        let plot = svg("handshake", l.get(LatencyKind::Handshake));
        assert!(plot.starts_with("<svg") && plot.contains("<polyline"));
        assert!(plot.contains("99%"));
    }
}
