//! `swell check` through the real binary: the table of cases in `tests/check-cases/*.yaml`
//! (each document carries its expected findings in `# expect:` comments), exit codes, stdin.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn swell() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swell"))
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check-cases")
}

fn run(args: &[&str], stdin: Option<&str>) -> (i32, String) {
    let mut cmd = swell();
    cmd.arg("check").args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("swell runs");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(text.as_bytes()).expect("stdin is written");
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("swell finishes");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        stderr.is_empty(),
        "swell check wrote to stderr: {}",
        String::from_utf8_lossy(&stderr)
    );
    (status.code().expect("exit code, not a signal"), stdout)
}

/// One document of a case file.
struct Case {
    name: String,
    location: String,
    expects: Vec<String>,
}

fn cases(file: &Path, shown: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(file).expect("case file is readable");
    let mut out = Vec::new();
    for (index, doc) in text.split("\n---\n").enumerate() {
        let mut name = String::new();
        let mut expects = Vec::new();
        for line in doc.lines() {
            if let Some(n) = line.strip_prefix("# case: ") {
                name = n.to_string();
            } else if let Some(e) = line.strip_prefix("# expect: ") {
                expects.push(e.to_string());
            }
        }
        assert!(
            !name.is_empty() && !expects.is_empty(),
            "{shown}:{index} needs `# case:` and `# expect:` lines"
        );
        out.push(Case {
            name,
            location: format!("{shown}:{index}"),
            expects,
        });
    }
    out
}

/// The findings printed for one document: `severity: field: message`.
fn findings<'a>(output: &'a str, location: &str) -> Vec<&'a str> {
    let prefix = format!("{location}: ");
    output
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        // Skip the object's title (`Kind ns/name: `).
        .filter_map(|l| l.split_once(": ").map(|(_, rest)| rest))
        .collect()
}

/// Whether a finding matches `SEVERITY: FIELD: TEXT`.
fn matches(finding: &str, expect: &str) -> bool {
    let mut parts = expect.splitn(3, ": ");
    let (Some(severity), Some(field), Some(text)) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("bad expectation {expect:?}: use ok, valid or SEVERITY: FIELD: TEXT");
    };
    finding.starts_with(&format!("{severity}: {field}: ")) && finding.contains(text)
}

