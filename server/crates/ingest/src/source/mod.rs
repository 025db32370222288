//! Downloading bhavcopies from BSE over HTTP.

mod client;
mod rate_limit;
pub mod urls;

pub use client::{BseClient, FetchError, FetchOutcome, Fetched};
pub use rate_limit::RateLimiter;
