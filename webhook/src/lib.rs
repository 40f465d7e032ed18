//! plate-policy: a Kubernetes validating admission webhook whose policies are
//! WebAssembly modules. The binary's commands (`serve`, `test`, `check`, `certs`) all
//! go through the same decision path: [`admission`] over [`policy_set`] and [`engine`].

pub mod engine;
pub mod admission;
pub mod builtin;
pub mod environment;
pub mod policy_set;
pub mod manifest;
pub mod testing;
pub mod cli;
pub mod certs;
pub mod namespace_cache;
pub mod server;
