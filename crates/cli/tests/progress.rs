//! `kprod produce`'s progress line: drawn on a terminal (a pseudo-terminal from util-linux's
//! `script`), never on a pipe. Against the testkit's sink broker, which acknowledges without
//! storing: no cluster needed.

use std::io::Write;
use std::process::{Command, Stdio};

use kafka_producer_testkit::{FakeBroker, FakeConfig};

/// A file of `lines` records, removed when dropped.
struct InputFile(std::path::PathBuf);

impl InputFile {
    fn new(lines: usize) -> InputFile {
        let path = std::env::temp_dir().join(format!("kprod-progress-{}.txt", std::process::id()));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..lines {
            writeln!(file, "record {i}").unwrap();
        }
        file.flush().unwrap();
        InputFile(path)
    }

    fn path(&self) -> String {
        self.0.to_str().unwrap().to_string()
    }
}

impl Drop for InputFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_drawn_on_a_terminal_and_not_on_a_pipe() {
    let sink = FakeBroker::start(FakeConfig::sink(3)).await;
    // Long enough for several progress lines at a 50 ms interval.
    let file = InputFile::new(600_000);
    let path = file.path();
    let kprod = env!("CARGO_BIN_EXE_kprod");
    let command = format!("{kprod} produce -b {} -t progress {path}", sink.addr());

    // `script` runs the command on a pseudo-terminal and copies what it writes to stdout.
    let on_terminal = tokio::task::spawn_blocking(move || {
        Command::new("script")
            .args(["-qefc", &command, "/dev/null"])
            .env("KPROD_PROGRESS_INTERVAL_MS", "50")
            .stdin(Stdio::null())
            .output()
            .expect("run script (util-linux)")
    })
    .await
    .unwrap();
    let screen = String::from_utf8_lossy(&on_terminal.stdout).into_owned();
    assert!(on_terminal.status.success(), "{screen}");
    assert!(
        screen.contains("\r\x1b[Kkprod: sent ")
            && screen.contains(", acknowledged ")
            && screen.contains(" records/s"),
        "no progress line on the terminal: {screen:?}"
    );
    // Cleared before the summary, which stands on a line of its own.
    assert!(
        screen.contains("\r\x1b[Ksent 600000, delivered 600000, failed 0"),
        "{screen:?}"
    );

    let path = file.path();
    let addr = sink.addr();
    let on_pipe = tokio::task::spawn_blocking(move || {
        Command::new(kprod)
            .args(["produce", "-b", &addr, "-t", "progress", &path])
            .env("KPROD_PROGRESS_INTERVAL_MS", "50")
            .stdin(Stdio::null())
            .output()
            .expect("run kprod")
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&on_pipe.stderr).into_owned();
    assert!(on_pipe.status.success(), "{err}");
    assert!(
        err.starts_with("sent 600000, delivered 600000, failed 0") && !err.contains('\r'),
        "a pipe gets the summary only: {err:?}"
    );
}
