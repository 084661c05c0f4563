//! Test support shared by `tests/acl.rs` and `tests/it/`: certificates made on the
//! spot, and Mosquitto children running the shipped `deploy/mosquitto` configuration
//! with logins written by Kippu.

use std::collections::HashSet;
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kippu_mqtt::{write_mosquitto_files, ClientTls, MosquittoFiles, MqttUrl, ServerTls};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// How long a broker may take to come up.
const START_WAIT: Duration = Duration::from_secs(5);

/// A throwaway CA and a server certificate it signed for `127.0.0.1` and `localhost`.
pub(crate) struct Certs {
    pub(crate) ca_pem: String,
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
}

impl Certs {
    pub(crate) fn new() -> Certs {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name.push(DnType::CommonName, "Kippu test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        server.distinguished_name.push(DnType::CommonName, "kippu test broker");
        let cert = server.signed_by(&key, &ca).unwrap();
        Certs { ca_pem: ca.pem(), chain_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// What a client that trusts this CA (and nothing else) connects with.
    pub(crate) fn client_tls(&self) -> ClientTls {
        ClientTls::from_ca_pem(self.ca_pem.as_bytes()).unwrap()
    }

    pub(crate) fn server_tls(&self) -> ServerTls {
        ServerTls::from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }
}

/// A Mosquitto child with the shipped configuration over TLS (only ports and paths moved
/// into a temporary directory), its password file and ACL written by
/// [`write_mosquitto_files`]. Killed on drop.
pub(crate) struct Mosquitto {
    child: Option<Child>,
    pub(crate) port: u16,
    dir: PathBuf,
}

impl Mosquitto {
    /// `None` (with a note) when Mosquitto is not installed.
    pub(crate) fn start(certs: &Certs, password_lines: Vec<String>) -> Option<Mosquitto> {
        if !Path::new(MOSQUITTO).exists() {
            eprintln!("note: {MOSQUITTO} not found, skipping the Mosquitto run of this test");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("kippu-mosq-{}-{:08x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("chain.pem"), &certs.chain_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &certs.key_pem).unwrap();
        let mut m = Mosquitto { child: None, port: 0, dir };
        m.write_logins(password_lines);
        let shipped = std::fs::read_to_string(deploy_dir().join("mosquitto.conf")).unwrap();
        for _ in 0..5 {
            m.port = free_port();
            std::fs::write(m.dir.join("mosquitto.conf"), test_conf(&shipped, m.port, &m.dir)).unwrap();
            if m.launch() {
                return Some(m);
            }
        }
        panic!("mosquitto did not start with the shipped config; last log:\n{}", m.log());
    }

    /// Where Kippu writes the logins of this broker.
    fn files(&self) -> MosquittoFiles {
        MosquittoFiles::in_dir(&self.dir)
    }

    pub(crate) fn pid_file(&self) -> PathBuf {
        self.dir.join("mosquitto.pid")
    }

    /// Replaces the password file (and ACL) as Kippu does; applied on the next reload or start.
    pub(crate) fn write_logins(&self, password_lines: Vec<String>) {
        write_mosquitto_files(&self.files(), password_lines).unwrap();
    }

    /// `mqtts://127.0.0.1:{port}`, trusting the test CA.
    pub(crate) fn url(&self, certs: &Certs) -> MqttUrl {
        MqttUrl::parse(&format!("mqtts://127.0.0.1:{}", self.port)).unwrap().with_tls(certs.client_tls())
    }

    /// SIGKILL: the broker vanishes without a word, as in a crash.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // SIGKILL leaves the pid file behind; the next start must not be judged by it.
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Starts the broker again on the same port, with the files as they are now.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_WAIT;
        while !self.launch() {
            assert!(Instant::now() < deadline, "mosquitto did not restart on port {}; log:\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    /// Starts the child and waits until it accepts TCP; `false` if it exited (e.g. the port
    /// was taken meanwhile).
    fn launch(&mut self) -> bool {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("mosquitto.log")).unwrap();
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts");
        let deadline = Instant::now() + START_WAIT;
        while Instant::now() < deadline {
            // The pid file is written after the listeners are up.
            if StdTcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.pid_file().exists() {
                self.child = Some(child);
                return true;
            }
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- mosquitto log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shipped config with only its user, listener, certificate, files and persistence moved
/// into `dir`; fails if one of those settings disappeared from the shipped file.
fn test_conf(shipped: &str, port: u16, dir: &Path) -> String {
    let mut replaced = HashSet::new();
    let mut out = String::new();
    for line in shipped.lines() {
        let key = line.split_whitespace().next().unwrap_or("");
        let new = match key {
            // The test's own user (`root` means "stay", and is ignored when not started as
            // root): the files the test writes are 0600 and its own.
            "user" => "user root".to_owned(),
            "listener" => format!("listener {port} 127.0.0.1"),
            "certfile" => format!("certfile {}", dir.join("chain.pem").display()),
            "keyfile" => format!("keyfile {}", dir.join("key.pem").display()),
            "password_file" => format!("password_file {}", dir.join("passwd").display()),
            "acl_file" => format!("acl_file {}", dir.join("kippu.acl").display()),
            "pid_file" => format!("pid_file {}", dir.join("mosquitto.pid").display()),
            "persistence" => "persistence false".to_owned(),
            "persistence_location" => format!("persistence_location {}/", dir.display()),
            _ => line.to_owned(),
        };
        if new != line {
            replaced.insert(key.to_owned());
        }
        out.push_str(&new);
        out.push('\n');
    }
    for key in ["user", "listener", "certfile", "keyfile", "password_file", "acl_file", "pid_file"] {
        assert!(replaced.contains(key), "deploy/mosquitto/mosquitto.conf has no `{key}` line");
    }
    out
}

pub(crate) fn deploy_dir() -> PathBuf {
    // This module is also compiled into the end-to-end security tests, from another crate.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|p| p.join("deploy/mosquitto"))
        .find(|p| p.exists())
        .expect("deploy/mosquitto in the repository")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
