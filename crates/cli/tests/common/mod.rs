//! What the kprod test binaries share: running the built `kprod` with an input on stdin.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};

/// Runs `kprod ARGS...` with `input` on stdin.
pub fn kprod<S: AsRef<OsStr>>(args: &[S], input: &[u8]) -> Output {
    let mut child = spawn_kprod(args);
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    // kprod may exit before reading everything (a bad argument); then the write fails, which is fine.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for kprod");
    writer.join().expect("stdin writer");
    output
}

/// Starts `kprod ARGS...` with stdin, stdout and stderr piped.
pub fn spawn_kprod<S: AsRef<OsStr>>(args: &[S]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kprod"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kprod")
}
