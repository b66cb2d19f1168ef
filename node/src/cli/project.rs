//! `aivm new NAME` and `aivm build`: a contract project outside this workspace, and its
//! reproducible wasm.
//!
//! Reproducible means the same source, `Cargo.lock` and toolchain give the same bytes (so the
//! same code hash) from any checkout path, user or machine. rustc embeds source paths in the
//! wasm (panic locations of dependencies, under `$CARGO_HOME/registry/...`, and of any path
//! dependency outside the workspace); `aivm build` maps each such prefix to a fixed name with
//! `--remap-path-prefix`, added through `cargo --config` so that the project's own
//! `.cargo/config.toml` flags (stack size, initial memory) still apply. `make contracts` uses
//! the same mapping (Makefile `WASM_REMAP`), so `aivm build -p token` in this repository gives
//! the hash `make contracts` does.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where rustc's paths under `$CARGO_HOME` are mapped (registry sources, git checkouts).
pub const CARGO_HOME_NAME: &str = "/cargo";
/// Where the project's workspace root is mapped.
pub const WORKSPACE_NAME: &str = "/build";
const TARGET: &str = "wasm32-unknown-unknown";

#[derive(clap::Args)]
pub struct NewArgs {
    /// The contract's name (a new directory of that name is created).
    pub name: String,
    /// Create it in this directory instead of `./NAME`.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// The `sdk-contract` folder of an AIVM checkout (default: the one this binary was built
    /// from, if it is still there).
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project's Cargo.toml (default: the one cargo finds from the current directory).
    #[arg(long)]
    pub manifest_path: Option<PathBuf>,
    /// Build only these packages (default: the workspace's default members).
    #[arg(short = 'p', long = "package")]
    pub packages: Vec<String>,
    /// Refuse to update Cargo.lock (what a verifier of someone else's code hash wants).
    #[arg(long)]
    pub locked: bool,
    /// One JSON object instead of lines of text.
    #[arg(long)]
    pub json: bool,
}

const CARGO_TOML: &str = include_str!("template/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("template/lib.rs.tmpl");
const TEST_RS: &str = include_str!("template/test.rs.tmpl");
const README: &str = include_str!("template/README.md.tmpl");
const GITIGNORE: &str = include_str!("template/gitignore.tmpl");
/// The link arguments every contract needs (stack size, initial memory): this workspace's own.
const CARGO_CONFIG: &str = include_str!("../../../.cargo/config.toml");
/// The versions the SDK and testkit were tested with: a new project starts from them (cargo
/// drops what the project does not use), so its first build is the one CI checked.
const CARGO_LOCK: &str = include_str!("../../../Cargo.lock");

/// `aivm new`: write the project; refuse a directory that exists.
pub fn new(a: NewArgs) -> Result<bool> {
    let name = &a.name;
    let valid = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        bail!("`{name}` is not a crate name: letters, digits, `-` and `_`, starting with a letter");
    }
    let dir = a.path.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!("{} already exists; choose another name or --path", dir.display());
    }
    let sdk = match a.sdk {
        Some(s) => s,
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk-contract");
            if !built_from.join("Cargo.toml").is_file() {
                bail!("no SDK at {} (this binary's checkout moved): pass --sdk PATH/sdk-contract", built_from.display());
            }
            built_from
        }
    };
    let sdk = sdk.canonicalize().with_context(|| format!("the SDK folder {}", sdk.display()))?;
    if !sdk.join("testkit/Cargo.toml").is_file() {
        bail!("{} is not the SDK folder (`sdk-contract` of an AIVM checkout: it has testkit/)", sdk.display());
    }
    let fill = |t: &str| t.replace("{{name}}", name).replace("{{crate}}", &name.replace('-', "_")).replace("{{sdk}}", &sdk.display().to_string());
    let files: [(&str, String); 7] = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        ("tests/contract.rs", fill(TEST_RS)),
        ("README.md", fill(README)),
        (".gitignore", GITIGNORE.to_string()),
        (".cargo/config.toml", CARGO_CONFIG.to_string()),
        ("Cargo.lock", CARGO_LOCK.to_string()),
    ];
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {} (contract `{name}`, SDK {})", dir.display(), sdk.display());
    println!("next: cd {} && aivm build && cargo test", dir.display());
    Ok(true)
}

