//! Hostile inputs, built at test time from the real BSE files (never stored in the repository):
//! truncated and header-only copies, UTF-16 re-encodings, rows with implausible values, zip bombs
//! and archives of many members, directory trees with symbolic links out of the tree and loops,
//! files named like bhavstore's own records, and planted "secrets" whose content must never be
//! echoed back.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The first line of [`secret_file`]: nothing bhavstore prints or answers may contain it.
pub const SECRET: &str = "TOPSECRET_API_KEY=sk-live-4f0c2d9e";

/// The first `lines` lines of a body (header included), line ends kept.
#[must_use]
pub fn first_lines(body: &[u8], lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|b| *b == b'\n').take(lines) {
        out.extend_from_slice(line);
    }
    out
}

/// The header line alone: a file that parses, with no rows.
#[must_use]
pub fn header_only(body: &[u8]) -> Vec<u8> {
    first_lines(body, 1)
}

/// The body re-encoded as UTF-16 little-endian, as a Windows editor saves "Unicode" text.
#[must_use]
pub fn utf16le(body: &[u8], bom: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut out = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
    out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

/// The body with field `field` (0-based) of data line `line` (1-based, the header is line 1)
/// replaced by `value`, written as is (a value with a comma adds a field).
#[must_use]
pub fn with_field(body: &[u8], line: usize, field: usize, value: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len() + value.len());
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let (content, end) = l.find(['\r', '\n']).map_or((l, ""), |p| l.split_at(p));
            let mut fields: Vec<&str> = content.split(',').collect();
            fields[field] = value;
            out.push_str(&fields.join(","));
            out.push_str(end);
        } else {
            out.push_str(l);
        }
    }
    out.into_bytes()
}

/// A zip of the given members, deflated.
#[must_use]
pub fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in members {
        w.start_file(*name, opts).expect("zip member");
        w.write_all(body).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

/// A decompression bomb: `members` CSV members of `member_bytes` each (a bhavcopy header, then
/// zeros), compressed once and copied, so building it costs one member's compression.
#[must_use]
pub fn zip_bomb(members: usize, member_bytes: usize, header: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9));
    w.start_file("EQ050115.CSV", opts).expect("zip member");
    w.write_all(header).expect("header");
    let chunk = vec![b'0'; 1 << 20];
    let mut left = member_bytes.saturating_sub(header.len());
    while left > 0 {
        let n = left.min(chunk.len());
        w.write_all(&chunk[..n]).expect("zeros");
        left -= n;
    }
    for i in 1..members {
        // Dates that exist, so each member looks like a day of its own.
        w.deep_copy_file("EQ050115.CSV", &format!("EQ{:02}0215.CSV", i + 1)).expect("copy member");
    }
    w.finish().expect("zip finish").into_inner()
}

/// Names and uncompressed sizes of a zip's members.
#[must_use]
pub fn zip_listing(bytes: &[u8]) -> Vec<(String, u64)> {
    let mut a = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
    (0..a.len())
        .map(|i| {
            let f = a.by_index(i).expect("member");
            (f.name().to_string(), f.size())
        })
        .collect()
}

/// Reads a zip member whole (test side, small archives only).
#[must_use]
pub fn zip_member(bytes: &[u8], name: &str) -> Vec<u8> {
    let mut a = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
    let mut out = Vec::new();
    a.by_name(name).expect("member").read_to_end(&mut out).expect("read");
    out
}

/// A file of "secrets" that is not a bhavcopy: a `.env` with an API key first.
pub fn secret_file(path: &Path) -> PathBuf {
    std::fs::write(path, format!("{SECRET}\nDB_PASSWORD=hunter2\n")).expect("write secret");
    path.to_path_buf()
}

/// The tree of the symlink attacks under `dir`: a real bhavcopy, a link named like a bhavcopy
/// pointing at `target` (outside the tree), a link back to the tree itself (`loop -> .`) and a
/// link to a directory outside. Returns the tree's root.
pub fn symlink_tree(dir: &Path, real: &Path, target: &Path, outside_dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("tree");
    std::fs::copy(real, tree.join("sub").join(real.file_name().expect("name"))).expect("copy");
    std::os::unix::fs::symlink(target, tree.join("EQ010216.CSV")).expect("link out");
    std::os::unix::fs::symlink(".", tree.join("loop")).expect("loop");
    std::os::unix::fs::symlink(outside_dir, tree.join("elsewhere")).expect("link to dir");
    tree
}

/// Every file under `dir` (not following links), with its bytes.
#[must_use]
pub fn files_with_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Whether `haystack` contains `needle` as bytes.
#[must_use]
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs a command to completion within `limit`, sampling its peak resident memory
/// (`VmHWM`, kB). Kills it and panics when it runs longer.
pub fn run_measured(cmd: &mut Command, limit: Duration) -> (Output, u64) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let pid = child.id();
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let started = Instant::now();
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?} (killed)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    (Output { status, stdout, stderr }, peak_kb)
}
