//! The Debian packages (scripts/build-debs.sh) and the systemd unit they ship: contents, modes,
//! control fields, the programs run from the unpacked package, `systemd-analyze verify` and the
//! unit's exposure score.
//!
//! The packages are made from the binaries this `cargo test` built (the script strips them), so
//! that no second build runs here; CI also builds the release packages and installs one.

use charla_test_support as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{require_program, root, server_bin, TempDir};

/// The exposure score `systemd-analyze security` gives the unit, as docs/benchmarks.md and the
/// README write it down: a change to the unit that raises it fails here.
const EXPOSURE_AT_MOST: f64 = 1.1;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

struct Built {
    _dir: TempDir,
    server: PathBuf,
    client: PathBuf,
}

/// Both packages, built once for every test here.
fn packages() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        require_program("dpkg-deb");
        let dir = TempDir::new("debs");
        let server = server_bin();
        let client = server.with_file_name("charla");
        assert!(
            client.exists(),
            "{} is missing: run `cargo build -p charla` (cargo test --workspace builds it)",
            client.display()
        );
        let listed = run(Command::new(root().join("scripts/build-debs.sh"))
            .arg("--server-bin")
            .arg(&server)
            .arg("--client-bin")
            .arg(&client)
            .arg("--out")
            .arg(dir.path())
            .args(["--compression", "none"]));
        let made: Vec<PathBuf> = listed.lines().map(PathBuf::from).collect();
        assert_eq!(made.len(), 2, "{listed}");
        let server = made[0].clone();
        let client = made[1].clone();
        for deb in &made {
            assert!(deb.exists(), "{}", deb.display());
        }
        Built {
            _dir: dir,
            server,
            client,
        }
    })
}

/// `mode path` for every entry of the package (`-rwxr-xr-x ./usr/bin/charla-server`).
fn contents(deb: &Path) -> Vec<(String, String)> {
    run(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (
                fields[0].to_string(),
                fields.last().unwrap().trim_start_matches('.').to_string(),
            )
        })
        .collect()
}

fn field(deb: &Path, name: &str) -> String {
    run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
        .trim()
        .to_string()
}

fn assert_has(contents: &[(String, String)], mode: &str, path: &str) {
    assert!(
        contents.iter().any(|(m, p)| m == mode && p == path),
        "{path} with mode {mode} not in the package: {contents:#?}"
    );
}

/// Unpacks `deb` into a new directory.
fn unpack(deb: &Path, tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir.path()));
    dir
}

/// No section of debug information, and no symbol table: what a shipped binary should be.
fn assert_stripped(binary: &Path) {
    let sections = run(Command::new("readelf").arg("-S").arg("-W").arg(binary));
    assert!(
        !sections.contains(".debug_info"),
        "debug info left in {}",
        binary.display()
    );
    assert!(
        !sections.contains(".symtab"),
        "symbols left in {}",
        binary.display()
    );
}

#[test]
fn the_server_package_holds_the_server_its_unit_config_and_man_pages() {
    let deb = &packages().server;
    assert_eq!(field(deb, "Package"), "charla-server");
    assert_eq!(field(deb, "Version"), env!("CARGO_PKG_VERSION"));
    assert!(field(deb, "Depends").contains("libssl3"));
    let files = contents(deb);
    assert_has(&files, "-rwxr-xr-x", "/usr/bin/charla-server");
    assert_has(&files, "-rwxr-xr-x", "/usr/bin/charla-gen-certs");
    assert_has(
        &files,
        "-rw-r--r--",
        "/usr/lib/systemd/system/charla-server.service",
    );
    assert_has(&files, "-rw-r--r--", "/etc/charla/server.conf");
    assert_has(&files, "-rw-r--r--", "/etc/charla/operators");
    assert_has(
        &files,
        "-rw-r--r--",
        "/usr/share/man/man1/charla-server.1.gz",
    );
    assert_has(
        &files,
        "-rw-r--r--",
        "/usr/share/man/man1/charla-gen-certs.1.gz",
    );
    assert_has(
        &files,
        "-rw-r--r--",
        "/usr/share/doc/charla-server/copyright",
    );
    // Everything root's, whoever built it.
    let owners = run(Command::new("dpkg-deb").arg("--contents").arg(deb));
    assert!(
        owners.lines().all(|l| l.contains(" root/root ")),
        "{owners}"
    );
    // No private key or certificate ever ships.
    assert!(
        !files
            .iter()
            .any(|(_, p)| p.ends_with(".key") || p.ends_with(".pem")),
        "{files:#?}"
    );

    let control = TempDir::new("deb-control");
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb)
        .arg(control.path()));
    assert_eq!(
        std::fs::read_to_string(control.path().join("conffiles")).unwrap(),
        "/etc/charla/server.conf\n/etc/charla/operators\n"
    );

    let unpacked = unpack(deb, "deb-server");
    let bin = unpacked.path().join("usr/bin/charla-server");
    assert_stripped(&bin);
    let version = run(Command::new(&bin).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("charla-server {}", env!("CARGO_PKG_VERSION"))
    );
    let help = run(Command::new(unpacked.path().join("usr/bin/charla-gen-certs")).arg("--help"));
    assert!(help.contains("--out DIR"), "{help}");
    // The shipped unit and config are the repository's.
    for (shipped, source) in [
        (
            "usr/lib/systemd/system/charla-server.service",
            "packaging/charla-server.service",
        ),
        ("etc/charla/server.conf", "packaging/server.conf"),
    ] {
        assert_eq!(
            std::fs::read(unpacked.path().join(shipped)).unwrap(),
            std::fs::read(root().join(source)).unwrap(),
            "{shipped}"
        );
    }
    // The man page is the --help, every option in it.
    let man = run(Command::new("gzip").arg("-dc").arg(
        unpacked
            .path()
            .join("usr/share/man/man1/charla-server.1.gz"),
    ));
    assert!(man.starts_with(".TH CHARLA-SERVER 1 "), "{man}");
    for option in ["--config PATH", "--max-clients N", "--operators FILE"] {
        assert!(man.contains(option), "{option} not in the man page");
    }
}

