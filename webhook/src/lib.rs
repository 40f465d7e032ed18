//! plate-policy: a Kubernetes validating admission webhook whose policies are
//! WebAssembly modules. The binary's commands (`serve`, `test`, `check`, `certs`) all
//! go through the same decision path: [`admission`] over [`policy_set`] and [`engine`].

pub mod admission;
pub mod builtin;
pub mod certs;
pub mod cli;
pub mod context_cache;
pub mod engine;
pub mod environment;
pub mod manifest;
pub mod metrics;
pub mod namespace_cache;
pub mod policy_set;
pub mod server;
pub mod static_objects;
pub mod testing;
