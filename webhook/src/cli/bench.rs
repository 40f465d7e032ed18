//! `plate-policy bench MODULE -f OBJECT [-n N]`: times N evaluations of one module
//! on one object, each in a fresh sandbox from the pool as `serve` makes them, and
//! prints the median and the 99th percentile.

use super::EXIT_BAD_INPUT;
use super::run::{ModuleInput, prepare};
use crate::kit::single;
use crate::{errorln, outln};
use std::time::{Duration, Instant};

/// Evaluations before timing starts: the first ones fault in the code and the
/// pool's memory.
const WARMUP: usize = 20;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub input: ModuleInput,
    /// The environment the object is in (default: none).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// How many evaluations to time.
    #[arg(short = 'n', long = "runs", value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
}

pub fn run(args: &BenchArgs) -> u8 {
    let Some(prepared) = prepare(&args.input) else {
        return EXIT_BAD_INPUT;
    };
    let (review, slot) = match prepared.ready() {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let env = args.env.as_deref();
    let decide = || single::decide(&prepared.set, &review, env, &prepared.objects, &slot);
    let first = decide();
    let Some(outcome) = first.outcomes.first() else {
        errorln!("the policy does not run on this object");
        return EXIT_BAD_INPUT;
    };
    let verdict = match &outcome.effect {
        crate::admission::Effect::Pass => "allowed".to_string(),
        crate::admission::Effect::Violations(v) => format!("{} violation(s)", v.len()),
        crate::admission::Effect::Failed { failure, .. } => {
            errorln!("{}: policy {failure}", outcome.policy);
            return EXIT_BAD_INPUT;
        }
    };
    for _ in 0..WARMUP {
        decide();
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(args.runs as usize);
    for _ in 0..args.runs {
        let start = Instant::now();
        // Dropping the decision (and so the sandbox's store) is part of the work.
        drop(decide());
        samples.push(start.elapsed());
    }
    let (min, max) = (
        samples.iter().min().copied().unwrap_or_default(),
        samples.iter().max().copied().unwrap_or_default(),
    );
    let (median, p99) = single::median_and_p99(&mut samples);
    let origin = prepared
        .set
        .policies
        .first()
        .map(|p| match p.module.origin() {
            crate::engine::Origin::Compiled => "compiled",
            crate::engine::Origin::Cache => "from the module cache",
            crate::engine::Origin::Precompiled => "precompiled",
        })
        .unwrap_or("loaded");
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
    let report = || -> std::io::Result<()> {
        outln!(
            "{} on {}: {verdict}, environment {}",
            outcome.policy,
            args.input.file,
            env.unwrap_or("none")
        )?;
        outln!("loaded in {} ({origin})", ms(prepared.load_time))?;
        outln!(
            "{} evaluations, each in a fresh sandbox: median {}, p99 {} (min {}, max {})",
            args.runs,
            ms(median),
            ms(p99),
            ms(min),
            ms(max)
        )
    };
    super::output::finish(report().map(|()| 0))
}
