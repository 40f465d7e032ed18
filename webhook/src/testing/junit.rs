//! JUnit XML for CI systems, from test results.

use super::runner::{CaseResult, Status};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::collections::BTreeMap;

/// The report cannot be written as XML.
#[derive(Debug, thiserror::Error)]
#[error("cannot write JUnit XML: {0}")]
pub struct JunitError(#[from] quick_junit::SerializeError);

pub fn report(results: &[CaseResult]) -> Result<String, JunitError> {
    let mut report = Report::new("plate-policy test");
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for r in results {
        let suite = suites
            .entry(r.suite.as_str())
            .or_insert_with(|| TestSuite::new(r.suite.clone()));
        let status = match &r.status {
            Status::Passed => TestCaseStatus::success(),
            Status::Failed(why) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(why.clone());
                s
            }
            Status::Error(why) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(why.clone());
                s
            }
        };
        let mut case = TestCase::new(r.name.clone(), status);
        case.set_time(r.duration);
        suite.add_test_case(case);
    }
    report.add_test_suites(suites.into_values());
    Ok(report.to_string()?)
}
