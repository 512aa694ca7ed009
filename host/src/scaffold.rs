//! `switchyard plugin new NAME`: writes a plugin crate that builds as is.
//!
//! The crate is its own workspace (so it builds wherever it is created),
//! depends on the SDK by path (the SDK is not published to a registry yet;
//! by default the `sdk/` of the source tree this binary was built from,
//! else `--sdk PATH`), and holds a working policy with a unit test.

use std::path::{Path, PathBuf};

/// The SDK of the source tree this binary was built from.
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// Why a scaffold was not written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a crate name: use lower-case letters, digits, `-` and `_`, starting with a letter"
    )]
    BadName(String),
    #[error("{0} already exists; choose another name or folder")]
    Exists(PathBuf),
    #[error(
        "the plugin SDK was not found at {0}; pass --sdk PATH (the `sdk/` folder of a Switchyard checkout)"
    )]
    NoSdk(PathBuf),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes the crate `name` under `parent`; returns its folder.
pub fn new_plugin(name: &str, parent: &Path, sdk: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid || name.len() > 64 {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let sdk = sdk
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(BUILT_FROM_SDK));
    let sdk = sdk
        .canonicalize()
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or(ScaffoldError::NoSdk(sdk))?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let crate_name = name.replace('-', "_");
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk)),
        ("src/lib.rs", LIB_RS.to_owned()),
        ("README.md", readme(name, &crate_name)),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
            std::fs::write(&path, text)
        };
        write().map_err(|source| ScaffoldError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(dir)
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the WebAssembly component; rlib: native unit tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
switchyard-sdk = {{ path = {sdk:?} }}

[profile.release]
opt-level = "s"
lto = true
strip = true

# Its own workspace, so it builds wherever it was created.
[workspace]
"#,
        sdk = sdk.display().to_string()
    )
}

const LIB_RS: &str = r#"//! A Switchyard plugin: refuses calls to the tools named in its `deny`
//! config list, and lets everything else through.

use switchyard_sdk::{Context, Hooks, Params, Plugin, Rejection, RequestDecision, Value, codes, export};

pub struct Guard {
    deny: Vec<String>,
}

impl Plugin for Guard {
    // Only `tools/call` requests reach this plugin.
    const HOOKS: Hooks = Hooks::REQUEST;
    const METHODS: &'static [&'static str] = &["tools/call"];

    fn configure(config: Value) -> Result<Self, String> {
        let deny = match config.get("deny") {
            None => Vec::new(),
            Some(list) => serde_json_list(list).ok_or("`deny` must be a list of tool names")?,
        };
        Ok(Guard { deny })
    }

    fn on_request(&self, ctx: &Context, _params: &Params) -> RequestDecision {
        match ctx.target.as_deref() {
            Some(tool) if self.deny.iter().any(|d| d == tool) => {
                Rejection::new(codes::INVALID_PARAMS, format!("tool `{tool}` is not allowed here")).into()
            }
            _ => RequestDecision::proceed(),
        }
    }
}

fn serde_json_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
}

export!(Guard);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::serde_json::json;
    use switchyard_sdk::testing::Harness;

    #[test]
    fn denied_tools_are_refused_and_others_pass() {
        let h = Harness::<Guard>::new(json!({"deny": ["delete_everything"]})).unwrap();
        let denied = h.on_request(&Context::new("tools/call").with_target("delete_everything"), &Params::none());
        assert!(matches!(denied, RequestDecision::Reject(_)));
        let allowed = h.on_request(&Context::new("tools/call").with_target("echo"), &Params::none());
        assert!(matches!(allowed, RequestDecision::Continue(_)));
    }

    #[test]
    fn a_bad_config_is_refused() {
        assert!(Harness::<Guard>::new(json!({"deny": "everything"})).is_err());
    }
}
"#;

fn readme(name: &str, crate_name: &str) -> String {
    format!(
        r#"# {name}

A Switchyard plugin (WebAssembly component, `switchyard:plugin@0.1.0`).

```sh
cargo test                                          # unit tests, natively
cargo build --release --target wasm32-wasip2        # the component
```

The component is `target/wasm32-wasip2/release/{crate_name}.wasm`. Use it on
a route:

```toml
[plugins.guard]
component = "path/to/{crate_name}.wasm"
config = {{ deny = ["delete_everything"] }}

[[routes]]
path = "/mcp"
plugins = ["guard"]
```

The gateway reloads the plugin when the `.wasm` or the config changes.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_existing_folders_kept() {
        let dir = std::env::temp_dir().join(format!("sy-scaffold-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            new_plugin("Bad Name", &dir, None),
            Err(ScaffoldError::BadName(_))
        ));
        let made = new_plugin("good-one", &dir, None).unwrap();
        assert!(made.join("src/lib.rs").is_file());
        assert!(matches!(
            new_plugin("good-one", &dir, None),
            Err(ScaffoldError::Exists(_))
        ));
        assert!(matches!(
            new_plugin("other", &dir, Some(Path::new("/nonexistent"))),
            Err(ScaffoldError::NoSdk(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
