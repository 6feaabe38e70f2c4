//! Unpacking a backup's tar streams with every file checked against its backup_manifest:
//! synthetic tars and manifests for each failure, and PostgreSQL 15's own manifest with
//! files of a real backup.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use logship::pg::restore::extract::{ExtractError, Extractor, Unpacked};
use logship_protocol::pg::manifest::BackupManifest;
use sha2::{Digest, Sha256};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../protocol/tests/fixtures/manifest"
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A manifest in the server's layout listing `files` with SHA-256 checksums.
fn manifest(files: &[(&str, &[u8])]) -> Arc<BackupManifest> {
    let entries: Vec<String> = files
        .iter()
        .map(|(path, content)| {
            format!(
                "{{ \"Path\": \"{path}\", \"Size\": {}, \"Last-Modified\": \"2026-11-21 10:00:00 GMT\", \"Checksum-Algorithm\": \"SHA256\", \"Checksum\": \"{}\" }}",
                content.len(),
                hex(&Sha256::digest(content))
            )
        })
        .collect();
    let mut text = format!(
        "{{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n{}\n],\n\"WAL-Ranges\": [\n{{ \"Timeline\": 1, \"Start-LSN\": \"0/3000028\", \"End-LSN\": \"0/3000100\" }}\n],\n",
        entries.join(",\n")
    );
    let sum = hex(&Sha256::digest(text.as_bytes()));
    text.push_str(&format!("\"Manifest-Checksum\": \"{sum}\"}}\n"));
    Arc::new(BackupManifest::parse(text.as_bytes()).unwrap())
}

/// One tar entry to build.
enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    /// A file whose name is written raw, bypassing the builder's own path checks.
    RawName(&'a [u8], &'a [u8]),
}

/// A ustar stream as PostgreSQL writes it, followed by `trailer` bytes of zeros.
fn tar(entries: &[Entry], trailer: usize) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o700);
                header.set_size(0);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
            Entry::File(path, content) => {
                header.set_mode(0o600);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, path, *content).unwrap();
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Entry::HardLink(path, target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Entry::RawName(name, content) => {
                header.set_mode(0o600);
                header.set_size(content.len() as u64);
                header.as_old_mut().name[..name.len()].copy_from_slice(name);
                header.set_cksum();
                builder.append(&header, *content).unwrap();
            }
        }
    }
    let mut bytes = builder.into_inner().unwrap();
    bytes.resize(bytes.len() + trailer, 0);
    bytes
}

fn unpack(
    extractor: &mut Extractor,
    stream: &[u8],
    root: &Path,
    prefix: &str,
) -> Result<Unpacked, ExtractError> {
    extractor.unpack(stream, root, prefix)
}

const PG_CONTROL: &[u8] = &[7; 8192];

fn data_dir_tar(pg_control: &[u8]) -> Vec<u8> {
    tar(
        &[
            Entry::File("PG_VERSION", b"15\n"),
            Entry::Dir("global"),
            Entry::File("global/pg_control", pg_control),
            Entry::Dir("pg_wal"),
            Entry::Dir("pg_tblspc"),
            Entry::Symlink("pg_tblspc/16390", "/srv/ts1"),
        ],
        // Padding after the end-of-archive blocks is read and ignored.
        10240,
    )
}

#[test]
fn unpacks_a_data_directory_and_checks_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(&[("PG_VERSION", b"15\n"), ("global/pg_control", PG_CONTROL)]);
    let mut extractor = Extractor::new(Some(manifest));
    let unpacked = unpack(&mut extractor, &data_dir_tar(PG_CONTROL), dir.path(), "").unwrap();
    assert_eq!(
        unpacked,
        Unpacked {
            files: 2,
            bytes: 3 + 8192
        }
    );
    assert_eq!(extractor.finish().unwrap(), 2);

    let root = dir.path();
    assert_eq!(std::fs::read(root.join("PG_VERSION")).unwrap(), b"15\n");
    assert_eq!(
        std::fs::read(root.join("global/pg_control")).unwrap(),
        PG_CONTROL
    );
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("global/pg_control"), 0o600);
    assert_eq!(mode("global"), 0o700);
    assert!(root.join("pg_wal").is_dir());
    assert_eq!(
        std::fs::read_link(root.join("pg_tblspc/16390")).unwrap(),
        Path::new("/srv/ts1")
    );
}

#[test]
fn a_flipped_byte_in_a_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(&[("PG_VERSION", b"15\n"), ("global/pg_control", PG_CONTROL)]);
    let mut flipped = PG_CONTROL.to_vec();
    flipped[4000] ^= 1;
    let err = Extractor::new(Some(manifest))
        .unpack(&data_dir_tar(&flipped)[..], dir.path(), "")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("file \"global/pg_control\": SHA256 checksum is ")
            && text.ends_with("(the backup is damaged; take a new backup)"),
        "{text}"
    );
}

#[test]
fn a_file_of_another_size_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(&[("PG_VERSION", b"15\n"), ("global/pg_control", PG_CONTROL)]);
    let err = Extractor::new(Some(manifest))
        .unpack(&data_dir_tar(&PG_CONTROL[..8000])[..], dir.path(), "")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "file \"global/pg_control\" is 8000 bytes but the backup manifest says 8192 (the backup is damaged; take a new backup)"
    );
}

#[test]
fn a_file_the_manifest_does_not_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(&[("PG_VERSION", b"15\n")]);
    let err = Extractor::new(Some(manifest))
        .unpack(&data_dir_tar(PG_CONTROL)[..], dir.path(), "")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "file \"global/pg_control\" is in the backup but not in its backup_manifest (the backup is damaged; take a new backup)"
    );
}

