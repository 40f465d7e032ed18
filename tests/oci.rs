//! Policy modules from a real OCI registry (Debian's docker-registry 2.8 with TLS
//! and htpasswd basic auth, started here on loopback): push, pull by digest and by
//! tag, a tampered blob, wrong credentials and an unknown repository, plain HTTP
//! only when marked insecure, requireDigests, a reload while the registry is down,
//! a restart from the cache, and cosign signatures made by the real cosign.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::Hostile;
use support::command::{code, plate_policy_in, stderr, stdout, temp_dir, write};
use support::https::{Connection, client_config};
use support::process::Server;
use support::registry::{Registry, run_cosign};

/// The module holding the built-in policies (no-latest-tag among them), written to
/// `dir`; its settings choose the policy (`policy_set`).
fn builtin_module(dir: &Path) -> PathBuf {
    let bytes =
        plate_policy::builtin::module("no-latest-tag").unwrap_or_else(|| panic!("no module"));
    let path = dir.join("no-latest-tag.wasm");
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn run(dir: &Path, args: &[&str], registry: &Registry) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(registry.cli_args());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    plate_policy_in(dir, &refs)
}

/// `plate-policy push FILE REF`: the digest it prints.
fn push(dir: &Path, registry: &Registry, file: &Path, reference: &str) -> String {
    let out = run(
        dir,
        &["push", &file.display().to_string(), reference],
        registry,
    );
    assert_eq!(code(&out), 0, "push: {}", stderr(&out));
    let digest = stdout(&out).trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "push printed {digest:?}"
    );
    digest
}

fn sha256(bytes: &[u8]) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = sum.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A policy set with one entry, `module`, as no-latest-tag is in the built-in set
/// (prod only, Pods), plus `extra` under spec and `entry` under the policy.
fn policy_set(module: &str, spec: &str, entry: &str) -> String {
    format!(
        "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nmetadata: {{name: oci}}\nspec:\n{spec}  policies:\n    - name: no-latest-tag\n      module: {module}\n{entry}      environments: [prod]\n      match: {{kinds: [Pod]}}\n      settings: {{policy: no-latest-tag, settings: {{forbiddenTags: [latest]}}}}\n"
    )
}

/// `spec.registries` for a TLS registry whose CA is at `ca`.
fn registries(registry: &Registry) -> String {
    if registry.tls {
        format!(
            "  registries:\n    \"{}\": {{caFile: {}}}\n",
            registry.addr,
            registry.ca().display()
        )
    } else {
        format!(
            "  registries:\n    \"{}\": {{insecure: true}}\n",
            registry.addr
        )
    }
}

const POD_LATEST: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: plate-prod}\nspec:\n  containers:\n    - {name: web, image: nginx:latest}\n";

/// `check` of a Pod using `nginx:latest` in prod with the set in `dir/policies.yaml`.
fn check(dir: &Path, auth: &Path, extra: &[&str]) -> std::process::Output {
    write(dir, "pod.yaml", POD_LATEST);
    let mut args = vec![
        "check",
        "-f",
        "pod.yaml",
        "--env",
        "prod",
        "--policies",
        "policies.yaml",
        "--registry-config",
    ];
    let auth = auth.display().to_string();
    args.push(&auth);
    args.extend_from_slice(extra);
    plate_policy_in(dir, &args)
}

