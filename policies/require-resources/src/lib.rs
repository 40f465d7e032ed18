//! Policy `require-resources` (being written).

use plate_policy_sdk::{PolicySettings, ValidationRequest, Verdict, export_policy};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct Settings {}

impl PolicySettings for Settings {}

pub fn validate(_req: &ValidationRequest<Settings>) -> Verdict {
    Verdict::allow()
}

export_policy!(validate, Settings);
