//! Importing the baked container images into containerd, through `ctr` (containerd's own client, shipped with it in
//! the image): `ctr -n k8s.io images import ARCHIVE`, then `ctr -n k8s.io images label REF io.cri-containerd.pinned=pinned`
//! so kubelet's image GC never removes them, then `ctr -n k8s.io images ls` and `images check` to check that
//! containerd holds each, complete, under the digest the image's lock records. An import that fails half way leaves
//! an image record without its layers: it is removed (`ctr images rm`), so neither kubelet nor a later agent run
//! mistakes it for the image. Which images, and whether each is already there, is decided in
//! [`crate::pure::images`]; an image already present with the locked digest and pinned is not imported again (an
//! agent restart re-imports nothing).
//!
//! ctr rather than containerd's gRPC API: the agent stays small (no tonic/prost), and ctr speaks the API of the
//! containerd it ships with. Every ctr call has a timeout; its stderr (never secret) goes into the reason.

use crate::image_info::ImageLock;
use crate::plan::{ImageOutcome, ImageReport, Observation};
use crate::pure::images::{self, K8S_NAMESPACE, PINNED_LABEL, PINNED_VALUE, WantedImage};
use std::path::Path;
use std::time::{Duration, Instant};

/// Where the image puts containerd's client.
pub const CTR: &str = "/usr/bin/ctr";

async fn ctr(ctr: &Path, args: &[&str], timeout: Duration) -> Result<String, String> {
    let mut command = tokio::process::Command::new(ctr);
    command
        .arg("--namespace")
        .arg(K8S_NAMESPACE)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let run = command.output();
    let output = match tokio::time::timeout(timeout, run).await {
        Err(_) => {
            return Err(format!(
                "`ctr {}` did not finish in {timeout:?}",
                args.join(" ")
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot run {}: {e}", ctr.display())),
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!(
            "`ctr {}` failed ({}): {}",
            args.join(" "),
            output.status,
            last.chars().take(300).collect::<String>()
        ))
    }
}

/// `ctr images ls` with `ctr images check`'s content status applied.
async fn listing(ctr_bin: &Path, timeout: Duration) -> Result<Vec<images::ListedImage>, String> {
    let mut listed = images::parse_ctr_images(&ctr(ctr_bin, &["images", "ls"], timeout).await?);
    let check = ctr(ctr_bin, &["images", "check"], timeout).await?;
    images::apply_ctr_check(&mut listed, &check);
    Ok(listed)
}

/// `ImportImages`: every image of the lock under `root`, imported and pinned unless already there.
pub async fn import_images(root: &Path, ctr_bin: &Path, timeout: Duration) -> Observation {
    let lock = match ImageLock::read(root) {
        Ok(lock) => lock,
        Err(e) => {
            return Observation::ImagesImported(vec![ImageReport {
                reference: "(all)".to_string(),
                digest: String::new(),
                outcome: ImageOutcome::Failed {
                    reason: format!("{e} — the image's lock lists the images to import"),
                },
            }]);
        }
    };
    let wanted = images::wanted(&lock);
    if wanted.is_empty() {
        return Observation::ImagesImported(Vec::new());
    }
    let failed_all = |reason: String| {
        Observation::ImagesImported(
            wanted
                .iter()
                .map(|w| {
                    report(
                        w,
                        ImageOutcome::Failed {
                            reason: reason.clone(),
                        },
                    )
                })
                .collect(),
        )
    };
    let before = match listing(ctr_bin, timeout).await {
        Ok(listed) => listed,
        Err(e) => return failed_all(format!("{e} (is containerd running?)")),
    };
    let mut took = Vec::with_capacity(wanted.len());
    for image in &wanted {
        if !images::needs_import(image, &before) {
            took.push(Ok(None));
            continue;
        }
        let archive = root.join(image.archive.trim_start_matches('/'));
        let archive_arg = archive.to_string_lossy().into_owned();
        let started = Instant::now();
        let result = async {
            ctr(ctr_bin, &["images", "import", &archive_arg], timeout).await?;
            let label = format!("{PINNED_LABEL}={PINNED_VALUE}");
            ctr(
                ctr_bin,
                &["images", "label", &image.reference, &label],
                timeout,
            )
            .await?;
            Ok::<u64, String>(started.elapsed().as_millis() as u64)
        }
        .await;
        match &result {
            Ok(millis) => {
                tracing::info!(image = %image.reference, millis, "image imported and pinned")
            }
            Err(e) => tracing::warn!(image = %image.reference, error = %e, "image import failed"),
        }
        took.push(result.map(Some));
    }
    let after = match listing(ctr_bin, timeout).await {
        Ok(listed) => listed,
        Err(e) => return failed_all(e),
    };
    let mut reports = Vec::with_capacity(wanted.len());
    for (image, took) in wanted.iter().zip(took) {
        let outcome = match took {
            Err(reason) => ImageOutcome::Failed { reason },
            Ok(millis) => images::judge(image, &after, millis),
        };
        if matches!(
            outcome,
            ImageOutcome::Failed { .. } | ImageOutcome::WrongDigest { .. }
        ) {
            // A half-imported record (manifest without layers), or another image under the locked name, must not
            // stay behind looking like the image.
            if let Err(e) = ctr(ctr_bin, &["images", "rm", &image.reference], timeout).await {
                tracing::debug!(image = %image.reference, error = %e, "nothing to remove after a failed import");
            }
        }
        reports.push(report(image, outcome));
    }
    Observation::ImagesImported(reports)
}

fn report(image: &WantedImage, outcome: ImageOutcome) -> ImageReport {
    ImageReport {
        reference: image.reference.clone(),
        digest: image.digest.clone(),
        outcome,
    }
}
