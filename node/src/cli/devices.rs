//! `aivm devices`: the tensor backends this machine offers, and `--backend` / `AIVM_BACKEND`
//! selection shared by every subcommand that runs kernels.

use aivm::backend::{list_devices, Backend, BackendConfig, BackendError, BackendKind, CpuBackend};
use anyhow::{Context, Result};
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct DevicesArgs {
    #[arg(long)]
    pub json: bool,
}

/// The backend the environment configures (`AIVM_BACKEND`, ...), with `--backend` and
/// `--threads` applied on top.
pub fn open_backend(flag: Option<&str>, threads: Option<usize>) -> Result<Arc<dyn Backend>> {
    let mut cfg = BackendConfig::from_env().context("reading the backend configuration")?;
    if let Some(f) = flag {
        cfg.kind = BackendKind::parse(f)?;
    }
    if let Some(t) = threads {
        cfg.threads = t.max(1);
    }
    cfg.open().with_context(|| format!("opening the {} backend", cfg.kind.name()))
}

/// Exit 0 whether or not OpenCL exists (saying which); 2 if the driver stack errs.
pub fn run(a: DevicesArgs) -> ExitCode {
    let cpu = CpuBackend::default().describe();
    // Where model weights live (`aivm/tensor/src/resident.rs`): the THP setting and whether
    // it gives them 2 MiB pages.
    let pages = aivm::kernels::resident::huge_page_setting();
    let (devices, note) = match list_devices() {
        Ok(d) => (d, None),
        Err(e @ BackendError::NoPlatform(_)) => (Vec::new(), Some(e.to_string())),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if a.json {
        let list: Vec<_> = devices
            .iter()
            .map(|d| {
                json!({"id": d.selector.to_string(), "platform": d.platform, "platform_version": d.platform_version, "name": d.name, "vendor": d.vendor,
                       "version": d.version, "type": d.kind, "compute_units": d.compute_units, "global_mem": d.global_mem, "max_alloc": d.max_alloc})
            })
            .collect();
        let (thp, huge) = (pages.as_ref().map(|p| &p.0), pages.as_ref().map(|p| p.1));
        let j = json!({"cpu": cpu, "transparent_huge_pages": thp, "weights_on_huge_pages": huge, "opencl": list, "opencl_note": note});
        println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!("cpu      {cpu}");
    match pages {
        Some((thp, true)) => println!("memory   model weights on 2 MiB pages (transparent huge pages: {thp})"),
        Some((thp, false)) => {
            println!("memory   model weights on 4 KiB pages (transparent huge pages: {thp}; `madvise` or `always` makes decode 18-35 % faster, README)")
        }
        None => println!("memory   model weights on the system's default pages (no transparent huge page setting to read)"),
    }
    match note {
        Some(n) => println!("opencl   none: {n}"),
        None if devices.is_empty() => println!("opencl   platforms exist but report no devices"),
        None => {
            for d in &devices {
                println!(
                    "opencl {} {} / {} ({}, {}, {} compute units, {} MiB, max buffer {} MiB)",
                    d.selector,
                    d.platform,
                    d.name,
                    d.kind,
                    d.version,
                    d.compute_units,
                    d.global_mem >> 20,
                    d.max_alloc >> 20
                );
            }
            println!("select with AIVM_BACKEND=opencl [AIVM_OPENCL_DEVICE=<platform>:<device>]");
        }
    }
    ExitCode::SUCCESS
}
