//! The README's first command works on the embedded defaults, end to end.

use std::process::Command;

use logship_tests::util::{logship_bin, temp_dir};

/// `logship quickstart` streams, backs up, fetches segments back byte for byte,
/// and restores to a moment between two batches; then it streams a MariaDB (installed
/// by the test script) and fetches a binlog file back byte for byte. It checks each step
/// itself and exits non-zero if any is wrong.
#[test]
fn quickstart_runs_every_step() {
    let cwd = temp_dir("quickstart");
    let output = Command::new(logship_bin())
        .arg("quickstart")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "returned the segment byte for byte as the server wrote it (16777216 bytes)",
        "the restored server has 500 orders of batch 1 and 0 of batch 2",
        "Lag is now 0 bytes",
        "`logship binlog-fetch binlog.000001` returned the file byte for byte as the server wrote it",
        "binlog.000002  in progress:",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The embedded default store is ./logship-data.
    assert!(cwd.path().join("logship-data/quickstart/identity").exists());
    assert!(
        cwd.path()
            .join("logship-data/quickstart-mariadb/identity")
            .exists()
    );
}
