//! `swell check`: validate KEDA manifests offline with the operator's own rules, and
//! optionally against the cluster (`--cluster`).

use std::io::{Read as _, Write as _};

use swell_check::check::{self, Severity};
pub use swell_check::manifest::{
    DEFAULT_NAMESPACE, Doc, check_offline, check_with_cluster, parse_text,
};

/// Exit codes.
pub const EXIT_OK: u8 = 0;
pub const EXIT_INVALID: u8 = 1;
pub const EXIT_UNREADABLE: u8 = 2;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Manifest files (YAML, one or more documents each); `-` reads standard input.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<String>,
    /// Also check against the cluster of the current kubeconfig: the target exists and has
    /// /scale, TriggerAuthentications exist, the workload's ServiceAccount has an IAM role when
    /// the trigger needs one, and no other ScaledObject or HPA targets the same workload.
    #[arg(long)]
    pub cluster: bool,
    /// The namespace of manifests that name none, as with `kubectl apply -n` (default: the
    /// kubeconfig context's namespace with --cluster, otherwise `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// Reads every file; unreadable files and YAML errors are returned as messages.
pub fn load(files: &[String]) -> (Vec<Doc>, Vec<String>) {
    let mut docs = Vec::new();
    let mut unreadable = Vec::new();
    for file in files {
        let text = if file == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map(|_| s)
        } else {
            std::fs::read_to_string(file)
        };
        let name = if file == "-" {
            "<stdin>"
        } else {
            file.as_str()
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                unreadable.push(format!("{name}: cannot read: {e}"));
                continue;
            }
        };
        let (d, u) = parse_text(name, &text);
        docs.extend(d);
        unreadable.extend(u);
    }
    (docs, unreadable)
}

/// Prints the report and returns the exit code.
pub fn report(docs: &[Doc], unreadable: &[String], out: &mut impl std::io::Write) -> u8 {
    let mut errors = 0usize;
    let mut warnings = 0usize;
    let mut invalid = 0usize;
    let mut checked = 0usize;
    for doc in docs {
        if doc.object.is_some() || check::has_errors(&doc.findings) {
            checked += 1;
        }
        let mut findings = doc.findings.clone();
        findings.sort_by_key(|f| f.severity);
        if findings.is_empty() {
            let _ = writeln!(out, "{}: {}: ok", doc.location, doc.title);
        }
        for f in &findings {
            let _ = writeln!(
                out,
                "{}: {}: {}: {}: {}",
                doc.location, doc.title, f.severity, f.field, f.message
            );
            match f.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
                Severity::Note => {}
            }
        }
        if check::has_errors(&findings) {
            invalid += 1;
        }
    }
    for u in unreadable {
        let _ = writeln!(out, "{u}");
    }
    let _ = writeln!(
        out,
        "{checked} object(s) checked: {invalid} invalid, {errors} error(s), {warnings} warning(s){}",
        if unreadable.is_empty() {
            String::new()
        } else {
            format!(", {} unreadable input(s)", unreadable.len())
        }
    );
    if !unreadable.is_empty() {
        EXIT_UNREADABLE
    } else if invalid > 0 {
        EXIT_INVALID
    } else {
        EXIT_OK
    }
}

/// `swell check`: the exit code.
pub fn run(args: &CheckArgs) -> u8 {
    let (mut docs, unreadable) = load(&args.files);
    if args.cluster {
        let checked = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(async {
                    let client = kube::Client::try_default().await.map_err(|e| {
                        format!("cannot reach the cluster of the current kubeconfig: {e}")
                    })?;
                    let ns = args
                        .namespace
                        .clone()
                        .unwrap_or_else(|| client.default_namespace().to_string());
                    check_with_cluster(&mut docs, &client, &ns).await;
                    Ok::<(), String>(())
                })
            });
        if let Err(e) = checked {
            let _ = writeln!(std::io::stdout(), "--cluster: {e}");
            return EXIT_UNREADABLE;
        }
    } else {
        check_offline(
            &mut docs,
            args.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
        );
    }
    let mut out = std::io::stdout().lock();
    report(&docs, &unreadable, &mut out)
}
