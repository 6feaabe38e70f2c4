//! The directories a restore writes into: refused when not empty (unless `--force` for the
//! data directory), created 0700, and emptied or removed again when the restore fails.

use std::os::unix::fs::PermissionsExt;

use logship::restore::dir::{check_data_dir, check_tablespace_dir};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_new_directory_is_created_0700_and_removed_on_failure() {
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("a/b/restored");
    let prepared = check_data_dir(&dir, false).unwrap().prepare().unwrap();
    assert_eq!(prepared.path(), dir);
    assert_eq!(mode(&dir), 0o700);
    std::fs::write(dir.join("PG_VERSION"), b"15\n").unwrap();
    prepared.sync().unwrap();
    prepared.discard();
    // The parents the restore created go too: the file system is as it was.
    assert!(!outer.path().join("a").exists());
    assert!(outer.path().is_dir());
}

#[test]
fn a_non_empty_directory_is_refused_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep"), b"x").unwrap();
    let err = check_data_dir(dir.path(), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "directory {} is not empty (choose an empty directory, or pass --force to replace its contents)",
            dir.path().display()
        )
    );
    assert!(dir.path().join("keep").exists());
}

#[test]
fn force_replaces_the_contents_and_a_failure_leaves_it_empty() {
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("data");
    let outside = outer.path().join("outside");
    std::fs::create_dir_all(dir.join("base/1")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"x").unwrap();
    std::fs::write(dir.join("base/1/1259"), b"x").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("pg_tblspc_link")).unwrap();

    let checked = check_data_dir(&dir, true).unwrap();
    // Checking touches nothing.
    assert!(dir.join("base/1/1259").exists());
    let prepared = checked.prepare().unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(mode(&dir), 0o700);
    // A symbolic link is removed, never followed.
    assert!(outside.join("precious").exists());

    std::fs::write(dir.join("half-restored"), b"x").unwrap();
    prepared.discard();
    assert!(
        dir.is_dir(),
        "an existing directory is emptied, not removed"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn an_empty_existing_directory_is_used_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let prepared = check_data_dir(dir.path(), false)
        .unwrap()
        .prepare()
        .unwrap();
    assert_eq!(mode(dir.path()), 0o700);
    prepared.discard();
    assert!(dir.path().is_dir());
}

#[test]
fn a_file_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert_eq!(
        check_data_dir(&file, true).unwrap_err().to_string(),
        format!(
            "{} exists and is not a directory (choose a directory path for the restore)",
            file.display()
        )
    );
}

#[test]
fn a_tablespace_directory_in_use_is_refused_even_with_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("PG_15_202209061")).unwrap();
    let location = dir.path().display().to_string();
    assert_eq!(
        check_tablespace_dir(16390, &location, false)
            .unwrap_err()
            .to_string(),
        format!(
            "tablespace 16390 goes to {location}, its directory on the original server, which is not empty (the original may still use it: restore the tablespace elsewhere with --tablespace-mapping {location}=NEWDIR)"
        )
    );
    assert_eq!(
        check_tablespace_dir(16390, &location, true)
            .unwrap_err()
            .to_string(),
        format!(
            "tablespace 16390 is mapped to {location}, which is not empty (choose an empty or new NEWDIR in --tablespace-mapping)"
        )
    );
    let free = dir.path().join("free");
    let prepared = check_tablespace_dir(16390, free.to_str().unwrap(), true)
        .unwrap()
        .prepare()
        .unwrap();
    assert_eq!(mode(&free), 0o700);
    prepared.discard();
    assert!(!free.exists());
    assert!(check_tablespace_dir(16390, "relative/ts", false).is_err());
}
