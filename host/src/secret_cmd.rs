//! `switchyard secret`: set, list and remove the secrets of a configuration's
//! store, and make a key. Values are read from stdin (never an argument, so
//! never in shell history or `ps`), without echo when stdin is a terminal.

use std::io::{IsTerminal as _, Read as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use switchyard::secrets::{Key, Store};

use crate::EXIT_CONFIG;

#[derive(clap::Subcommand)]
pub enum SecretCommand {
    /// Set NAME to the value read from stdin (one trailing newline dropped).
    Set {
        name: String,
        /// The configuration whose store to use (default as for `serve`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List the names in the store (never the values).
    List {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove NAME from the store.
    Rm {
        name: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Make a new key: printed as 64 hex digits (for
    /// $SWITCHYARD_SECRET_KEY), or written to a new file with mode 0600.
    Keygen {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(command: SecretCommand) -> ExitCode {
    let outcome = match command {
        SecretCommand::Set { name, config } => set(&crate::config_path(config), &name),
        SecretCommand::List { config } => open(&crate::config_path(config)).map(|store| {
            for name in store.names() {
                println!("{name}");
            }
        }),
        SecretCommand::Rm { name, config } => {
            open(&crate::config_path(config)).and_then(|mut store| {
                if !store.remove(&name) {
                    return Err(format!("no secret `{name}` in {}", store.path().display()));
                }
                store.save().map_err(|e| e.to_string())
            })
        }
        SecretCommand::Keygen { out } => keygen(out.as_deref()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard secret: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn open(config: &Path) -> Result<Store, String> {
    let settings = switchyard::config::secrets_settings(config).map_err(|e| e.to_string())?;
    switchyard::config::open_secrets(&settings)
}

fn set(config: &Path, name: &str) -> Result<(), String> {
    let mut store = open(config)?;
    let value = read_value(name)?;
    store.set(name, value).map_err(|e| e.to_string())?;
    store.save().map_err(|e| e.to_string())?;
    eprintln!("secret `{name}` set in {}", store.path().display());
    Ok(())
}

/// The value on stdin: typed without echo at a terminal, else all of it.
fn read_value(name: &str) -> Result<String, String> {
    let mut value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("value of {name}: ")).map_err(|e| e.to_string())?
    } else {
        let mut all = String::new();
        std::io::stdin()
            .read_to_string(&mut all)
            .map_err(|e| format!("cannot read the value from stdin: {e}"))?;
        all
    };
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

fn keygen(out: Option<&Path>) -> Result<(), String> {
    let key = Key::generate().to_hex();
    match out {
        None => println!("{key}"),
        Some(path) => {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            writeln!(f, "{key}").map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!(
                "key written to {} (set [secrets] key_file to it)",
                path.display()
            );
        }
    }
    Ok(())
}
