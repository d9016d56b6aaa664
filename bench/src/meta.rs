//! What a run records about itself: the adapter, the date and the commit.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use seldon_kernels::AdapterSummary;

/// Per-run metadata shared by every record of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMeta {
    /// `name (backend, driver driver_info)`.
    pub adapter: String,
    /// A short lowercase name for file names (`lavapipe`, `nvidia-geforce-rtx-4090`).
    pub adapter_slug: String,
    /// wgpu backend.
    pub backend: String,
    /// Device type.
    pub device_type: String,
    /// UTC start time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub date: String,
    /// UTC start day, `YYYYMMDD`.
    pub day: String,
    /// Short commit hash, or "unknown" outside a git checkout.
    pub commit: String,
    /// Whether tracked files differ from the commit.
    pub git_dirty: bool,
}

impl RunMeta {
    /// The metadata of a run starting now on `adapter`.
    pub fn now(adapter: &AdapterSummary) -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (date, day) = utc_date(secs);
        let (commit, git_dirty) = git_state();
        Self {
            adapter: adapter_string(adapter),
            adapter_slug: adapter_slug(adapter),
            backend: format!("{:?}", adapter.backend),
            device_type: format!("{:?}", adapter.device_type),
            date,
            day,
            commit,
            git_dirty,
        }
    }
}

/// `name (backend, driver driver_info)`.
pub fn adapter_string(a: &AdapterSummary) -> String {
    let driver = format!("{} {}", a.driver, a.driver_info);
    let driver = driver.trim();
    if driver.is_empty() {
        format!("{} ({:?})", a.name, a.backend)
    } else {
        format!("{} ({:?}, {driver})", a.name, a.backend)
    }
}

/// A file-name-safe adapter name: Mesa's software Vulkan driver reports
/// itself as llvmpipe, but it is lavapipe (llvmpipe is its GL sibling).
pub fn adapter_slug(a: &AdapterSummary) -> String {
    let name = a.name.to_ascii_lowercase();
    if name.starts_with("llvmpipe") {
        return if a.backend == wgpu::Backend::Vulkan {
            "lavapipe".into()
        } else {
            "llvmpipe".into()
        };
    }
    // Drop the parenthesised details drivers append (versions, bus ids).
    let base = name.split('(').next().unwrap_or(&name);
    let mut slug = String::new();
    for c in base.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(40).collect();
    if slug.is_empty() {
        "unknown".into()
    } else {
        slug
    }
}

/// `(YYYY-MM-DDTHH:MM:SSZ, YYYYMMDD)` for `secs` since the Unix epoch (UTC).
pub fn utc_date(secs: u64) -> (String, String) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        ),
        format!("{y:04}{m:02}{d:02}"),
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// days-to-civil algorithm, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The short commit hash of the working directory's checkout and whether
/// its tracked files are modified; `("unknown", false)` without git.
fn git_state() -> (String, bool) {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            (commit, dirty)
        }
        _ => ("unknown".into(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, backend: wgpu::Backend) -> AdapterSummary {
        AdapterSummary {
            index: 0,
            name: name.into(),
            backend,
            device_type: wgpu::DeviceType::Cpu,
            driver: "llvmpipe".into(),
            driver_info: "Mesa 22.3.6 (LLVM 15.0.6)".into(),
        }
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc_date(0).0, "1970-01-01T00:00:00Z");
        // 2000-02-29 (a leap day) 12:34:56.
        assert_eq!(
            utc_date(951_827_696),
            ("2000-02-29T12:34:56Z".into(), "20000229".into())
        );
        assert_eq!(utc_date(1_767_225_599).1, "20251231");
    }

    #[test]
    fn slugs_name_lavapipe_and_strip_details() {
        let lvp = summary("llvmpipe (LLVM 15.0.6, 256 bits)", wgpu::Backend::Vulkan);
        assert_eq!(adapter_slug(&lvp), "lavapipe");
        assert_eq!(
            adapter_string(&lvp),
            "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, llvmpipe Mesa 22.3.6 (LLVM 15.0.6))"
        );
        let gl = summary("llvmpipe (LLVM 15.0.6, 256 bits)", wgpu::Backend::Gl);
        assert_eq!(adapter_slug(&gl), "llvmpipe");
        let nv = summary("NVIDIA GeForce RTX 4090 (PCIe)", wgpu::Backend::Vulkan);
        assert_eq!(adapter_slug(&nv), "nvidia-geforce-rtx-4090");
        assert_eq!(
            adapter_slug(&summary("()", wgpu::Backend::Vulkan)),
            "unknown"
        );
    }
}