#[test]
fn push_then_pull_by_digest_and_by_tag() {
    let dir = temp_dir();
    let registry = Registry::secure(&dir.path().join("registry"), [127, 0, 0, 1]);
    let module = builtin_module(dir.path());
    let bytes = std::fs::read(&module).unwrap_or_else(|e| panic!("{e}"));
    let tag_ref = registry.reference("plate/no-latest-tag", ":1.0.0");
    let digest = push(dir.path(), &registry, &module, &tag_ref);
    // The same module pushed again is the same artifact.
    assert_eq!(push(dir.path(), &registry, &module, &tag_ref), digest);

    // By tag: resolved to the pushed digest, into the cache.
    let cache = dir.path().join("cache");
    let start = Instant::now();
    let out = run(
        dir.path(),
        &[
            "pull",
            &tag_ref,
            "--module-cache",
            &cache.display().to_string(),
        ],
        &registry,
    );
    eprintln!(
        "pull by tag (TLS, basic auth, {} bytes): {:?}",
        bytes.len(),
        start.elapsed()
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pinned = registry.reference("plate/no-latest-tag", &format!("@{digest}"));
    assert_eq!(stdout(&out).trim(), pinned);
    assert!(stderr(&out).contains(&sha256(&bytes)), "{}", stderr(&out));
    let cached = cache.join("oci/blobs/sha256").join(&sha256(&bytes)[7..]);
    assert_eq!(
        std::fs::read(&cached).ok().as_deref(),
        Some(bytes.as_slice())
    );

    // By digest: into a file, byte for byte.
    let file = dir.path().join("pulled.wasm");
    let out = run(
        dir.path(),
        &[
            "pull",
            &pinned,
            "--no-module-cache",
            "-o",
            &file.display().to_string(),
        ],
        &registry,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).ok().as_deref(), Some(bytes.as_slice()));

    // inspect: digest, size, media types and ABI.
    let out = run(
        dir.path(),
        &["inspect", &tag_ref, "--no-module-cache", "-o", "json"],
        &registry,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["artifact"]["digest"], digest.as_str());
    assert_eq!(
        report["artifact"]["config_media_type"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(report["artifact"]["layer_media_type"], "application/wasm");
    assert_eq!(report["artifact"]["layer_size"], bytes.len());
    assert_eq!(report["size"], bytes.len());
    assert_eq!(report["abi_version"], 2);

    // Kubewarden's layout is read too.
    let kw_ref = registry.reference("kubewarden/no-latest-tag", ":v1");
    let out = run(
        dir.path(),
        &[
            "push",
            &module.display().to_string(),
            &kw_ref,
            "--layout",
            "kubewarden",
        ],
        &registry,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(
        dir.path(),
        &["inspect", &kw_ref, "--no-module-cache"],
        &registry,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("application/vnd.wasm.content.layer.v1+wasm"),
        "{}",
        stdout(&out)
    );

    // A policy set pinning the digest decides as the built-in policy does.
    std::fs::write(
        dir.path().join("policies.yaml"),
        policy_set(&pinned, &registries(&registry), ""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = check(dir.path(), &registry.auth(), &["--no-module-cache"]);
    let builtin = plate_policy_in(
        dir.path(),
        &[
            "check",
            "-f",
            "pod.yaml",
            "--env",
            "prod",
            "--no-module-cache",
        ],
    );
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let deny_line = |o: &std::process::Output| {
        stdout(o)
            .lines()
            .find(|l| l.contains("DENY"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no denial: {}", stdout(o)))
    };
    assert_eq!(deny_line(&out), deny_line(&builtin));
}

#[test]
fn a_tampered_blob_is_refused_naming_both_digests() {
    let dir = temp_dir();
    let registry = Registry::secure(&dir.path().join("registry"), [127, 0, 0, 1]);
    let module = builtin_module(dir.path());
    let bytes = std::fs::read(&module).unwrap_or_else(|e| panic!("{e}"));
    let tag_ref = registry.reference("plate/tampered", ":1");
    push(dir.path(), &registry, &module, &tag_ref);
    let layer = sha256(&bytes);
    let blob = registry.blob_file(&layer);
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(&blob, &tampered).unwrap_or_else(|e| panic!("{}: {e}", blob.display()));

    let cache = dir.path().join("cache");
    let out = run(
        dir.path(),
        &[
            "pull",
            &tag_ref,
            "--module-cache",
            &cache.display().to_string(),
        ],
        &registry,
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("the layer does not match its digest"),
        "{message}"
    );
    assert!(message.contains(&format!("expected {layer}")), "{message}");
    assert!(message.contains(&sha256(&tampered)), "{message}");
    // Nothing unverified is kept, and nothing is compiled from it: the set refuses.
    assert!(!cache.join("oci/blobs/sha256").join(&layer[7..]).exists());
    std::fs::write(
        dir.path().join("policies.yaml"),
        policy_set(&tag_ref, &registries(&registry), ""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cache_arg = cache.display().to_string();
    let out = check(
        dir.path(),
        &registry.auth(),
        &["--module-cache", &cache_arg],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("spec.policies[0].module"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("does not match its digest"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(&cache)
            .map(|d| d
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count())
            .unwrap_or(0),
        0,
        "nothing was compiled"
    );
}

#[test]
fn wrong_credentials_and_unknown_repositories_give_clear_errors() {
    let dir = temp_dir();
    let registry = Registry::secure(&dir.path().join("registry"), [127, 0, 0, 1]);
    let module = builtin_module(dir.path());
    let tag_ref = registry.reference("plate/creds", ":1");
    push(dir.path(), &registry, &module, &tag_ref);
    let ca = registry.ca().display().to_string();

    let wrong = write(
        dir.path(),
        "wrong.json",
        &format!(
            "{{\"auths\":{{\"{}\":{{\"username\":\"plate\",\"password\":\"not-it\"}}}}}}",
            registry.addr
        ),
    );
    let out = plate_policy_in(
        dir.path(),
        &[
            "pull",
            &tag_ref,
            "--no-module-cache",
            "--registry-ca",
            &ca,
            "--registry-config",
            &wrong.display().to_string(),
        ],
    );
    assert_eq!(code(&out), 1);
    let message = stderr(&out);
    assert!(message.contains("HTTP 401 unauthorized"), "{message}");
    assert!(message.contains("user \"plate\" from"), "{message}");
    assert!(message.contains("wrong.json"), "{message}");

    let none = write(dir.path(), "none.json", "{\"auths\":{}}");
    let out = plate_policy_in(
        dir.path(),
        &[
            "pull",
            &tag_ref,
            "--no-module-cache",
            "--registry-ca",
            &ca,
            "--registry-config",
            &none.display().to_string(),
        ],
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(&format!("none.json has none for {}", registry.addr)),
        "{}",
        stderr(&out)
    );

    // --username and --password-stdin work as the config file does.
    let out = support::command::with_stdin_in(
        dir.path(),
        &[
            "pull",
            &tag_ref,
            "--no-module-cache",
            "--registry-ca",
            &ca,
            "--username",
            support::registry::USER,
            "--password-stdin",
        ],
        &format!("{}\n", support::registry::PASSWORD),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    for unknown in [
        registry.reference("plate/no-such-repository", ":1"),
        registry.reference("plate/creds", ":no-such-tag"),
    ] {
        let out = run(
            dir.path(),
            &["pull", &unknown, "--no-module-cache"],
            &registry,
        );
        assert_eq!(code(&out), 1);
        let message = stderr(&out);
        assert!(
            message.contains(&format!("{unknown} was not found in its registry")),
            "{message}"
        );
        assert!(
            message.contains("check the repository, tag or digest"),
            "{message}"
        );
    }

    // Without the registry's CA, the certificate is not trusted, and that is what is said.
    let out = plate_policy_in(
        dir.path(),
        &[
            "pull",
            &tag_ref,
            "--no-module-cache",
            "--registry-config",
            &registry.auth().display().to_string(),
        ],
    );
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("UnknownIssuer"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("caFile under spec.registries"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plain_http_only_for_a_registry_marked_insecure_and_tags_refused_under_require_digests() {
    let dir = temp_dir();
    let registry = Registry::plain(&dir.path().join("registry"));
    let module = builtin_module(dir.path());
    let tag_ref = registry.reference("plate/plain", ":1");
    let digest = push(dir.path(), &registry, &module, &tag_ref);

    // Not marked insecure: HTTPS is tried and fails; the message says what to mark.
    std::fs::write(
        dir.path().join("policies.yaml"),
        policy_set(&tag_ref, "", ""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = check(dir.path(), &registry.auth(), &["--no-module-cache"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("insecure: true under spec.registries"),
        "{}",
        stderr(&out)
    );

    // Marked insecure: plain HTTP, and the tag resolves.
    std::fs::write(
        dir.path().join("policies.yaml"),
        policy_set(&tag_ref, &registries(&registry), ""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = check(dir.path(), &registry.auth(), &["--no-module-cache"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));

    // requireDigests: the tag is refused with the fix; the digest loads.
    let spec = format!("  requireDigests: true\n{}", registries(&registry));
    std::fs::write(
        dir.path().join("policies.yaml"),
        policy_set(&tag_ref, &spec, ""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = check(dir.path(), &registry.auth(), &["--no-module-cache"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("policies.yaml:10:15: spec.policies[0].module"),
        "{message}"
    );
    assert!(
        message.contains("spec.requireDigests is true: pin the digest"),
        "{message}"
    );
    let pinned = registry.reference("plate/plain", &format!("@{digest}"));
    std::fs::write(
        dir.path().join("policies.yaml"),
        policy_set(&pinned, &spec, ""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = check(dir.path(), &registry.auth(), &["--no-module-cache"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
}

fn pod_review(uid: &str, image: &str) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "web",
            "namespace": "plate-prod",
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "plate-prod"},
                "spec": {"containers": [{"name": "web", "image": image}]}},
        }
    })
    .to_string()
    .into_bytes()
}

/// The server's answer to a Pod with `image` in prod.
fn allowed(server: &Server, dir: &Path, image: &str) -> bool {
    let config = client_config(&dir.join("certs/ca.crt"), None);
    let mut conn = Connection::open(server.addr, &config).unwrap_or_else(|e| panic!("{e}"));
    let r = conn
        .review(&pod_review("u", image))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    r.json()["response"]["allowed"]
        .as_bool()
        .unwrap_or_else(|| panic!("no verdict: {:?}", r.json()))
}

#[test]
fn the_registry_stopped_during_a_reload_leaves_the_last_good_set_serving() {
    let dir = temp_dir();
    let mut registry = Registry::secure(&dir.path().join("registry"), [127, 0, 0, 1]);
    let module = builtin_module(dir.path());
    let digest = push(
        dir.path(),
        &registry,
        &module,
        &registry.reference("plate/reload", ":1"),
    );
    let allow_all = dir.path().join("allow-all.wasm");
    std::fs::write(&allow_all, Hostile::AllowAll.wasm()).unwrap_or_else(|e| panic!("{e}"));
    let other = push(
        dir.path(),
        &registry,
        &allow_all,
        &registry.reference("plate/reload", ":2"),
    );
    let regs = registries(&registry);
    let (first, second) = (
        registry.reference("plate/reload", &format!("@{digest}")),
        registry.reference("plate/reload", &format!("@{other}")),
    );
    std::fs::write(
        dir.path().join("policies.yaml"),
        policy_set(&first, &regs, ""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let auth = registry.auth().display().to_string();
    let mut server = Server::dev_with_policies(
        dir.path(),
        &["--module-cache", "cache", "--registry-config", &auth],
    );
    assert!(
        !allowed(&server, dir.path(), "nginx:latest"),
        "the OCI module denies latest"
    );

    registry.stop();
    // A set that needs a module the cache does not have: the registry is needed, and down.
    std::fs::write(
        dir.path().join("policies.yaml"),
        policy_set(&second, &regs, ""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let line = server.wait_for_log("new policy set rejected", Duration::from_secs(60));
    assert!(
        line.contains(&format!("cannot reach the registry {}", registry.addr)),
        "{line}"
    );
    assert!(line.contains("is not in the module cache"), "{line}");
    assert!(
        !allowed(&server, dir.path(), "nginx:latest"),
        "the last good set still serves"
    );

    // With the registry back, the same change goes through.
    registry.start();
    std::fs::write(
        dir.path().join("policies.yaml"),
        format!("{}# again\n", policy_set(&second, &regs, "")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.wait_for_log("policy set reloaded", Duration::from_secs(60));
    assert!(
        allowed(&server, dir.path(), "nginx:latest"),
        "the new module allows everything"
    );
}

#[test]
fn a_server_restarted_with_the_registry_down_starts_from_its_cache() {
    let dir = temp_dir();
    let mut registry = Registry::secure(&dir.path().join("registry"), [127, 0, 0, 1]);
    let module = builtin_module(dir.path());
    let digest = push(
        dir.path(),
        &registry,
        &module,
        &registry.reference("plate/restart", ":1"),
    );
    let pinned = registry.reference("plate/restart", &format!("@{digest}"));
    std::fs::write(
        dir.path().join("policies.yaml"),
        policy_set(&pinned, &registries(&registry), ""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let auth = registry.auth().display().to_string();
    let args = [
        "--module-cache",
        "cache",
        "--registry-config",
        auth.as_str(),
    ];
    let start = Instant::now();
    let server = Server::dev_with_policies(dir.path(), &args);
    eprintln!("ready, pulling and compiling: {:?}", start.elapsed());
    assert!(!allowed(&server, dir.path(), "nginx:latest"));
    drop(server);

    registry.stop();
    let start = Instant::now();
    let server = Server::dev_with_policies(dir.path(), &args);
    let ready = start.elapsed();
    eprintln!("ready from the cache with the registry down: {ready:?}");
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("OCI module ready"))
        .unwrap_or_else(|| panic!("no OCI module line:\n{log}"));
    assert!(line.contains("\"cached\":true"), "{line}");
    assert!(
        !allowed(&server, dir.path(), "nginx:latest"),
        "it decides from the cached module"
    );
    assert!(allowed(&server, dir.path(), "nginx:1.27"));

    // Without the cache, the same start fails and says why.
    let out = plate_policy_in(
        dir.path(),
        &[
            "serve",
            "--dev",
            "--certs-dir",
            "certs",
            "--policies",
            "policies.yaml",
            "--registry-config",
            &auth,
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not in the module cache"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_signed_module_is_accepted_an_unsigned_or_wrongly_signed_one_refused() {
    let dir = temp_dir();
    let mut registry = Registry::secure(&dir.path().join("registry"), [127, 0, 0, 1]);
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap_or_else(|e| panic!("{e}"));
    run_cosign(
        &registry,
        &keys,
        &["generate-key-pair", "--output-key-prefix", "signer"],
    );
    run_cosign(
        &registry,
        &keys,
        &["generate-key-pair", "--output-key-prefix", "other"],
    );

    let module = builtin_module(dir.path());
    let signed = push(
        dir.path(),
        &registry,
        &module,
        &registry.reference("plate/signed", ":1"),
    );
    let signed_ref = registry.reference("plate/signed", &format!("@{signed}"));
    let image = format!("{}/plate/signed@{signed}", registry.addr);
    run_cosign(
        &registry,
        &keys,
        &[
            "sign",
            "--key",
            "signer.key",
            "--tlog-upload=false",
            "-y",
            &image,
        ],
    );
    let allow_all = dir.path().join("allow-all.wasm");
    std::fs::write(&allow_all, Hostile::AllowAll.wasm()).unwrap_or_else(|e| panic!("{e}"));
    let unsigned = push(
        dir.path(),
        &registry,
        &allow_all,
        &registry.reference("plate/unsigned", ":1"),
    );
    let unsigned_ref = registry.reference("plate/unsigned", &format!("@{unsigned}"));

    let regs = registries(&registry);
    let verify = |key: &str| format!("      verify: {{cosignKey: keys/{key}}}\n");
    let cache = dir.path().join("cache").display().to_string();
    let auth = registry.auth();
    let load = |module: &str, key: &str| {
        std::fs::write(
            dir.path().join("policies.yaml"),
            policy_set(module, &regs, &verify(key)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        check(dir.path(), &auth, &["--module-cache", &cache])
    };

    let out = load(&signed_ref, "signer.pub");
    assert_eq!(
        code(&out),
        1,
        "signed by the key: loads and denies latest\n{}",
        stderr(&out)
    );

    let out = load(&signed_ref, "other.pub");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains("spec.policies[0].module"), "{message}");
    assert!(message.contains("is not signed with the key"), "{message}");
    assert!(
        message.contains("other.pub: 1 signature(s) found, none valid"),
        "{message}"
    );

    let out = load(&unsigned_ref, "signer.pub");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains(&format!(
            "{unsigned_ref} is not signed: no cosign signature was found"
        )),
        "{message}"
    );

    let out = load(&signed_ref, "missing.pub");
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("spec.policies[0].verify"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("cannot read the cosign public key"),
        "{}",
        stderr(&out)
    );

    // From the cache, with the registry down, the stored signature is checked again.
    registry.stop();
    let out = load(&signed_ref, "signer.pub");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let out = load(&signed_ref, "other.pub");
    assert_eq!(
        code(&out),
        2,
        "the wrong key is refused from the cache too: {}",
        stderr(&out)
    );
}
