//! A reader of the Prometheus text exposition format (version 0.0.4), the format `/metrics`
//! renders: enough of it for the dashboard to read this instance's own series back. The
//! exporter (`metrics-exporter-prometheus`) offers no structured snapshot, only the text, so
//! the dashboard reads exactly what a Prometheus server would scrape.
//!
//! Counters and gauges are one series each; a histogram is its `_bucket{le="…"}` series
//! (cumulative counts), `_sum` and `_count`. Comments (`# HELP`, `# TYPE`) carry nothing the
//! figures need and are skipped, as are lines that do not parse (a reader for a dashboard
//! must not fail on one odd series).

use std::collections::BTreeMap;

/// A series' labels, sorted by name (so that two samples name a series the same way).
pub type Labels = BTreeMap<String, String>;

/// One series: its metric name and labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The metric name as rendered (`http_request_duration_seconds_bucket`).
    pub name: String,
    /// Its labels.
    pub labels: Labels,
}

/// Every series of one rendering, with its value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Values by series.
    pub series: BTreeMap<SeriesKey, f64>,
}

impl Exposition {
    /// Reads `text` (the exposition format); lines that do not parse are skipped.
    pub fn parse(text: &str) -> Self {
        let series = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Self { series }
    }

    /// The series named `name`, with their labels and values.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a Labels, f64)> + 'a {
        // Keys sort by name first: start at the first key of this name.
        let start = SeriesKey {
            name: name.to_owned(),
            labels: Labels::new(),
        };
        self.series
            .range(start..)
            .take_while(move |(key, _)| key.name == name)
            .map(|(key, value)| (&key.labels, *value))
    }

    /// The value of the series `name{labels}`, if it is there.
    pub fn value(&self, name: &str, labels: &Labels) -> Option<f64> {
        self.series
            .get(&SeriesKey {
                name: name.to_owned(),
                labels: labels.clone(),
            })
            .copied()
    }
}

/// `name{label="value",…} value [timestamp]` → the series and its value.
fn parse_line(line: &str) -> Option<(SeriesKey, f64)> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Labels::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    // A timestamp may follow the value; the dashboard takes its own time of sampling.
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some((
        SeriesKey {
            name: name.to_owned(),
            labels,
        },
        value,
    ))
}

/// The labels after `{`, up to and including `}`; returns them and the text after the brace.
fn parse_labels(mut text: &str) -> Option<(Labels, &str)> {
    let mut labels = Labels::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(after) = text.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = text.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (index, '"') => break index,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, other) => value.push(other),
            }
        };
        labels.insert(name.trim().to_owned(), value);
        text = &after[end + 1..];
    }
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
pub fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    const TEXT: &str = r#"# HELP http_requests_in_flight Requests being handled right now.
# TYPE http_requests_in_flight gauge
http_requests_in_flight 3

# TYPE cache_requests_total counter
cache_requests_total{cache="users",result="hit"} 12
cache_requests_total{result="miss",cache="users"} 4 1700000000000
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method="GET",route="/",status="200",le="0.005"} 7
http_request_duration_seconds_bucket{method="GET",route="/",status="200",le="+Inf"} 9
http_request_duration_seconds_sum{method="GET",route="/",status="200"} 0.0425
http_request_duration_seconds_count{method="GET",route="/",status="200"} 9
odd_series{label="a \"quoted\" \\ value\nnext"} 1.5e-3
this line is garbage
"#;

    #[test]
    fn counters_gauges_and_histogram_series_are_read_with_their_labels() {
        let exposition = Exposition::parse(TEXT);

        assert_eq!(
            exposition.value("http_requests_in_flight", &Labels::new()),
            Some(3.0)
        );
        let hits = labels(&[("cache", "users"), ("result", "hit")]);
        assert_eq!(exposition.value("cache_requests_total", &hits), Some(12.0));
        let infinite = labels(&[
            ("method", "GET"),
            ("route", "/"),
            ("status", "200"),
            ("le", "+Inf"),
        ]);
        assert_eq!(
            exposition.value("http_request_duration_seconds_bucket", &infinite),
            Some(9.0)
        );
    }

    #[test]
    fn label_order_timestamps_and_escapes_do_not_change_a_series() {
        let exposition = Exposition::parse(TEXT);

        let misses = labels(&[("cache", "users"), ("result", "miss")]);
        assert_eq!(exposition.value("cache_requests_total", &misses), Some(4.0));
        let odd = labels(&[("label", "a \"quoted\" \\ value\nnext")]);
        assert_eq!(exposition.value("odd_series", &odd), Some(0.0015));
    }

    #[test]
    fn named_lists_every_series_of_one_name_and_no_other() {
        let exposition = Exposition::parse(TEXT);

        let caches: Vec<f64> = exposition
            .named("cache_requests_total")
            .map(|(_, value)| value)
            .collect();
        assert_eq!(caches, vec![12.0, 4.0]);
        assert_eq!(exposition.named("http_request_duration_seconds").count(), 0);
        assert_eq!(exposition.named("nothing").count(), 0);
    }

    #[test]
    fn special_values_are_understood() {
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert!(parse_value("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_value("x"), None);
    }
}
