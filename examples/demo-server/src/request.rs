//! The context every feature handler gets: the request's parameters, which era
//! it speaks, and the per-request side channels (progress and log messages).
//!
//! Keeping era differences behind these methods is what lets one tool body
//! serve both eras: a tool calls [`Request::log`] and the era decides whether
//! (and at which threshold) a `notifications/message` goes out.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::protocol::{LogLevel, RpcError};
use crate::session::Session;

/// Which era one request speaks, with what that era carries per request.
#[derive(Debug, Clone)]
pub(crate) enum RequestEra {
    /// Served as part of the `initialize` session.
    Legacy,
    /// Carried `_meta` `io.modelcontextprotocol/protocolVersion: 2026-07-28`.
    Modern(ModernMeta),
}

/// The per-request `_meta` of a modern request.
#[derive(Debug, Clone)]
pub(crate) struct ModernMeta {
    /// `io.modelcontextprotocol/clientCapabilities`, `{}` when absent. Valid
    /// for this request only: the server must not remember it.
    pub client_capabilities: Value,
    /// `io.modelcontextprotocol/logLevel`; `None` means send no log messages.
    pub log_level: Option<LogLevel>,
}

pub(crate) struct Request {
    pub id: Value,
    pub params: Value,
    pub era: RequestEra,
    pub session: Arc<Session>,
}

impl Request {
    pub fn is_modern(&self) -> bool {
        matches!(self.era, RequestEra::Modern(_))
    }

    /// A required string parameter (protocol-level: a missing one is -32602).
    pub fn str_param(&self, key: &str) -> Result<&str, RpcError> {
        self.params
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params(format!("missing string parameter `{key}`")))
    }

    /// `_meta.progressToken`, present when the client wants progress notifications.
    pub fn progress_token(&self) -> Option<&Value> {
        self.params
            .get("_meta")
            .and_then(|meta| meta.get("progressToken"))
    }

    /// Sends `notifications/progress` if the client asked for progress.
    pub fn progress(&self, progress: u64, total: Option<u64>, message: Option<String>) {
        let Some(token) = self.progress_token() else {
            return;
        };
        let mut params = json!({ "progressToken": token, "progress": progress });
        if let Some(total) = total {
            params["total"] = json!(total);
        }
        if let Some(message) = message {
            params["message"] = json!(message);
        }
        self.session.notify("notifications/progress", params);
    }

    /// Sends `notifications/message` if the era's threshold lets `level` through:
    /// the session's `logging/setLevel` (legacy), or this request's `_meta`
    /// logLevel (modern; none means no messages).
    pub fn log(&self, level: LogLevel, data: Value) {
        let threshold = match &self.era {
            RequestEra::Legacy => self.session.legacy_log_level(),
            RequestEra::Modern(meta) => match meta.log_level {
                Some(level) => level,
                None => return,
            },
        };
        if level >= threshold {
            self.session.notify(
                "notifications/message",
                json!({ "level": level.as_str(), "logger": self.session.opts.name, "data": data }),
            );
        }
    }
}
