//! The gateway's own recent log lines, for the console: a `tracing` layer
//! beside the stderr one (same filter) keeps the last [`KEPT`] events as
//! one-line text and hands new ones to whoever follows.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept for a page that opens later.
pub const KEPT: usize = 1000;

/// One log event.
#[derive(Debug, Clone)]
pub struct Line {
    pub level: Level,
    /// `2026-12-07T06:12:05Z INFO target: message key=value …`
    pub text: String,
}

struct Tail {
    lines: Mutex<VecDeque<Arc<Line>>>,
    live: broadcast::Sender<Arc<Line>>,
}

static TAIL: LazyLock<Tail> = LazyLock::new(|| Tail {
    lines: Mutex::new(VecDeque::with_capacity(KEPT)),
    live: broadcast::channel(KEPT).0,
});

/// The lines kept, and a receiver of those to come (taken together, so
/// none falls between).
pub fn follow() -> (Vec<Arc<Line>>, broadcast::Receiver<Arc<Line>>) {
    let lines = TAIL.lines.lock().expect("log tail lock");
    (lines.iter().cloned().collect(), TAIL.live.subscribe())
}

fn push(mut line: Line) {
    if crate::secrets::any_known() {
        line.text = crate::secrets::redact(&line.text).into_owned();
    }
    let line = Arc::new(line);
    let mut lines = TAIL.lines.lock().expect("log tail lock");
    if lines.len() == KEPT {
        lines.pop_front();
    }
    lines.push_back(Arc::clone(&line));
    let _ = TAIL.live.send(line);
}

/// The layer (install it with the stderr layer's filter).
pub struct TailLayer;

impl<S: Subscriber> Layer<S> for TailLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let mut text = format!(
            "{now} {:>5} {}: {}",
            meta.level(),
            meta.target(),
            fields.message
        );
        text.push_str(&fields.rest);
        push(Line {
            level: *meta.level(),
            text,
        });
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_become_lines_that_followers_get() {
        let (_, mut rx) = follow();
        let subscriber = tracing_subscriber::registry().with(TailLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(upstream = "demo", n = 3, "a marker 7f3a");
        });
        let line = rx.try_recv().unwrap();
        assert_eq!(line.level, Level::WARN);
        assert!(line.text.contains("WARN"), "{}", line.text);
        assert!(
            line.text.contains("a marker 7f3a upstream=demo n=3"),
            "{}",
            line.text
        );
        let (kept, _) = follow();
        assert!(kept.iter().any(|l| l.text.contains("7f3a")));
    }
}
