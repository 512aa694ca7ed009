//! Live reconfiguration: the gateway watches its config file (and the admin
//! API's state file and the secret store beside it) and every plugin
//! component file, and applies
//! what changed (or everything, on `SIGHUP`).
//!
//! A change is debounced (editors write a file in several steps), the config
//! is loaded and validated again, and [`Gateway::apply`] changes only what
//! differs: plugins, upstreams, routes. A file that does not validate, or a plugin that does not load,
//! changes nothing: the reason is logged and the running version serves on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config;
use crate::pipeline::Gateway;

/// How long to wait for a burst of file events to settle.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Starts watching `config_path` (and the components it names) for the
/// life of the gateway.
pub fn spawn(config_path: PathBuf, gateway: Arc<Gateway>) {
    tokio::spawn(async move {
        if let Err(e) = watch(config_path, gateway).await {
            tracing::warn!(error = %e, "hot reload is off: the config file cannot be watched");
        }
    });
}

async fn watch(config_path: PathBuf, gateway: Arc<Gateway>) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let files = Arc::new(std::sync::Mutex::new(Vec::<PathBuf>::new()));
    let wanted = Arc::clone(&files);
    let events = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if event.kind.is_access() {
            return;
        }
        let wanted = wanted.lock().expect("watched files lock");
        if event
            .paths
            .iter()
            .any(|p| wanted.iter().any(|w| same_file(p, w)))
        {
            let _ = events.send(());
        }
    })?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut rewatch = |watcher: &mut notify::RecommendedWatcher, mut want: Vec<PathBuf>| {
        want.push(config_path.clone());
        // Watch folders, not files: an editor that replaces a file by
        // renaming over it would end a watch on the file itself.
        let mut next: Vec<PathBuf> = want
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .map(|d| {
                if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d
                }
            })
            .collect();
        next.sort();
        next.dedup();
        for d in dirs.iter().filter(|d| !next.contains(d)) {
            let _ = watcher.unwatch(d);
        }
        for d in next.iter().filter(|d| !dirs.contains(d)) {
            if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %d.display(), error = %e, "cannot watch for plugin changes");
            }
        }
        dirs = next;
        *files.lock().expect("watched files lock") = want;
    };
    rewatch(&mut watcher, watched_files(&gateway).await);

    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let forced = tokio::select! {
            got = rx.recv() => {
                if got.is_none() {
                    return Ok(());
                }
                false
            }
            Some(()) = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        tokio::time::sleep(DEBOUNCE).await;
        while rx.try_recv().is_ok() {}
        let why = if forced { "SIGHUP" } else { "a file changed" };
        reload(&config_path, &gateway, why).await;
        rewatch(&mut watcher, watched_files(&gateway).await);
    }
}

/// One reload attempt; logs what happened.
pub async fn reload(config_path: &Path, gateway: &Gateway, why: &str) {
    let started = Instant::now();
    let config = match config::load(Some(config_path)) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(reason = %e, "config change refused ({why}); the running configuration stays");
            return;
        }
    };
    match gateway.apply(&config).await {
        Ok(done) if done.is_empty() => {
            tracing::debug!(why, "reload: nothing changed");
        }
        Ok(done) => tracing::info!(
            why,
            plugins = ?done.plugins.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            routes = ?done.routes,
            routes_removed = ?done.routes_removed,
            upstreams_added = ?done.upstreams_added,
            upstreams_changed = ?done.upstreams_changed,
            upstreams_removed = ?done.upstreams_removed,
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "configuration applied"
        ),
        Err(e) => {
            tracing::warn!(reason = %e, "configuration change refused ({why}); the running configuration stays");
        }
    }
}

/// The component files in use, the admin API's state file and the secret
/// store (`switchyard secret set` on a running gateway applies at once).
async fn watched_files(gateway: &Gateway) -> Vec<PathBuf> {
    let mut files = gateway.plugin_files().await;
    let config = gateway.config();
    if let Some(f) = config.admin.and_then(|a| a.state_file) {
        files.push(f);
    }
    files.push(config.secrets.store);
    files
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || (a.file_name() == b.file_name() && canonical_parent(a) == canonical_parent(b))
}

fn canonical_parent(p: &Path) -> Option<PathBuf> {
    p.parent().and_then(|d| {
        let d = if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        };
        d.canonicalize().ok()
    })
}
