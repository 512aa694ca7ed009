//! The host side of the `fetch` import: GET of granted URLs, cached.
//!
//! A JWKS is asked for on every token check, so answers are cached for
//! [`FRESH`]; a failed refresh keeps serving the last good body for up to
//! [`STALE_OK`] (an identity provider's hiccup should not lock everyone out),
//! then the error goes to the plugin.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long an answer is served without asking again.
const FRESH: Duration = Duration::from_secs(300);
/// How long a stale answer may stand in for a failed refresh.
const STALE_OK: Duration = Duration::from_secs(3600);
/// The most a fetched document may weigh.
const MAX_BODY: usize = 1024 * 1024;
/// How long one fetch may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One cache for every plugin (the same URL is fetched once).
pub struct Fetcher {
    client: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, String)>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").finish_non_exhaustive()
    }
}

impl Default for Fetcher {
    fn default() -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("a default HTTP client builds"),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl Fetcher {
    /// The body of `GET url` (the caller checked the grant).
    pub async fn get(&self, url: &str) -> Result<String, String> {
        let cached = self
            .cache
            .lock()
            .expect("fetch cache lock")
            .get(url)
            .cloned();
        if let Some((at, body)) = &cached
            && at.elapsed() < FRESH
        {
            return Ok(body.clone());
        }
        match self.fetch(url).await {
            Ok(body) => {
                self.cache
                    .lock()
                    .expect("fetch cache lock")
                    .insert(url.to_owned(), (Instant::now(), body.clone()));
                Ok(body)
            }
            Err(e) => match cached {
                Some((at, body)) if at.elapsed() < STALE_OK => {
                    tracing::warn!(url, error = %e, "refresh failed; serving the last good answer");
                    Ok(body)
                }
                _ => Err(e),
            },
        }
    }

    async fn fetch(&self, url: &str) -> Result<String, String> {
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("cannot fetch {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered HTTP {}", resp.status().as_u16()));
        }
        if resp.content_length().is_some_and(|n| n as usize > MAX_BODY) {
            return Err(format!("{url} is larger than {MAX_BODY} bytes"));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("cannot read {url}: {e}"))?;
        if bytes.len() > MAX_BODY {
            return Err(format!("{url} is larger than {MAX_BODY} bytes"));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{url} is not UTF-8 text"))
    }
}
