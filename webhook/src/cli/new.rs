//! `plate-policy new NAME`: writes a policy crate (see kit::scaffold) and says how
//! to build, test and use it.

use super::EXIT_BAD_INPUT;
use crate::kit::scaffold::{self, Lang, Sdk};
use crate::{errorln, outln};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The crate to create: a directory that does not exist yet, whose name is the
    /// policy's (`require-owner`, `policies/require-owner`).
    #[arg(value_name = "NAME")]
    pub name: PathBuf,
    /// The policy's language: a Rust crate, or a Go module (a WASI reactor built
    /// with Go's own toolchain; docs/authoring-go.md).
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
    /// Depend on the SDK at this directory (`policies/sdk`, for Go
    /// `policies/sdk-go`, of a plate-policy checkout) [default: the checkout NAME is
    /// in, if any; for Go outside a checkout, a copy in NAME/plate-sdk].
    #[arg(long, value_name = "DIR", conflicts_with = "sdk_version")]
    pub sdk_path: Option<PathBuf>,
    /// Depend on this version of plate-policy-sdk [default outside a checkout: this
    /// release's].
    #[arg(long, value_name = "VERSION")]
    pub sdk_version: Option<String>,
}

pub fn run(args: &NewArgs) -> u8 {
    match scaffold::create(
        &args.name,
        args.lang,
        args.sdk_path.as_deref(),
        args.sdk_version.as_deref(),
    ) {
        Ok(created) => super::output::finish(report(args, &created).map(|()| 0)),
        Err(e) => {
            errorln!("{e}");
            EXIT_BAD_INPUT
        }
    }
}

fn report(args: &NewArgs, created: &scaffold::Scaffold) -> std::io::Result<()> {
    let sdk = match &created.sdk {
        Sdk::Path(path) => format!("the SDK at {}", path.display()),
        Sdk::Version(version) => format!("plate-policy-sdk {version}"),
        Sdk::Copy(path) => format!("a copy of the Go SDK in {}", path.display()),
    };
    outln!(
        "created policy {} in {} (with {sdk})",
        created.name,
        args.name.display()
    )?;
    for file in &created.files {
        outln!("  {}", file.display())?;
    }
    outln!("next:")?;
    outln!("  cd {}", args.name.display())?;
    match args.lang {
        Lang::Rust => outln!("  cargo build --target wasm32-unknown-unknown --release")?,
        Lang::Go => outln!(
            "  GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o {}.wasm .",
            created.name
        )?,
    }
    outln!("  plate-policy test tests")?;
    outln!("  plate-policy check -f MANIFEST --env prod --policies policy-set.yaml")
}
