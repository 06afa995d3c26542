//! A loopback fault-injecting HTTP proxy for benchmarks (the test double of
//! tests/support/fault_proxy.rs, as a program):
//!
//! ```text
//! fault_proxy --upstream 127.0.0.1:9000 [--listen 127.0.0.1:0] [--rate-503 0.05] [--seed 1]
//! ```
//!
//! Prints the bound port on stdout (one line), then runs until killed. Commands on stdin, one
//! per line: `stats` prints `{"requests":N,"injected":M}`; `reset` is not needed (read twice
//! and subtract).

#[path = "../tests/support/fault_proxy.rs"]
mod fault_proxy;

use std::io::{BufRead, Write};

fn usage() -> ! {
    eprintln!("usage: fault_proxy --upstream HOST:PORT [--listen 127.0.0.1:PORT] [--rate-503 F] [--seed N]");
    std::process::exit(2);
}

fn main() {
    let mut listen = "127.0.0.1:0".to_string();
    let mut upstream = None;
    let mut rate = 0.0f64;
    let mut seed = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = val(),
            "--upstream" => upstream = Some(val()),
            "--rate-503" => rate = val().parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let Some(upstream) = upstream else { usage() };
    let proxy = fault_proxy::FaultProxy::start_on(&listen, &upstream).unwrap_or_else(|e| {
        eprintln!("fault_proxy: {e}");
        std::process::exit(1);
    });
    proxy.set_503_rate(rate, seed);
    println!("{}", proxy.addr().port());
    let _ = std::io::stdout().flush();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "stats" {
            println!("{{\"requests\":{},\"injected\":{}}}", proxy.requests(), proxy.injected());
            let _ = std::io::stdout().flush();
        }
    }
    // Stdin closed: keep serving until killed.
    loop {
        std::thread::park();
    }
}
