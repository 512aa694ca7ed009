//! Secrets encrypted at rest: the store `${secret:NAME}` reads, and the
//! redaction that keeps its values out of everything the gateway prints.
//!
//! The store is one file (`[secrets] store`, by default `NAME.secrets`
//! beside the config file): a comment line, then the base64 of a random
//! 24-byte nonce and the XChaCha20-Poly1305 encryption of a JSON object of
//! names to values, with the format line as associated data. The whole map
//! is one message, so names are hidden too and a file cut or spliced does not
//! open. The 32-byte key comes from `$SWITCHYARD_SECRET_KEY` or `[secrets]
//! key_file` (which must not be readable by group or others), written as
//! 64 hex digits or base64; `switchyard secret keygen` makes one.
//!
//! Redaction: every value of a store the process opened is remembered, and
//! [`redact`] replaces each occurrence with `(secret)`. The log writer, the
//! upstreams' stderr capture, configuration errors and the admin API's
//! problems pass through it. Values shorter than [`MIN_LEN`] are refused at
//! `set`: they could not be told apart from ordinary text.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The first line of a store, also its associated data.
const FORMAT: &str =
    "# switchyard secrets v1 (XChaCha20-Poly1305); change with `switchyard secret`";

/// The environment variable a key may come from.
pub const KEY_ENV: &str = "SWITCHYARD_SECRET_KEY";

/// The shortest value a store accepts (see the module docs).
pub const MIN_LEN: usize = 8;

/// What replaces a secret's value wherever it would be shown.
pub const REDACTED: &str = "(secret)";

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no secret key: set ${KEY_ENV} or [secrets] key_file (`switchyard secret keygen` makes one)"
    )]
    NoKey,
    #[error("secret key {0}: {1}")]
    BadKey(String, String),
    #[error(
        "the secret key does not open {0}: wrong key, or the file was changed outside `switchyard secret`"
    )]
    WrongKey(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: not a secret store ({1})")]
    Format(PathBuf, String),
    #[error("`{0}` is not a valid secret name (letters, digits, `_`, `-`, `.`; at most 128)")]
    BadName(String),
    #[error("a secret must be at least {MIN_LEN} bytes (shorter values cannot be redacted)")]
    TooShort,
}

/// A 32-byte store key. Debug never shows it.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    pub fn generate() -> Key {
        Key(rand::random())
    }

    /// 64 hex digits or the base64 of 32 bytes (surrounding space ignored).
    pub fn parse(text: &str, whence: &str) -> Result<Key, SecretError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digits"))
                .collect()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| bad_key(whence))?
        };
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad_key(whence))?;
        Ok(Key(bytes))
    }

    /// Reads a key file, refusing one that group or others may read.
    pub fn from_file(path: &Path) -> Result<Key, SecretError> {
        let whence = format!("file {}", path.display());
        let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::BadKey(
                whence,
                format!(
                    "may be read by others (mode {mode:o}): chmod 600 {}",
                    path.display()
                ),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        Key::parse(&text, &whence)
    }

    /// The key from `key_file` when given, else from `env` (the value of
    /// `$SWITCHYARD_SECRET_KEY`).
    pub fn resolve(key_file: Option<&Path>, env: Option<String>) -> Result<Key, SecretError> {
        match (key_file, env) {
            (Some(f), _) => Key::from_file(f),
            (None, Some(v)) if !v.trim().is_empty() => Key::parse(&v, &format!("${KEY_ENV}")),
            (None, _) => Err(SecretError::NoKey),
        }
    }

    /// The key as 64 hex digits (what `keygen` prints).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn bad_key(whence: &str) -> SecretError {
    SecretError::BadKey(
        whence.to_owned(),
        "expected 32 bytes as 64 hex digits or base64".into(),
    )
}

fn io(path: &Path, e: std::io::Error) -> SecretError {
    SecretError::Io(path.to_path_buf(), e)
}

