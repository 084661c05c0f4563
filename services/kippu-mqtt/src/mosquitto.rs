//! Mosquitto's password file and ACL, written by Kippu and reloaded at once.
//!
//! A password is known only when it is issued, so Kippu computes the password-file
//! line then ([`mosquitto_password_line`]) and keeps it beside the SHA-256 it checks
//! itself. Whenever a login is added, rotated or revoked it rewrites the whole file
//! from the kept lines ([`write_mosquitto_files`]) and sends Mosquitto SIGHUP
//! ([`reload_mosquitto`]), on which Mosquitto 2.0 re-reads its password and ACL files
//! and re-checks every connected client against them (`mosquitto_security_apply`),
//! disconnecting those whose login no longer checks out (revoked, or rotated to a new
//! password); `tests/acl.rs` (`logins_are_issued_rotated_and_revoked_live`) observes
//! this on Mosquitto 2.0.11.
//!
//! The line format is that of `mosquitto_passwd` in Mosquitto 2.0
//! (`apps/mosquitto_passwd/mosquitto_passwd.c`, `output_new_password`; checked by the
//! broker in `src/security_default.c`, `unpwd__decode_passwords` and `pw__digest`):
//!
//! ```text
//! {username}:$7${iterations}${base64(salt)}${base64(hash)}
//! ```
//!
//! with hash type 7 = PBKDF2-HMAC-SHA512, a 12-byte random salt, a 64-byte hash over
//! the password's bytes, and standard padded base64 (OpenSSL's BIO encoder).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha512;

use crate::error::{MqttError, Result};

/// PBKDF2 rounds per password: `mosquitto_passwd`'s default (`PW_DEFAULT_ITERATIONS`).
/// Kippu's passwords are random 256-bit strings, so stretching adds no protection;
/// more rounds would only slow every CONNECT and every reload, on which Mosquitto
/// re-hashes the password of each connected client on its single thread.
const PBKDF2_ITERATIONS: u32 = 101;
/// Salt length Mosquitto requires (`SALT_LEN`); it drops lines with any other.
const SALT_LEN: usize = 12;

/// The password-file line (no newline) that lets `username` log in to Mosquitto 2.x
/// with `password`, salted afresh: what `mosquitto_passwd -b file username password` writes.
pub fn mosquitto_password_line(username: &str, password: &str) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    password_line(username, password, &salt, PBKDF2_ITERATIONS)
}

fn password_line(username: &str, password: &str, salt: &[u8; SALT_LEN], iterations: u32) -> String {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let hash = pbkdf2_hmac_sha512(password.as_bytes(), salt, iterations);
    format!("{username}:$7${iterations}${}${}", b64.encode(salt), b64.encode(hash))
}

/// PBKDF2 (RFC 8018) with HMAC-SHA512 and a 64-byte output: a single block, T1.
fn pbkdf2_hmac_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 64] {
    let prf = <Hmac<Sha512> as Mac>::new_from_slice(password).expect("HMAC takes keys of any length");
    let mut u: [u8; 64] =
        prf.clone().chain_update(salt).chain_update(1u32.to_be_bytes()).finalize().into_bytes().into();
    let mut t = u;
    for _ in 1..iterations {
        u = prf.clone().chain_update(u).finalize().into_bytes().into();
        t.iter_mut().zip(&u).for_each(|(t, u)| *t ^= u);
    }
    t
}

/// Where Mosquitto's `password_file` and `acl_file` are (see `deploy/mosquitto/mosquitto.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosquittoFiles {
    /// The `password_file`.
    pub password_file: PathBuf,
    /// The `acl_file`.
    pub acl_file: PathBuf,
}

impl MosquittoFiles {
    /// `passwd` and `kippu.acl` in `dir`, the names `deploy/mosquitto/` uses.
    pub fn in_dir(dir: &Path) -> Self {
        Self { password_file: dir.join("passwd"), acl_file: dir.join("kippu.acl") }
    }
}

/// Replaces the password file with `lines` (each from [`mosquitto_password_line`]) and the
/// ACL with [`crate::acl::mosquitto_acl`]. Each file is written to a temporary file beside
/// it, synced and renamed over the old one, so Mosquitto never reads half a file; both
/// are mode 0600 (Mosquitto must run as the user Kippu runs as, which it needs anyway
/// to be signalled by [`reload_mosquitto`]).
///
/// Lines that could not come from [`mosquitto_password_line`] (a newline, no `user:` or
/// no `$7$` hash) are refused before anything is written: Mosquitto skips or misreads
/// them, and one broken line must not silently lock a gate out.
pub fn write_mosquitto_files(files: &MosquittoFiles, lines: impl IntoIterator<Item = String>) -> Result<()> {
    let mut passwd = String::new();
    for line in lines {
        let well_formed = !line.contains(['\n', '\r', '\0'])
            && line.split_once(':').is_some_and(|(user, hash)| !user.trim().is_empty() && hash.starts_with("$7$"));
        if !well_formed {
            let user = line.split(':').next().unwrap_or_default();
            return Err(MqttError::InvalidOptions(format!("not a Mosquitto password line (user {user:?})")));
        }
        passwd.push_str(&line);
        passwd.push('\n');
    }
    write_atomically(&files.acl_file, crate::acl::mosquitto_acl().as_bytes())?;
    write_atomically(&files.password_file, passwd.as_bytes())
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| MqttError::File { path, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name =
        path.file_name().ok_or_else(|| MqttError::InvalidOptions(format!("{} names no file", path.display())))?;
    // Same directory, so the rename is atomic; a random name, so two writers never share it.
    let tmp = dir.join(format!(".{}.{:016x}.tmp", name.to_string_lossy(), rand::random::<u64>()));
    let written = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()
    })();
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    // The rename itself survives a crash only once the directory is synced.
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

