//! `plate-policy certs --out DIR --dns NAME...`: writes a dev CA, a serving
//! certificate for the given names and a client certificate.

use super::EXIT_BAD_INPUT;
use crate::certs;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, ca.key, tls.crt, tls.key, client.crt, client.key to.
    #[arg(long, value_name = "DIR", default_value = "certs-dev")]
    pub out: PathBuf,
    /// DNS names or IP addresses of the serving certificate (repeatable); default:
    /// localhost, 127.0.0.1, ::1 and plate-policy.plate-system.svc.
    #[arg(long = "dns", value_name = "NAME")]
    pub dns: Vec<String>,
}

pub fn run(args: &CertsArgs) -> u8 {
    let names = if args.dns.is_empty() {
        certs::DEFAULT_DNS_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        args.dns.clone()
    };
    match certs::generate(&args.out, &names) {
        Ok(files) => super::output::finish(report(&files, &names).map(|()| 0)),
        Err(e) => {
            crate::errorln!("{e}");
            EXIT_BAD_INPUT
        }
    }
}

fn report(files: &certs::CertFiles, names: &[String]) -> std::io::Result<()> {
    crate::outln!(
        "wrote {} (serving certificate for {})",
        files.dir.display(),
        names.join(", ")
    )?;
    crate::outln!("  CA:      {}", files.ca_cert.display())?;
    crate::outln!(
        "  server:  {} {}",
        files.server_cert.display(),
        files.server_key.display()
    )?;
    crate::outln!(
        "  client:  {} {}",
        files.client_cert.display(),
        files.client_key.display()
    )
}
