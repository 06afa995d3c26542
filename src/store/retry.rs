//! Retries with decorrelated-jitter exponential backoff, bounded by attempts and by a total time
//! budget (the policy of object_store and AWS's guidance; cloud-files retries 7 times with a
//! random exponential wait). Used by every network store.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// One attempt's outcome: the value, or an error with whether it is worth retrying
/// (connection errors, timeouts, 408, 429, 5xx, truncated or corrupt bodies).
pub type Attempt<T> = std::result::Result<T, (bool, Error)>;

/// A retry policy.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub max_attempts: u32,
    /// The total time one operation may take, waits included, before no new attempt starts.
    pub budget: Duration,
    /// The first wait, and the floor of every wait.
    pub base: Duration,
    /// The longest single wait.
    pub cap: Duration,
}

impl Retry {
    /// At most `max_attempts` attempts within `budget_secs` seconds, waits from 50 ms to 10 s.
    pub fn new(max_attempts: u32, budget_secs: f64) -> Retry {
        Retry {
            max_attempts: max_attempts.max(1),
            budget: Duration::from_secs_f64(budget_secs),
            base: Duration::from_millis(50),
            cap: Duration::from_secs(10),
        }
    }

    /// Run `once` until it succeeds, fails for good, or the attempts or the budget run out.
    /// The error of the last attempt is returned, saying how many attempts were made.
    ///
    /// # Errors
    /// The last attempt's error.
    pub fn run<T>(&self, mut once: impl FnMut() -> Attempt<T>) -> Result<T> {
        let start = Instant::now();
        let mut attempt = 0u32;
        let mut wait = self.base;
        loop {
            attempt += 1;
            match once() {
                Ok(v) => return Ok(v),
                Err((retry, e)) => {
                    if !retry {
                        return Err(if attempt > 1 { e.note(format!("after {attempt} attempts")) } else { e });
                    }
                    if attempt >= self.max_attempts {
                        return Err(
                            e.note(format!("gave up after {attempt} attempts, max_attempts {}", self.max_attempts))
                        );
                    }
                    wait = self.next_wait(wait);
                    let elapsed = start.elapsed();
                    if elapsed + wait > self.budget {
                        return Err(e.note(format!(
                            "gave up after {attempt} attempts in {:.1} s, retry_budget {:.1} s",
                            elapsed.as_secs_f64(),
                            self.budget.as_secs_f64()
                        )));
                    }
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// Decorrelated jitter: a uniform draw from `[base, 3 * previous]`, capped.
    fn next_wait(&self, prev: Duration) -> Duration {
        let lo = self.base.as_secs_f64();
        let hi = (prev.as_secs_f64() * 3.0).max(lo);
        Duration::from_secs_f64((lo + (hi - lo) * unit_random()).min(self.cap.as_secs_f64()))
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let here = &t as *const u64 as u64; // differs per thread stack
        (t ^ here.rotate_left(32)) | 1
    });
}

/// A uniform draw from `[0, 1)` (xorshift64*; jitter needs no more).
fn unit_random() -> f64 {
    RNG.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32, budget_ms: u64) -> Retry {
        Retry {
            max_attempts: attempts,
            budget: Duration::from_millis(budget_ms),
            base: Duration::from_millis(1),
            cap: Duration::from_millis(20),
        }
    }

    #[test]
    fn retries_until_success_and_stops_on_fatal_errors() {
        let mut n = 0;
        let v = policy(5, 10_000).run(|| {
            n += 1;
            if n < 3 {
                Err((true, Error::io("x")))
            } else {
                Ok(n)
            }
        });
        assert_eq!(v.unwrap(), 3);
        let mut n = 0;
        let e = policy(5, 10_000)
            .run(|| -> Attempt<()> {
                n += 1;
                Err((false, Error::auth("refused")))
            })
            .unwrap_err();
        assert_eq!(n, 1);
        assert!(e.message().contains("refused"));
    }

    #[test]
    fn attempts_and_budget_bound_the_retries() {
        let mut n = 0;
        let e = policy(4, 10_000)
            .run(|| -> Attempt<()> {
                n += 1;
                Err((true, Error::io("HTTP 503")))
            })
            .unwrap_err();
        assert_eq!(n, 4);
        assert!(e.message().contains("4 attempts"), "{e}");
        let t = Instant::now();
        let e = policy(1000, 60).run(|| -> Attempt<()> { Err((true, Error::io("HTTP 503"))) }).unwrap_err();
        // Without the budget 1000 attempts would wait ~20 s; a loaded machine may oversleep a little.
        assert!(t.elapsed() < Duration::from_millis(1500), "{:?}", t.elapsed());
        assert!(e.message().contains("retry_budget"), "{e}");
    }

    #[test]
    fn waits_are_jittered_within_bounds() {
        let p = policy(10, 1000);
        // Below the cap every draw is uniform in [base, 3 * prev]: (almost) all distinct, spread
        // over the range. (A chain of waits is not used here: once it reaches the cap about two
        // draws in three are exactly the cap, and a count of distinct values would be flaky.)
        let prev = Duration::from_millis(5);
        let draws: Vec<Duration> = (0..400).map(|_| p.next_wait(prev)).collect();
        assert!(draws.iter().all(|w| *w >= p.base && *w <= prev * 3), "{draws:?}");
        let distinct: std::collections::HashSet<u128> = draws.iter().map(Duration::as_nanos).collect();
        assert!(distinct.len() > 390, "waits are not jittered: {} distinct of 400", distinct.len());
        let low = draws.iter().filter(|w| **w < Duration::from_millis(8)).count();
        assert!((100..300).contains(&low), "not uniform: {low} of 400 below the middle");
        // A long chain never leaves [base, cap] and reaches the cap.
        let mut w = p.base;
        let mut capped = 0;
        for _ in 0..200 {
            w = p.next_wait(w);
            assert!(w >= p.base && w <= p.cap, "{w:?}");
            capped += usize::from(w == p.cap);
        }
        assert!(capped > 0, "the cap was never reached");
    }
}