/// Whether `name` may name a secret.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// An opened store: its file, its key and its entries (in name order).
pub struct Store {
    path: PathBuf,
    key: Key,
    entries: BTreeMap<String, String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("names", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Store {
    /// Opens the store at `path` with `key` (a missing file is an empty
    /// store) and remembers its values for [`redact`].
    pub fn open(path: &Path, key: Key) -> Result<Store, SecretError> {
        let entries = match std::fs::read_to_string(path) {
            Ok(text) => decrypt(path, &key, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(path, e)),
        };
        let store = Store {
            path: path.to_path_buf(),
            key,
            entries,
        };
        store.remember();
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Sets `name` (in memory: [`Store::save`] writes it).
    pub fn set(&mut self, name: &str, value: String) -> Result<(), SecretError> {
        if !valid_name(name) {
            return Err(SecretError::BadName(name.to_owned()));
        }
        if value.len() < MIN_LEN {
            return Err(SecretError::TooShort);
        }
        self.entries.insert(name.to_owned(), value);
        self.remember();
        Ok(())
    }

    /// Removes `name`; whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.entries.remove(name).is_some()
    }

    /// Writes the store: a new file (mode 0600) renamed over the old one,
    /// so a reader sees the old store or the new, never half of one.
    pub fn save(&self) -> Result<(), SecretError> {
        let plain = serde_json::to_vec(&self.entries).expect("a map of strings serializes");
        let nonce: [u8; 24] = rand::random();
        let cipher = XChaCha20Poly1305::new((&self.key.0).into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: FORMAT.as_bytes(),
                },
            )
            .expect("encryption of a bounded message succeeds");
        let mut body = nonce.to_vec();
        body.extend_from_slice(&sealed);
        let text = format!(
            "{FORMAT}\n{}\n",
            base64::engine::general_purpose::STANDARD.encode(body)
        );
        write_private(&self.path, text.as_bytes()).map_err(|e| io(&self.path, e))
    }

    fn remember(&self) {
        remember(self.entries.values().cloned());
    }
}

/// Writes `bytes` to `path` readable by its owner only (0600): a new file
/// renamed over the old one, so a reader sees the old content or the new,
/// never half of one. (The store, and ACME's account and private key.)
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode_0600()
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `OpenOptions::mode(0o600)`, named for what it is for.
trait Private {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Private for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

fn decrypt(path: &Path, key: &Key, text: &str) -> Result<BTreeMap<String, String>, SecretError> {
    let format = |why: &str| SecretError::Format(path.to_path_buf(), why.to_owned());
    let mut lines = text.lines();
    if lines.next() != Some(FORMAT) {
        return Err(format("its first line is not the format line"));
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(lines.next().unwrap_or_default().trim())
        .map_err(|_| format("its second line is not base64"))?;
    if body.len() < 24 + 16 {
        return Err(format("too short"));
    }
    let (nonce, sealed) = body.split_at(24);
    let plain = XChaCha20Poly1305::new((&key.0).into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: FORMAT.as_bytes(),
            },
        )
        .map_err(|_| SecretError::WrongKey(path.to_path_buf()))?;
    serde_json::from_slice(&plain).map_err(|_| format("its content is not a map of strings"))
}

/// Every secret value this process has seen, longest first (so a value
/// that contains another is replaced whole).
static KNOWN: LazyLock<ArcSwap<Vec<String>>> = LazyLock::new(|| ArcSwap::from_pointee(Vec::new()));

fn remember(values: impl Iterator<Item = String>) {
    let mut known = (**KNOWN.load()).clone();
    let before = known.len();
    for v in values {
        if v.len() >= MIN_LEN && !known.contains(&v) {
            known.push(v);
        }
    }
    if known.len() != before {
        known.sort_by_key(|v| std::cmp::Reverse(v.len()));
        KNOWN.store(Arc::new(known));
    }
}

/// `text` with every known secret value replaced by `(secret)`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let known = KNOWN.load();
    let mut out = Cow::Borrowed(text);
    for v in known.iter() {
        if out.contains(v.as_str()) {
            out = Cow::Owned(out.replace(v.as_str(), REDACTED));
        }
    }
    out
}

/// Whether any secret is known (the log writer's fast path).
pub fn any_known() -> bool {
    !KNOWN.load().is_empty()
}

/// A `tracing_subscriber` writer that redacts each write (the fmt layer
/// writes one whole event per call).
pub struct Redacting<W>(pub W);

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !any_known() {
            return self.0.write(buf);
        }
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "switchyard-secrets-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_store_round_trips_and_hides_its_content() {
        let path = dir().join("s.secrets");
        let key = Key::generate();
        let mut store = Store::open(&path, key.clone()).unwrap();
        assert_eq!(store.names().count(), 0);
        store.set("API_KEY", "sk-round-trip-1234".into()).unwrap();
        store.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("sk-round-trip") && !text.contains("API_KEY"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let again = Store::open(&path, key).unwrap();
        assert_eq!(again.get("API_KEY"), Some("sk-round-trip-1234"));
        assert!(matches!(
            Store::open(&path, Key::generate()),
            Err(SecretError::WrongKey(_))
        ));
    }

    #[test]
    fn a_tampered_store_does_not_open() {
        let path = dir().join("t.secrets");
        let key = Key::generate();
        let mut store = Store::open(&path, key.clone()).unwrap();
        store.set("A", "value-of-a-1".into()).unwrap();
        store.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut body = base64::engine::general_purpose::STANDARD
            .decode(&lines[1])
            .unwrap();
        let last = body.len() - 1;
        body[last] ^= 1;
        lines[1] = base64::engine::general_purpose::STANDARD.encode(body);
        std::fs::write(&path, lines.join("\n")).unwrap();
        assert!(matches!(
            Store::open(&path, key.clone()),
            Err(SecretError::WrongKey(_))
        ));
        std::fs::write(&path, "hello\n").unwrap();
        assert!(matches!(
            Store::open(&path, key),
            Err(SecretError::Format(..))
        ));
    }

    #[test]
    fn keys_parse_from_hex_and_base64_and_files_must_be_private() {
        let key = Key::generate();
        assert_eq!(Key::parse(&key.to_hex(), "x").unwrap().0, key.0);
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.0);
        assert_eq!(Key::parse(&format!(" {b64}\n"), "x").unwrap().0, key.0);
        assert!(Key::parse("abcd", "x").is_err());
        assert!(matches!(Key::resolve(None, None), Err(SecretError::NoKey)));
        let file = dir().join("key");
        std::fs::write(&file, key.to_hex()).unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let e = Key::from_file(&file).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        assert_eq!(Key::resolve(Some(&file), None).unwrap().0, key.0);
    }

    #[test]
    fn names_and_short_values_are_checked() {
        let mut store = Store::open(&dir().join("n.secrets"), Key::generate()).unwrap();
        assert!(matches!(
            store.set("a b", "long-enough".into()),
            Err(SecretError::BadName(_))
        ));
        assert!(matches!(
            store.set("short", "1234567".into()),
            Err(SecretError::TooShort)
        ));
        assert!(store.set("ok.name-1", "12345678".into()).is_ok());
    }

    #[test]
    fn redaction_replaces_known_values_longest_first() {
        remember(["redact-me-please".to_owned(), "redact-me".to_owned()].into_iter());
        assert_eq!(
            redact("a redact-me-please b redact-me c"),
            "a (secret) b (secret) c"
        );
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
        let mut out = Vec::new();
        std::io::Write::write_all(&mut Redacting(&mut out), b"key=redact-me\n").unwrap();
        assert_eq!(out, b"key=(secret)\n");
    }
}
