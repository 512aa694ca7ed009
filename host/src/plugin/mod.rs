//! The plugin chain: policy as WebAssembly components (the plugin platform
//! fills this in).
//!
//! Today a route's chain is empty and every request continues unchanged; the
//! types below are the seam `pipeline` already calls through, so that adding
//! the runtime changes this module and not the request path.

use serde_json::Value;

use crate::mcp::RpcError;

/// What the host does next after the request phase.
#[derive(Debug)]
pub enum Decision {
    /// Go on to the next plugin and then the upstream, with these params.
    Continue(Option<Value>),
    /// Answer the client with this result; the upstream is not called.
    Respond(Value),
    /// Answer the client with this error and HTTP status.
    Reject { error: RpcError, status: u16 },
}

/// A route's ordered plugin instances.
#[derive(Debug, Default, Clone)]
pub struct Chain {
    names: Vec<String>,
}

impl Chain {
    pub fn new(names: &[String]) -> Self {
        Self {
            names: names.to_vec(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The request phase: plugins in configured order.
    pub fn on_request(&self, _method: &str, params: Option<Value>) -> Decision {
        Decision::Continue(params)
    }

    /// The response phase: plugins that ran, in reverse order.
    pub fn on_response(
        &self,
        _method: &str,
        result: Result<Value, RpcError>,
    ) -> Result<Value, RpcError> {
        result
    }
}
