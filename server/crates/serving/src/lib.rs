//! The protocols of `bhavstore serve`: Postgres wire ([`pg`]), Arrow Flight SQL ([`flight`]) and
//! REST ([`rest`]), and what they share ([`serve`]: state, engine, listeners, limits).

pub mod flight;
pub mod pg;
pub mod rest;
pub mod serve;