#[test]
fn table_of_manifests() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/check-cases exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut total = 0;
    let mut invalid_total = 0;
    let mut failures = Vec::new();
    for file in &files {
        // Run from the cases directory so locations are `name.yaml:index`.
        let shown = file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_string();
        let output = swell()
            .current_dir(cases_dir())
            .args(["check", "-f", &shown])
            .stdin(Stdio::null())
            .output()
            .expect("swell runs");
        let code = output.status.code().expect("exit code");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut file_invalid = false;
        for case in cases(file, &shown) {
            total += 1;
            let found = findings(&stdout, &case.location);
            let ctx = || {
                format!(
                    "{} ({}): printed\n  {}",
                    case.location,
                    case.name,
                    found.join("\n  ")
                )
            };
            let errors: Vec<&str> = found
                .iter()
                .copied()
                .filter(|f| f.starts_with("error: "))
                .collect();
            if !errors.is_empty() {
                file_invalid = true;
                invalid_total += 1;
            }
            for expect in &case.expects {
                match expect.as_str() {
                    "ok" => {
                        if found != ["ok"] {
                            failures.push(format!("expected no findings: {}", ctx()));
                        }
                    }
                    "valid" => {
                        if !errors.is_empty() || found.is_empty() {
                            failures.push(format!("expected no errors: {}", ctx()));
                        }
                    }
                    e => {
                        if !found.iter().any(|f| matches(f, e)) {
                            failures.push(format!("expected `{e}`: {}", ctx()));
                        }
                    }
                }
            }
            for error in &errors {
                if !case
                    .expects
                    .iter()
                    .any(|e| e.starts_with("error: ") && matches(error, e))
                {
                    failures.push(format!("unexpected `{error}`: {}", ctx()));
                }
            }
        }
        let want = if file_invalid { 1 } else { 0 };
        if code != want {
            failures.push(format!("{shown}: exit code {code}, want {want}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total >= 100, "only {total} cases");
    assert!(invalid_total >= 60, "only {invalid_total} invalid cases");
}

const VALID: &str = "apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: worker
  namespace: demo
spec:
  scaleTargetRef:
    name: worker
  triggers:
  - type: aws-sqs-queue
    metadata:
      queueURL: https://sqs.eu-west-1.amazonaws.com/111122223333/orders
      awsRegion: eu-west-1
      identityOwner: operator
";

#[test]
fn exit_codes_and_stdin() {
    // Valid, from stdin.
    let (code, out) = run(&["-f", "-"], Some(VALID));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("<stdin>:0: ScaledObject demo/worker: ok"),
        "{out}"
    );

    // A warning alone still passes.
    let typo = VALID.replace("awsRegion", "awsregion: eu-west-1\n      awsRegion");
    let (code, out) = run(&["-f", "-"], Some(&typo));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: spec.triggers[0].metadata.awsregion: unknown key for aws-sqs-queue, ignored; did you mean awsRegion?"),
        "{out}"
    );

    // The seed's region mistake fails with the fix.
    let wrong = VALID.replace("awsRegion: eu-west-1", "awsRegion: us-east-1");
    let (code, out) = run(&["-f", "-"], Some(&wrong));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("<stdin>:0: ScaledObject demo/worker: error: spec.triggers[0].metadata.awsRegion: \"us-east-1\" differs from the queue URL's region \"eu-west-1\"; set awsRegion: eu-west-1"),
        "{out}"
    );

    // Broken YAML and missing files are exit 2, and other inputs are still checked.
    let (code, out) = run(&["-f", "-"], Some("kind: [unclosed\n"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("<stdin>: not valid YAML"), "{out}");
    let missing = "/nonexistent/swell-check.yaml";
    let (code, out) = run(&["-f", missing, "-"], Some(VALID));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("{missing}: cannot read")), "{out}");
    assert!(
        out.contains("<stdin>:0: ScaledObject demo/worker: ok"),
        "{out}"
    );

    // A scalar document is not an object.
    let (code, out) = run(&["-f", "-"], Some("just text\n"));
    assert_eq!(code, 2, "{out}");

    // Only other kinds: nothing to fail.
    let (code, out) = run(
        &["-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("note: kind: skipped: v1 ConfigMap"), "{out}");
}

#[test]
fn several_files_share_trigger_authentications() {
    let dir = std::env::temp_dir().join(format!("swell-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let auth = dir.join("auth.yaml");
    std::fs::write(
        &auth,
        "apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: aws-eks
  namespace: demo
spec:
  podIdentity:
    provider: aws-eks
",
    )
    .expect("write");
    let so = dir.join("so.yaml");
    std::fs::write(
        &so,
        VALID.replace(
            "identityOwner: operator",
            "identityOwner: pod\n    authenticationRef:\n      name: aws-eks",
        ),
    )
    .expect("write");
    let so_s = so.to_string_lossy().into_owned();
    let auth_s = auth.to_string_lossy().into_owned();
    // Alone, the ScaledObject's authentication is unknown: a note, not an error.
    let (code, out) = run(&["-f", &so_s], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is not among the checked objects"), "{out}");
    // With the TriggerAuthentication from another file, no note.
    let (code, out) = run(&["-f", &so_s, &auth_s], None);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("note:"), "{out}");
    // With a TriggerAuthentication that cannot authenticate to AWS, an error.
    std::fs::write(
        &auth,
        std::fs::read_to_string(&auth)
            .expect("read")
            .replace("provider: aws-eks", "provider: azure-workload"),
    )
    .expect("write");
    let (code, out) = run(&["-f", &so_s, &auth_s], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot authenticate to AWS"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
