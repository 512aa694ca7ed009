//! The console's static files, embedded in the binary (`host/assets/`).
//!
//! Each is served under a name carrying a hash of its content
//! (`console.1a2b3c4d.css`), so it can be cached for a year: a new build
//! with a changed file is a new name. Each is gzip-compressed once, at
//! first use, and sent compressed to browsers that accept it.

use std::io::Write;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// The hashed name it is served under (`/ui/static/{name}`).
    pub name: String,
    content_type: &'static str,
    raw: &'static [u8],
    gzip: Vec<u8>,
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, raw: &'static [u8]) -> Self {
        let hash = Sha256::digest(raw);
        let short: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(raw).expect("gzip into memory");
        Asset {
            name: format!("{stem}.{short}.{ext}"),
            content_type,
            raw,
            gzip: gz.finish().expect("gzip into memory"),
        }
    }

    /// The URL path the pages link to.
    pub fn url(&self) -> String {
        format!("/ui/static/{}", self.name)
    }

    /// Bytes on the wire: compressed and uncompressed.
    pub fn sizes(&self) -> (usize, usize) {
        (self.gzip.len(), self.raw.len())
    }
}

pub struct Assets {
    pub css: Asset,
    pub js: Asset,
}

pub static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    css: Asset::new(
        "console",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console.css"),
    ),
    js: Asset::new(
        "console",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console.js"),
    ),
});

/// `GET /ui/static/{name}`.
pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let assets = &*ASSETS;
    let Some(asset) = [&assets.css, &assets.js]
        .into_iter()
        .find(|a| a.name == name)
    else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let common = [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        (header::VARY, "accept-encoding"),
    ];
    if gzip {
        (
            common,
            [(header::CONTENT_ENCODING, "gzip")],
            asset.gzip.clone(),
        )
            .into_response()
    } else {
        (common, asset.raw).into_response()
    }
}
