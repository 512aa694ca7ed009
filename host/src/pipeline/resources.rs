//! Resource routing: which upstream owns a URI, reads by URI, and
//! subscriptions shared by every client of a route.

use serde_json::{Value, json};

use super::*;

impl Gateway {
    /// The upstreams that may own `uri`, best candidate first.
    fn uri_candidates(&self, route: &Route, uri: &str) -> Vec<UpstreamName> {
        if !route.aggregates() {
            return route.upstreams.clone();
        }
        let state = self.state(route);
        let index = state.index.lock().expect("index lock");
        if let Some(owner) = index.resources.get(uri) {
            return vec![owner.clone()];
        }
        let mut out: Vec<UpstreamName> = Vec::new();
        let mut templates: Vec<&(String, UpstreamName)> = index
            .templates
            .iter()
            .filter(|(p, _)| uri.starts_with(p.as_str()))
            .collect();
        templates.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        for (_, up) in templates {
            if !out.contains(up) {
                out.push(up.clone());
            }
        }
        for up in &route.upstreams {
            if !out.contains(up) {
                out.push(up.clone());
            }
        }
        out
    }

    /// Routes a request by resource URI: the owner if known, else each
    /// candidate in turn until one does not answer "not found".
    pub(super) async fn by_uri(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        method: &str,
        uri: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        let candidates = self.uri_candidates(route, uri);
        let mut last = None;
        for name in &candidates {
            let up = self.upstream(name)?;
            if candidates.len() > 1
                && up
                    .info()
                    .is_some_and(|i| i.capabilities.get("resources").is_none())
            {
                continue;
            }
            // A modern upstream has no resources/subscribe: the URI joins
            // the filter of the gateway's own subscription to it.
            if matches!(method, "resources/subscribe" | "resources/unsubscribe")
                && up.live().await.is_ok_and(|l| l.info.era == Era::Modern)
            {
                up.watch_resource(uri, method == "resources/subscribe");
                return Ok(json!({}));
            }
            match self.forward(&up, ctx, method, params.clone(), sink).await {
                Err(f)
                    if candidates.len() > 1
                        && matches!(
                            f.error.code,
                            code::RESOURCE_NOT_FOUND | code::INVALID_PARAMS
                        ) =>
                {
                    last = Some(f);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| {
            Failure::client(code::INVALID_PARAMS, format!("resource not found: {uri}"))
        }))
    }

    /// `resources/subscribe`: subscribes the owning upstream on the route's
    /// first subscription to `uri`.
    pub(super) async fn subscribe(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        uri: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        let first = {
            let state = self.state(route);
            let mut subs = state.subscriptions.lock().expect("subs lock");
            let n = subs.entry(uri.to_owned()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if !first {
            return Ok(json!({}));
        }
        let r = self
            .by_uri(route, ctx, "resources/subscribe", uri, params, sink)
            .await;
        if r.is_err() {
            let state = self.state(route);
            let mut subs = state.subscriptions.lock().expect("subs lock");
            subs.remove(uri);
        }
        r
    }

    /// Drops one client subscription to each of `uris`, unsubscribing the
    /// upstream when the last one goes.
    pub async fn release(&self, route: &Route, uris: &[String]) {
        let last: Vec<String> = {
            let state = self.state(route);
            let mut subs = state.subscriptions.lock().expect("subs lock");
            uris.iter()
                .filter(|u| match subs.get_mut(u.as_str()) {
                    Some(n) if *n > 1 => {
                        *n -= 1;
                        false
                    }
                    Some(_) => {
                        subs.remove(u.as_str());
                        true
                    }
                    None => false,
                })
                .cloned()
                .collect()
        };
        let ctx = ClientCtx::gateway();
        let (sink, _) = mpsc::unbounded_channel();
        for uri in last {
            let params = Some(json!({"uri": uri}));
            if let Err(f) = self
                .by_uri(route, &ctx, "resources/unsubscribe", &uri, params, &sink)
                .await
            {
                tracing::debug!(%uri, error = %f.error, "upstream unsubscribe failed");
            }
        }
    }
}
