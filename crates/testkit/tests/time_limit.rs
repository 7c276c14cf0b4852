//! A test that hangs is named and ends its test binary at its time limit.

use std::process::Command;
use std::time::Duration;

use kafka_producer_testkit::{FakeBroker, FakeConfig};

/// Set in the child process, where [`hangs_when_asked`] hangs.
const CHILD: &str = "KPROD_TIME_LIMIT_CHILD";

#[test]
fn a_hanging_test_is_named_and_its_binary_fails() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "hangs_when_asked", "--nocapture"])
        .env(CHILD, "1")
        .env("KPROD_TEST_TIME_LIMIT", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(
        stderr.contains("TIME LIMIT: test hangs_when_asked still running after 1 s"),
        "{stderr}"
    );
}

#[tokio::test]
async fn hangs_when_asked() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let _broker = FakeBroker::start(FakeConfig::default()).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
}
