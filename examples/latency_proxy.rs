//! A loopback latency proxy for benchmarks:
//!
//! ```text
//! latency_proxy --upstream 127.0.0.1:8080 [--listen 127.0.0.1:0] [--delay-ms 20] [--connect-delay-ms 0]
//! ```
//!
//! Forwards every connection to the upstream and holds every HTTP request for `--delay-ms`
//! before forwarding it (keep-alive connections included). Prints the bound port on stdout
//! (one line), then runs until killed. Commands on stdin, one per line: `stats` prints the
//! counters as one JSON line (requests, connections, in_flight, peak_in_flight, bytes_up,
//! bytes_down); `reset` zeroes them and prints `ok`. End of stdin is ignored.

#[path = "../tests/support/proxy.rs"]
mod proxy;

use std::io::{BufRead, Write};
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: latency_proxy --upstream HOST:PORT [--listen 127.0.0.1:PORT] [--delay-ms N] [--connect-delay-ms N]"
    );
    std::process::exit(2);
}

fn main() {
    let mut listen = "127.0.0.1:0".to_string();
    let mut upstream = None;
    let mut delay_ms = 20.0f64;
    let mut connect_delay_ms = 0.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = || inline.clone().or_else(|| args.next()).unwrap_or_else(|| usage());
        match flag.as_str() {
            "--listen" => listen = val(),
            "--upstream" => upstream = Some(val()),
            "--delay-ms" => delay_ms = val().parse().unwrap_or_else(|_| usage()),
            "--connect-delay-ms" => connect_delay_ms = val().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("latency_proxy: unknown argument {a}");
                usage()
            }
        }
    }
    let Some(upstream) = upstream else { usage() };
    if !(delay_ms >= 0.0 && connect_delay_ms >= 0.0) {
        usage();
    }
    let cfg = proxy::Config {
        listen,
        upstream: upstream.clone(),
        delay: Duration::from_secs_f64(delay_ms / 1000.0),
        connect_delay: Duration::from_secs_f64(connect_delay_ms / 1000.0),
    };
    let p = match proxy::LatencyProxy::with_config(cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("latency_proxy: cannot start ({upstream}): {e}");
            std::process::exit(1);
        }
    };
    println!("{}", p.port());
    let _ = std::io::stdout().flush();
    eprintln!("latency_proxy: {} -> {upstream}, +{delay_ms} ms per request", p.addr());

    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let mut out = std::io::stdout().lock();
        match line.trim() {
            "stats" => {
                let _ = writeln!(out, "{}", p.snapshot().to_json());
            }
            "reset" => {
                p.reset();
                let _ = writeln!(out, "ok");
            }
            "" => continue,
            other => {
                let _ = writeln!(out, "{{\"error\":\"unknown command {other}\"}}");
            }
        }
        let _ = out.flush();
    }
    // Stdin closed (or never open): keep serving until killed.
    loop {
        std::thread::park();
    }
}