#[test]
fn a_file_missing_from_the_backup_is_found_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(&[
        ("PG_VERSION", b"15\n"),
        ("global/pg_control", PG_CONTROL),
        ("global/pg_filenode.map", b"map"),
    ]);
    let mut extractor = Extractor::new(Some(manifest));
    unpack(&mut extractor, &data_dir_tar(PG_CONTROL), dir.path(), "").unwrap();
    assert_eq!(
        extractor.finish().unwrap_err().to_string(),
        "file \"global/pg_filenode.map\" is listed in the backup_manifest but missing from the backup (the backup is damaged; take a new backup)"
    );
}

#[test]
fn tablespace_files_are_named_under_pg_tblspc() {
    let dir = tempfile::tempdir().unwrap();
    let content = b"relation";
    let manifest = manifest(&[("pg_tblspc/16390/PG_15_202209061/5/16391", content)]);
    let stream = tar(
        &[
            Entry::Dir("PG_15_202209061"),
            Entry::Dir("PG_15_202209061/5"),
            Entry::File("PG_15_202209061/5/16391", content),
        ],
        0,
    );
    let mut extractor = Extractor::new(Some(manifest));
    unpack(&mut extractor, &stream, dir.path(), "pg_tblspc/16390/").unwrap();
    assert_eq!(extractor.finish().unwrap(), 1);
    assert_eq!(
        std::fs::read(dir.path().join("PG_15_202209061/5/16391")).unwrap(),
        content
    );
}

#[test]
fn without_a_manifest_nothing_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut extractor = Extractor::new(None);
    unpack(&mut extractor, &data_dir_tar(PG_CONTROL), dir.path(), "").unwrap();
    assert_eq!(extractor.finish().unwrap(), 2);
}

#[test]
fn entries_cannot_escape_the_directory() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("data");
    let elsewhere = outer.path().join("elsewhere");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    let through_link = tar(
        &[
            Entry::Symlink("link", elsewhere.to_str().unwrap()),
            Entry::File("link/evil", b"x"),
        ],
        0,
    );
    let cases: [(Vec<u8>, &str); 3] = [
        (tar(&[Entry::RawName(b"../evil", b"x")], 0), "../evil"),
        (tar(&[Entry::RawName(b"/etc/evil", b"x")], 0), "/etc/evil"),
        (through_link, "link/evil"),
    ];
    for (stream, path) in cases {
        let err = Extractor::new(None)
            .unpack(&stream[..], &root, "")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "tar entry \"{path}\" would be written outside the directory or through a symbolic link (the stored backup is damaged or not PostgreSQL's)"
            )
        );
    }
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert!(!outer.path().join("evil").exists());
}

#[test]
fn hard_links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stream = tar(&[Entry::File("a", b"x"), Entry::HardLink("b", "a")], 0);
    let err = Extractor::new(None)
        .unpack(&stream[..], dir.path(), "")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tar entry \"b\" is a Link, which a PostgreSQL backup never holds (the stored backup is damaged or not PostgreSQL's)"
    );
}

#[test]
fn a_truncated_stream_is_a_tar_error() {
    let dir = tempfile::tempdir().unwrap();
    let stream = data_dir_tar(PG_CONTROL);
    let err = Extractor::new(None)
        .unpack(&stream[..2048], dir.path(), "")
        .unwrap_err();
    assert!(matches!(err, ExtractError::Tar { .. }), "{err}");
}

/// PostgreSQL 15's own manifest checks files of that backup, CRC32C and SHA-256 alike.
#[test]
fn real_manifests_check_real_files() {
    for algorithm in ["crc32c", "sha256"] {
        let fixture = Path::new(FIXTURES).join(algorithm);
        let mut raw = Vec::new();
        lz4_flex::frame::FrameDecoder::new(
            std::fs::File::open(fixture.join("backup_manifest.lz4")).unwrap(),
        )
        .read_to_end(&mut raw)
        .unwrap();
        let manifest = Arc::new(BackupManifest::parse(&raw).unwrap());
        let read = |p: &str| std::fs::read(fixture.join(p)).unwrap();
        let (version, control, label) = (
            read("PG_VERSION"),
            read("global/pg_control"),
            read("backup_label"),
        );
        let stream = tar(
            &[
                Entry::File("backup_label", &label),
                Entry::File("PG_VERSION", &version),
                Entry::Dir("global"),
                Entry::File("global/pg_control", &control),
            ],
            0,
        );
        let dir = tempfile::tempdir().unwrap();
        let mut extractor = Extractor::new(Some(manifest.clone()));
        unpack(&mut extractor, &stream, dir.path(), "").unwrap();
        // The other 900-odd files of that backup are not here.
        assert!(matches!(
            extractor.finish(),
            Err(ExtractError::MissingFromBackup { .. })
        ));

        let mut damaged = control.clone();
        damaged[100] ^= 0x80;
        let stream = tar(
            &[
                Entry::Dir("global"),
                Entry::File("global/pg_control", &damaged),
            ],
            0,
        );
        let dir = tempfile::tempdir().unwrap();
        let err = Extractor::new(Some(manifest))
            .unpack(&stream[..], dir.path(), "")
            .unwrap_err();
        assert!(
            err.to_string().starts_with("file \"global/pg_control\": "),
            "{algorithm}: {err}"
        );
    }
}
