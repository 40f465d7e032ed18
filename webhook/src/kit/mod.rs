//! The policy kit behind `new`, `run`, `inspect` and `bench`: scaffolding a policy
//! crate, and running one module on its own.

pub mod scaffold;
pub mod single;
