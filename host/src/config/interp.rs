//! `${VAR}`, `${VAR:-default}` and `${secret:NAME}` interpolation of
//! configuration strings.
//!
//! Written by hand: the grammar is two forms and one escape (`$${` for a
//! literal `${`), and the error must name the variable; a template crate
//! would bring more syntax than operators should have to think about.

/// Where variables come from. The process environment in production; a map
/// in tests, so that tests never mutate the environment.
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;

    /// The value of secret `name` (`${secret:NAME}`), or why there is none.
    fn secret(&self, name: &str) -> Result<String, String> {
        Err(format!(
            "`${{secret:{name}}}` needs a secret store, and none is open here"
        ))
    }
}

/// The process environment, plus the built-in `SWITCHYARD_BIN` (the path of
/// the running gateway binary) when the environment does not set it.
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        match std::env::var(name) {
            Ok(v) => Some(v),
            Err(_) if name == "SWITCHYARD_BIN" => std::env::current_exe()
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
            Err(_) => None,
        }
    }
}

impl Vars for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InterpError {
    #[error("environment variable `{0}` is not set and has no default (write ${{{0}:-default}})")]
    Unset(String),
    #[error("unterminated `${{` in `{0}`")]
    Unterminated(String),
    #[error("`{0}` is not a valid variable name")]
    BadName(String),
    #[error("{0}")]
    Secret(String),
}

/// Replaces every `${VAR}` / `${VAR:-default}` in `input`.
pub fn interpolate(input: &str, vars: &dyn Vars) -> Result<String, InterpError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix("${") {
            // `$${` is a literal `${`.
            out.push_str("${");
            rest = stripped;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(InterpError::Unterminated(input.to_owned()));
        };
        let body = &body_start[..end];
        if let Some(name) = body.strip_prefix("secret:") {
            if !crate::secrets::valid_name(name) {
                return Err(InterpError::BadName(format!("secret:{name}")));
            }
            out.push_str(&vars.secret(name).map_err(InterpError::Secret)?);
            rest = &body_start[end + 1..];
            continue;
        }
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(InterpError::BadName(name.to_owned()));
        }
        match (vars.get(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(InterpError::Unset(name.to_owned())),
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `vars`, and the secret store of `settings`, opened at the first
/// `${secret:NAME}` (a configuration without one never needs the key).
pub struct WithSecrets<'a> {
    env: &'a dyn Vars,
    settings: &'a super::SecretsConfig,
    store: std::sync::OnceLock<Result<crate::secrets::Store, String>>,
}

impl<'a> WithSecrets<'a> {
    pub fn new(env: &'a dyn Vars, settings: &'a super::SecretsConfig) -> Self {
        WithSecrets {
            env,
            settings,
            store: std::sync::OnceLock::new(),
        }
    }

    /// The store, opened now if it is not yet, or why it does not open.
    pub fn open(&self) -> Result<&crate::secrets::Store, String> {
        self.store
            .get_or_init(|| self.opened())
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The store, to keep (for changing it).
    pub fn open_owned(self) -> Result<crate::secrets::Store, String> {
        let (env, settings) = (self.env, self.settings);
        match self.store.into_inner() {
            Some(store) => store,
            None => WithSecrets::new(env, settings).opened(),
        }
    }

    fn opened(&self) -> Result<crate::secrets::Store, String> {
        use crate::secrets::{KEY_ENV, Key, Store};
        let key = Key::resolve(self.settings.key_file.as_deref(), self.env.get(KEY_ENV))
            .map_err(|e| e.to_string())?;
        Store::open(&self.settings.store, key).map_err(|e| e.to_string())
    }
}

impl Vars for WithSecrets<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.env.get(name)
    }

    fn secret(&self, name: &str) -> Result<String, String> {
        let store = self.open()?;
        store.get(name).map(str::to_owned).ok_or_else(|| {
            format!(
                "no secret `{name}` in {} (add it with `switchyard secret set {name}`)",
                store.path().display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars() -> HashMap<String, String> {
        HashMap::from([
            ("A".to_owned(), "1".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ])
    }

    #[test]
    fn replaces_and_defaults() {
        let v = vars();
        assert_eq!(interpolate("x${A}y", &v).unwrap(), "x1y");
        assert_eq!(interpolate("${B:-two}", &v).unwrap(), "two");
        assert_eq!(interpolate("${A:-two}", &v).unwrap(), "1");
        assert_eq!(interpolate("${EMPTY:-d}", &v).unwrap(), "");
        assert_eq!(interpolate("$$ $${A} $x", &v).unwrap(), "$$ ${A} $x");
        assert_eq!(interpolate("Bearer ${A}${A}", &v).unwrap(), "Bearer 11");
    }

    struct WithSecret;

    impl Vars for WithSecret {
        fn get(&self, _: &str) -> Option<String> {
            None
        }

        fn secret(&self, name: &str) -> Result<String, String> {
            match name {
                "TOKEN" => Ok("s3cret-value".into()),
                _ => Err(format!("no secret `{name}`")),
            }
        }
    }

    #[test]
    fn secrets_come_from_the_store() {
        assert_eq!(
            interpolate("Bearer ${secret:TOKEN}", &WithSecret).unwrap(),
            "Bearer s3cret-value"
        );
        assert_eq!(
            interpolate("${secret:NOPE}", &WithSecret),
            Err(InterpError::Secret("no secret `NOPE`".into()))
        );
        assert!(matches!(
            interpolate("${secret:a b}", &WithSecret),
            Err(InterpError::BadName(_))
        ));
        // Without a store, the error says so.
        assert!(
            interpolate("${secret:TOKEN}", &vars())
                .unwrap_err()
                .to_string()
                .contains("secret store")
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let v = vars();
        assert_eq!(
            interpolate("${NOPE}", &v),
            Err(InterpError::Unset("NOPE".into()))
        );
        assert!(
            interpolate("${NOPE}", &v)
                .unwrap_err()
                .to_string()
                .contains("`NOPE`")
        );
        assert!(matches!(
            interpolate("${A", &v),
            Err(InterpError::Unterminated(_))
        ));
        assert!(matches!(
            interpolate("${a-b}", &v),
            Err(InterpError::BadName(_))
        ));
    }
}
