//! Where the client finds the exchange and its key: `--api` / `GPUX_API`, the key
//! in `GPUX_API_KEY`, else the client file `gpux login` writes.
//!
//! Owns the client file: TOML with `api` and `api_key`, at `GPUX_CLIENT_CONFIG`,
//! else `$XDG_CONFIG_HOME/gpux/client.toml`, else `~/.config/gpux/client.toml`. It
//! is written with mode 0600 (its directory 0700), since the key trades for the
//! account. The key is never taken from the command line, where other users of the
//! machine could read it in the process list.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::api::{Failure, Outcome, EXIT_OTHER};

/// The address used when neither `--api`, `GPUX_API` nor the file gives one.
pub const API_DEFAULT: &str = "http://127.0.0.1:8080";

/// The client file's contents.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    /// The exchange's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// The client file's path, from the environment (`env` looks a variable up).
pub fn file_path(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(p) = env("GPUX_CLIENT_CONFIG").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let base = env("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("gpux").join("client.toml"))
}

/// Reads the client file at `path`; a missing file is an empty one.
pub fn read(path: &Path) -> Outcome<ClientFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            Failure::new(
                EXIT_OTHER,
                format!("{}: {e}; fix it or run `gpux login` again", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientFile::default()),
        Err(e) => Err(Failure::new(
            EXIT_OTHER,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// Writes `file` to `path`, readable by its owner only.
pub fn write(path: &Path, file: &ClientFile) -> Outcome {
    let fail = |e: std::io::Error| {
        Failure::new(EXIT_OTHER, format!("cannot write {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(fail)?;
    }
    let text = toml::to_string(file).map_err(|e| Failure::new(EXIT_OTHER, e.to_string()))?;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(fail)?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode on open: make it private too.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    f.write_all(text.as_bytes()).map_err(fail)
}

/// The exchange's address: the flag or `GPUX_API` (clap gives either as `flag`),
/// else the file's, else [`API_DEFAULT`].
pub fn api(flag: Option<&str>, file: &ClientFile) -> String {
    flag.map(str::to_owned)
        .or_else(|| file.api.clone())
        .unwrap_or_else(|| API_DEFAULT.to_owned())
}

/// The key: `GPUX_API_KEY`, else the file's.
pub fn key(env: impl Fn(&str) -> Option<String>, file: &ClientFile) -> Option<String> {
    env("GPUX_API_KEY")
        .filter(|k| !k.trim().is_empty())
        .map(|k| k.trim().to_owned())
        .or_else(|| file.api_key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_file_is_found_by_variable_then_xdg_then_home() {
        let p = file_path(env(&[("GPUX_CLIENT_CONFIG", "/a/c.toml"), ("HOME", "/h")]));
        assert_eq!(p.unwrap(), Path::new("/a/c.toml"));
        let p = file_path(env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]));
        assert_eq!(p.unwrap(), Path::new("/x/gpux/client.toml"));
        let p = file_path(env(&[("HOME", "/h")]));
        assert_eq!(p.unwrap(), Path::new("/h/.config/gpux/client.toml"));
        assert_eq!(file_path(env(&[])), None);
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let file = ClientFile {
            api: Some("http://file:1".into()),
            api_key: Some("file-key".into()),
        };
        assert_eq!(api(Some("http://flag:2"), &file), "http://flag:2");
        assert_eq!(api(None, &file), "http://file:1");
        assert_eq!(api(None, &ClientFile::default()), API_DEFAULT);
        assert_eq!(
            key(env(&[("GPUX_API_KEY", "env-key")]), &file).unwrap(),
            "env-key"
        );
        assert_eq!(key(env(&[]), &file).unwrap(), "file-key");
    }

    #[test]
    fn written_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/client.toml");
        let file = ClientFile {
            api: Some("http://h:1".into()),
            api_key: Some("gpux_k".into()),
        };
        write(&path, &file).unwrap();
        assert_eq!(read(&path).unwrap(), file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            read(&dir.path().join("none")).unwrap(),
            ClientFile::default()
        );
        std::fs::write(&path, "apikey = 1").unwrap();
        assert!(read(&path).unwrap_err().message.contains("gpux login"));
    }
}