#[test]
fn the_shipped_config_file_is_one_the_server_takes() {
    // Its paths are the service's; here they are checked for what they say, not opened:
    // the state directory and operators file are given on the command line, which wins.
    let dir = TempDir::new("shipped-conf");
    let operators = dir.path().join("operators");
    std::fs::copy(root().join("packaging/operators"), &operators).unwrap();
    let state = dir.path().join("state");
    let c = common::certs();
    let server = common::Server::start_raw(
        &[
            "--config",
            root().join("packaging/server.conf").to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
            "--cert",
            c.cert.to_str().unwrap(),
            "--key",
            c.key.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--operators",
            operators.to_str().unwrap(),
        ],
        &[],
    );
    server.wait_log("0 operator identities listed in");
    let mut ana = server.join("ana");
    ana.send("/whois ana");
    ana.expect_prefix("WHOIS ana");
}

#[test]
fn the_client_package_holds_the_client_its_desktop_file_and_icon() {
    let deb = &packages().client;
    assert_eq!(field(deb, "Package"), "charla");
    let depends = field(deb, "Depends");
    for library in ["libfontconfig1", "libxkbcommon-x11-0", "fonts-dejavu-core"] {
        assert!(depends.contains(library), "{library} not in {depends}");
    }
    let files = contents(deb);
    assert_has(&files, "-rwxr-xr-x", "/usr/bin/charla");
    assert_has(
        &files,
        "-rw-r--r--",
        "/usr/share/applications/charla.desktop",
    );
    assert_has(
        &files,
        "-rw-r--r--",
        "/usr/share/icons/hicolor/scalable/apps/charla.svg",
    );
    assert_has(&files, "-rw-r--r--", "/usr/share/man/man1/charla.1.gz");
    let unpacked = unpack(deb, "deb-client");
    assert_stripped(&unpacked.path().join("usr/bin/charla"));
    let desktop = std::fs::read_to_string(
        unpacked
            .path()
            .join("usr/share/applications/charla.desktop"),
    )
    .unwrap();
    for line in [
        "Exec=charla",
        "Icon=charla",
        "Type=Application",
        "Categories=Network;",
    ] {
        assert!(desktop.lines().any(|l| l.starts_with(line)), "{line}");
    }
    let version = run(Command::new(unpacked.path().join("usr/bin/charla")).arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
}

/// The unit with ExecStart pointing at this build's server, so that `verify` finds the binary
/// on a machine where the package is not installed.
fn unit_for_this_build(dir: &TempDir) -> PathBuf {
    let unit = std::fs::read_to_string(root().join("packaging/charla-server.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/charla-server "));
    let unit = unit.replace(
        "ExecStart=/usr/bin/charla-server ",
        &format!("ExecStart={} ", server_bin().display()),
    );
    let path = dir.path().join("charla-server.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    require_program("systemd-analyze");
    let dir = TempDir::new("unit-verify");
    let unit = unit_for_this_build(&dir);
    // --man=no: the man page named in Documentation= is in the package, not on this machine.
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit));
    assert!(!out.contains("Unknown"), "{out}");
}

#[test]
fn the_unit_exposure_score_is_as_low_as_written_down() {
    require_program("systemd-analyze");
    let dir = TempDir::new("unit-security");
    let unit = unit_for_this_build(&dir);
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit));
    let score: f64 = out
        .split("Overall exposure level for charla-server.service: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    assert!(score <= EXPOSURE_AT_MOST, "exposure {score}:\n{out}");
    // What the unit must keep whatever else changes.
    let unit = std::fs::read_to_string(root().join("packaging/charla-server.service")).unwrap();
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6\n",
        "SystemCallFilter=@system-service\n",
        "ExecReload=/bin/kill -HUP $MAINPID\n",
        "LoadCredential=server-key.key:/etc/charla/server-key.key\n",
    ] {
        assert!(unit.contains(line), "{line:?} not in the unit");
    }
}
