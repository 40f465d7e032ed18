//! `plate-policy test`: policy test suites (format in `suite`, runner, JUnit output).

pub mod junit;
pub mod runner;
pub mod suite;

pub use runner::{CaseResult, CaseVerdict, PolicyVerdict, Runner, Status, SuiteError};
