//! JSON log lines with the fields DESIGN §6 fixes: `timestamp`, `level`, `service`, `version`,
//! `message`, then the fields of every span in scope (so `request_id` and `trace_id` reach
//! every line logged while serving a request) and the event's own fields.
//!
//! tracing-subscriber's JSON formatter nests span fields under `span`/`spans`; log pipelines
//! (Loki, Elasticsearch) index top-level keys, hence this small layer of our own.

use std::io::Write;

use serde_json::{Map, Value};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};
use tracing_subscriber::{EnvFilter, Layer, fmt::MakeWriter, layer::Context, prelude::*, registry::LookupSpan};

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global subscriber. `service` names lines that belong to no request span;
/// request spans carry their own `service` field (in `all` mode two services share a process).
pub fn init(config: &TelemetryConfig, service: &'static str) {
    let filter = EnvFilter::new(&config.log_level);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        LogFormat::Json => registry.with(JsonLines::new(service, std::io::stdout)).try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
    };
    // A second init (tests building several apps) keeps the first subscriber.
    let _ = result;
}

/// A layer writing one JSON object per event.
pub struct JsonLines<W> {
    service: &'static str,
    make_writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(service: &'static str, make_writer: W) -> Self {
        Self { service, make_writer }
    }
}

/// Span fields, stored in the span's extensions when the span is created.
struct SpanFields(Map<String, Value>);

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = FieldVisitor::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(SpanFields(fields.0));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            let mut visitor = FieldVisitor(std::mem::take(fields));
            values.record(&mut visitor);
            *fields = visitor.0;
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        let timestamp = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        line.insert("timestamp".into(), Value::String(timestamp));
        line.insert(
            "level".into(),
            Value::String(event.metadata().level().as_str().to_lowercase()),
        );
        line.insert("service".into(), Value::String(self.service.into()));
        line.insert("version".into(), Value::String(crate::VERSION.into()));
        line.insert("message".into(), Value::String(String::new()));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut fields = FieldVisitor(line);
        event.record(&mut fields);
        let mut line = fields.0;
        line.insert("target".into(), Value::String(event.metadata().target().into()));
        let Ok(mut bytes) = serde_json::to_vec(&line) else {
            return;
        };
        bytes.push(b'\n');
        // One write per line keeps lines whole when several threads log at once.
        let _ = self.make_writer.make_writer().write_all(&bytes);
    }
}

#[derive(Default)]
struct FieldVisitor(Map<String, Value>);

impl FieldVisitor {
    fn insert(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.insert(field, Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn span_fields_reach_every_line_at_top_level() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new("test-svc", move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                request_id = "abc",
                service = "api-gateway",
                status = tracing::field::Empty
            );
            let _entered = span.enter();
            span.record("status", 201_u64);
            tracing::info!(duration_ms = 1.5, "request completed");
        });
        let bytes = captured.0.lock().expect("lock").clone();
        let line: Value = serde_json::from_slice(bytes.strip_suffix(b"\n").expect("newline")).expect("json");
        assert_eq!(line["message"], "request completed");
        assert_eq!(line["request_id"], "abc");
        assert_eq!(line["service"], "api-gateway");
        assert_eq!(line["status"], 201);
        assert_eq!(line["level"], "info");
        assert_eq!(line["version"], crate::VERSION);
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
