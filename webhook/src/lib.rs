//! plate-policy: a Kubernetes validating admission webhook whose policies are
//! WebAssembly modules. The binary's commands (`serve`, `test`, `check`, and the
//! policy kit's `run` and `bench` in [`kit`]) all go through the same decision path:
//! [`review`] (the wire format) into [`admission`] (the decision) over [`policy_set`] and [`engine`], with
//! [`objects`] answering what policies and environments read. docs/architecture.md
//! maps the modules.

pub mod admission;
pub mod audit;
pub mod builtin;
pub mod certs;
pub mod cli;
pub mod engine;
pub mod environment;
pub mod kit;
pub mod manifest;
pub mod metrics;
pub mod objects;
pub mod oci;
pub mod policy_set;
pub mod review;
pub mod server;
pub mod testing;