/// Tells the Mosquitto whose pid is in `pid_file` (its `pid_file` setting) to re-read
/// its configuration, password file and ACL: SIGHUP. Returns once the signal is sent;
/// Mosquitto applies it at its next loop iteration (milliseconds).
#[cfg(unix)]
pub fn reload_mosquitto(pid_file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(pid_file).map_err(|source| MqttError::File { path: pid_file.into(), source })?;
    let pid: libc::pid_t = text
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| MqttError::Reload(format!("{} holds no pid: {:?}", pid_file.display(), text.trim())))?;
    // SAFETY: kill(2) with a positive pid signals that one process and touches no memory.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(MqttError::Reload(format!("SIGHUP to pid {pid} (from {}): {e}", pid_file.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_reference_vectors() {
        // python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha512', b'password', b'salt', 1).hex())"
        assert_eq!(
            hex(&pbkdf2_hmac_sha512(b"password", b"salt", 1)),
            "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252\
             c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"
        );
        // python3 -c "import hashlib, base64; s = bytes(range(12)); \
        //   print(base64.b64encode(hashlib.pbkdf2_hmac('sha512', b'gate-password', s, 101)).decode())"
        let salt: [u8; 12] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            password_line("metro/central/g1", "gate-password", &salt, 101),
            "metro/central/g1:$7$101$AAECAwQFBgcICQoL$\
             B7yM+RS4VnQ9E9eIJt8Y/wFaXntbZT1rVG6oCSydLqDDq9IgQADbFrtna+t1nx2S40OUBJsPOg8ShwaTXKkHtg=="
        );
    }

    /// The line `mosquitto_passwd` itself writes, recomputed from its salt: same hash.
    #[test]
    fn agrees_with_mosquitto_passwd() {
        let dir = std::env::temp_dir().join(format!("kippu-passwd-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("passwd");
        std::fs::write(&file, "").unwrap();
        let ran = std::process::Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&file)
            .args(["metro/central/g1", "Zx-42_random"])
            .status();
        let Ok(status) = ran else {
            eprintln!("note: mosquitto_passwd not found, skipping");
            return;
        };
        assert!(status.success());
        let theirs = std::fs::read_to_string(&file).unwrap().trim_end().to_owned();
        let _ = std::fs::remove_dir_all(&dir);
        let fields: Vec<&str> = theirs.split('$').collect();
        assert_eq!(fields[..2], ["metro/central/g1:", "7"], "{theirs}");
        let salt: [u8; 12] = base64::engine::general_purpose::STANDARD.decode(fields[3]).unwrap().try_into().unwrap();
        let ours = password_line("metro/central/g1", "Zx-42_random", &salt, fields[2].parse().unwrap());
        assert_eq!(ours, theirs);
    }

    #[test]
    fn fresh_lines_are_salted() {
        let a = mosquitto_password_line("validator", "pw");
        let b = mosquitto_password_line("validator", "pw");
        assert_ne!(a, b);
        assert!(a.starts_with("validator:$7$101$"), "{a}");
        assert_eq!(a.split('$').count(), 5);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_replaced_whole_and_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("kippu-mosq-files-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = MosquittoFiles::in_dir(&dir);
        let line = mosquitto_password_line("validator", "pw");
        write_mosquitto_files(&files, [line.clone()]).unwrap();
        assert_eq!(std::fs::read_to_string(&files.password_file).unwrap(), format!("{line}\n"));
        assert_eq!(std::fs::read_to_string(&files.acl_file).unwrap(), crate::acl::mosquitto_acl());
        for f in [&files.password_file, &files.acl_file] {
            assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600);
        }
        write_mosquitto_files(&files, []).unwrap();
        assert_eq!(std::fs::read_to_string(&files.password_file).unwrap(), "");
        for bad in ["no-colon", "user:plaintext", ":$7$1$a$b", "a:$7$1$a$b\nb:$7$1$a$b"] {
            let e = write_mosquitto_files(&files, [line.clone(), bad.to_owned()]).unwrap_err();
            assert!(matches!(e, MqttError::InvalidOptions(_)), "{bad}: {e}");
        }
        assert_eq!(std::fs::read_to_string(&files.password_file).unwrap(), "", "a refused batch writes nothing");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn reload_needs_a_pid() {
        let dir = std::env::temp_dir().join(format!("kippu-mosq-pid-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid = dir.join("pid");
        assert!(matches!(reload_mosquitto(&pid), Err(MqttError::File { .. })));
        for junk in ["", "abc", "0", "-1"] {
            std::fs::write(&pid, junk).unwrap();
            assert!(matches!(reload_mosquitto(&pid), Err(MqttError::Reload(_))), "{junk:?}");
        }
        // A pid no process has (above the kernel's pid_max).
        std::fs::write(&pid, "2147483646").unwrap();
        assert!(matches!(reload_mosquitto(&pid), Err(MqttError::Reload(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
