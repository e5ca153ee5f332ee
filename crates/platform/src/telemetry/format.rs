//! Log line formats (`pretty` and `json`) that carry the request being served.
//!
//! Every line logged while a request is served names it — request id, method, matched route —
//! so that a failure can be traced from the id a client reports. That context lives in a
//! task-local ([`REQUEST`]) set once by the HTTP layer, not in a `tracing` span per request: a
//! span is created, entered and left at every poll, and closed, and on a cache-served read that
//! bookkeeping cost more than the read itself (bench/RESULTS.md). These formatters write the
//! context as if it were the outermost span (`request{…}` in `pretty`, the first element of
//! `spans` in `json`), then the real spans (a job's, for instance), then the event.

use std::fmt;

use serde::ser::{SerializeMap, Serializer as _};
use tracing::{Event, Level, Subscriber, field::Field};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields,
        format::{JsonFields, Writer},
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

/// The request a task is serving, for its log lines.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id (`X-Request-Id`), as sent back to the client.
    pub id: bytes::Bytes,
    /// The HTTP method.
    pub method: &'static str,
    /// The matched route's template (`/api/v1/users/{id}`), or `unmatched`.
    pub route: &'static str,
}

impl RequestContext {
    /// The request id as text (ids are checked to be printable ASCII when accepted).
    pub fn id(&self) -> &str {
        std::str::from_utf8(&self.id).unwrap_or("?")
    }
}

tokio::task_local! {
    /// Set by the HTTP layer for the whole of each request.
    pub static REQUEST: RequestContext;
}

fn level_label(level: &Level, ansi: bool) -> (&'static str, &'static str) {
    let (label, colour) = match *level {
        Level::ERROR => ("ERROR", "\x1b[31m"),
        Level::WARN => (" WARN", "\x1b[33m"),
        Level::INFO => (" INFO", "\x1b[32m"),
        Level::DEBUG => ("DEBUG", "\x1b[34m"),
        Level::TRACE => ("TRACE", "\x1b[35m"),
    };
    (label, if ansi { colour } else { "" })
}

/// `2026-12-02T03:54:53.437368Z  INFO request{request_id=… method=GET route=…}: message k=v`
#[derive(Debug, Default, Clone, Copy)]
pub struct Pretty;

impl<S, N> FormatEvent<S, N> for Pretty
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ansi = writer.has_ansi_escapes();
        SystemTime.format_time(&mut writer)?;
        let (label, colour) = level_label(event.metadata().level(), ansi);
        let reset = if ansi { "\x1b[0m" } else { "" };
        write!(writer, " {colour}{label}{reset} ")?;
        let _ = REQUEST.try_with(|request| {
            write!(
                writer,
                "request{{request_id={} method={} route={}}}: ",
                request.id(),
                request.method,
                request.route
            )
        });
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_str(": ")?;
            }
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// One JSON object per line: `timestamp`, `level`, the event's fields (`message` among them),
/// `target`, and `spans` — the request first, as `{"name": "request", "request_id", "method",
/// "route"}`, then the real spans with their fields.
#[derive(Debug, Default, Clone, Copy)]
pub struct Json;

impl<S> FormatEvent<S, JsonFields> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut line = Vec::with_capacity(256);
        let mut serializer = serde_json::Serializer::new(&mut line);
        let result = (|| {
            let mut map = serializer.serialize_map(None)?;
            map.serialize_entry("timestamp", &timestamp)?;
            map.serialize_entry("level", event.metadata().level().as_str())?;
            let mut visitor = JsonVisitor {
                map: &mut map,
                result: Ok(()),
            };
            event.record(&mut visitor);
            visitor.result?;
            map.serialize_entry("target", event.metadata().target())?;
            let mut spans: Vec<serde_json::Value> = Vec::new();
            let _ = REQUEST.try_with(|request| {
                spans.push(serde_json::json!({
                    "name": "request",
                    "request_id": request.id(),
                    "method": request.method,
                    "route": request.route,
                }));
            });
            if let Some(scope) = ctx.event_scope() {
                for span in scope.from_root() {
                    let mut object = serde_json::Map::new();
                    object.insert("name".into(), span.name().into());
                    let extensions = span.extensions();
                    if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>()
                        && let Ok(serde_json::Value::Object(stored)) =
                            serde_json::from_str::<serde_json::Value>(fields)
                    {
                        object.extend(stored);
                    }
                    spans.push(serde_json::Value::Object(object));
                }
            }
            if !spans.is_empty() {
                map.serialize_entry("spans", &spans)?;
            }
            map.end()
        })();
        result.map_err(|_| fmt::Error)?;
        writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)?;
        writeln!(writer)
    }
}

/// Writes an event's fields into the JSON object being serialised.
struct JsonVisitor<'a, M: SerializeMap<Error = serde_json::Error>> {
    map: &'a mut M,
    result: Result<(), serde_json::Error>,
}

impl<M: SerializeMap<Error = serde_json::Error>> JsonVisitor<'_, M> {
    fn entry<V: serde::Serialize + ?Sized>(&mut self, field: &Field, value: &V) {
        if self.result.is_ok() {
            self.result = self.map.serialize_entry(field.name(), value);
        }
    }
}

impl<M: SerializeMap<Error = serde_json::Error>> tracing::field::Visit for JsonVisitor<'_, M> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, &value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, &value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, &value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, &value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.entry(field, &value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::{fmt::MakeWriter, prelude::*};

    /// Collects what the formatter writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lines").clone()).expect("utf-8")
        }
    }

    fn request() -> RequestContext {
        RequestContext {
            id: bytes::Bytes::from_static(b"req-7"),
            method: "GET",
            route: "/api/v1/users/{id}",
        }
    }

    /// Logs one event inside a job span, within a request.
    async fn log_in_a_request() {
        REQUEST
            .scope(request(), async {
                let job = tracing::info_span!("job", kind = "email.send");
                job.in_scope(|| tracing::warn!(status = 503_u16, elapsed_ms = 1.5, "slow request"));
            })
            .await;
        tracing::info!("outside any request");
    }

    #[tokio::test]
    async fn pretty_lines_carry_the_request_before_the_spans() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(Pretty)
                .with_ansi(false)
                .with_writer(lines.clone()),
        );
        let _default = tracing::subscriber::set_default(subscriber);
        log_in_a_request().await;
        let text = lines.text();
        let mut lines = text.lines();
        let first = lines.next().expect("a line");
        assert!(
            first.contains(
                " WARN request{request_id=req-7 method=GET route=/api/v1/users/{id}}: job{kind=\"email.send\"}: slow request status=503 elapsed_ms=1.5"
            ),
            "{first}"
        );
        let second = lines.next().expect("a second line");
        assert!(second.ends_with(" INFO outside any request"), "{second}");
    }

    #[tokio::test]
    async fn json_lines_carry_the_request_as_the_first_span() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(Json)
                .with_writer(lines.clone()),
        );
        let _default = tracing::subscriber::set_default(subscriber);
        log_in_a_request().await;
        let text = lines.text();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect();
        assert_eq!(events[0]["message"], "slow request");
        assert_eq!(events[0]["level"], "WARN");
        assert_eq!(events[0]["status"], 503);
        assert_eq!(events[0]["elapsed_ms"], 1.5);
        assert_eq!(events[0]["spans"][0]["request_id"], "req-7");
        assert_eq!(events[0]["spans"][0]["route"], "/api/v1/users/{id}");
        assert_eq!(events[0]["spans"][1]["name"], "job");
        assert_eq!(events[0]["spans"][1]["kind"], "email.send");
        assert!(events[1].get("spans").is_none(), "{}", events[1]);
    }
}