/// `aivm build`: cargo's release build for wasm32 with paths remapped; prints each wasm with
/// its size, code hash and deploy gas.
pub fn build(a: BuildArgs) -> Result<bool> {
    let metadata = metadata(a.manifest_path.as_deref())?;
    let remaps = remaps(&metadata)?;
    let flags: Vec<String> = remaps.iter().map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display())).collect();
    let mut cmd = Command::new(cargo());
    cmd.args(["build", "--release", "--target", TARGET, "--message-format=json-render-diagnostics"]);
    cmd.arg("--config").arg(format!("target.{TARGET}.rustflags={}", toml_array(&flags)));
    if let Some(m) = &a.manifest_path {
        cmd.arg("--manifest-path").arg(m);
    }
    for p in &a.packages {
        cmd.args(["-p", p]);
    }
    if a.locked {
        cmd.arg("--locked");
    }
    // Flags from the environment would replace the project's config (and the remapping).
    cmd.env_remove("RUSTFLAGS").env_remove("CARGO_ENCODED_RUSTFLAGS");
    cmd.stderr(std::process::Stdio::inherit());
    let out = cmd.output().context("running cargo")?;
    let wasm: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .filter(|f| f.extension().is_some_and(|e| e == "wasm"))
        .collect();
    if !out.status.success() {
        bail!("cargo build failed ({})", out.status);
    }
    if wasm.is_empty() {
        bail!("the build produced no wasm: is the package a `cdylib`?");
    }
    // The bytes depend on the compiler too: say which one, so a verifier can use the same.
    let rustc = Command::new("rustc").arg("-V").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    let (limits, schedule) = (aivm::Limits::default(), aivm::GasSchedule::default());
    let mut built = Vec::new();
    for path in wasm {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        built.push(json!({
            "wasm": path,
            "bytes": bytes.len(),
            "code_hash": hex::encode(blake3::hash(&bytes).as_bytes()),
            "deploy_gas": aivm::deploy_price(&bytes, &limits, &schedule).ok(),
        }));
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"built": built, "remapped": remaps.iter().map(|(f, t)| json!({"from": f, "to": t})).collect::<Vec<_>>()}))?
        );
    } else {
        println!("built with {rustc}");
        for b in &built {
            println!(
                "{}  {} bytes  code hash {}  deploy gas {}",
                b["wasm"].as_str().unwrap_or(""),
                b["bytes"],
                b["code_hash"].as_str().unwrap_or(""),
                b["deploy_gas"]
            );
        }
    }
    Ok(true)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn metadata(manifest: Option<&Path>) -> Result<Value> {
    let mut cmd = Command::new(cargo());
    cmd.args(["metadata", "--format-version", "1"]);
    if let Some(m) = manifest {
        cmd.arg("--manifest-path").arg(m);
    }
    let out = cmd.output().context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    serde_json::from_slice(&out.stdout).context("cargo metadata's output")
}

/// The prefixes to map, in the order rustc applies them (the last match wins): `$CARGO_HOME`,
/// the workspace root, then each path dependency outside the workspace as
/// `/src/NAME-VERSION` (a checkout of the SDK, say).
pub fn remaps(metadata: &Value) -> Result<Vec<(PathBuf, String)>> {
    let mut out = vec![(cargo_home()?, CARGO_HOME_NAME.to_string())];
    let root = PathBuf::from(metadata["workspace_root"].as_str().ok_or_else(|| anyhow!("cargo metadata has no workspace_root"))?);
    out.push((root.clone(), WORKSPACE_NAME.to_string()));
    for p in metadata["packages"].as_array().into_iter().flatten() {
        let local = p["source"].is_null();
        let dir = p["manifest_path"].as_str().map(Path::new).and_then(Path::parent);
        if let (true, Some(dir)) = (local, dir) {
            if !dir.starts_with(&root) {
                out.push((dir.to_path_buf(), format!("/src/{}-{}", p["name"].as_str().unwrap_or("crate"), p["version"].as_str().unwrap_or("0"))));
            }
        }
    }
    Ok(out)
}

/// `$CARGO_HOME`, or `~/.cargo`, as rustc sees it (symlinks resolved).
fn cargo_home() -> Result<PathBuf> {
    let home = match std::env::var_os("CARGO_HOME") {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(std::env::var_os("HOME").ok_or_else(|| anyhow!("neither CARGO_HOME nor HOME is set"))?).join(".cargo"),
    };
    Ok(home.canonicalize().unwrap_or(home))
}

/// `["a", "b"]` as TOML (strings escaped as TOML basic strings).
fn toml_array(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaps_cover_home_root_and_outside_path_dependencies() {
        let m = json!({
            "workspace_root": "/home/ada/hello",
            "packages": [
                {"name": "hello", "version": "0.1.0", "source": null, "manifest_path": "/home/ada/hello/Cargo.toml"},
                {"name": "aivm-sdk", "version": "0.1.0", "source": null, "manifest_path": "/opt/aivm/sdk-contract/Cargo.toml"},
                {"name": "serde", "version": "1.0.0", "source": "registry+https://github.com/rust-lang/crates.io-index", "manifest_path": "/root/.cargo/registry/src/x/serde-1.0.0/Cargo.toml"},
            ]
        });
        let r = remaps(&m).expect("remaps");
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].1, CARGO_HOME_NAME);
        assert_eq!(r[1], (PathBuf::from("/home/ada/hello"), WORKSPACE_NAME.to_string()));
        assert_eq!(r[2], (PathBuf::from("/opt/aivm/sdk-contract"), "/src/aivm-sdk-0.1.0".to_string()));
        assert_eq!(toml_array(&["a=\"b\"".into()]), r#"["a=\"b\""]"#);
    }
}
