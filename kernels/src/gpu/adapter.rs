//! Adapter enumeration and choice: the best discrete GPU unless the user names one.

use crate::error::{Error, Result};

/// One adapter as `seldon-bench devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Position in wgpu's enumeration order: what `SELDON_DEVICE=N` selects.
    pub index: usize,
    /// Adapter name as the driver reports it.
    pub name: String,
    /// Vulkan, Metal, Dx12, Gl, ...
    pub backend: wgpu::Backend,
    /// Discrete, integrated, virtual, CPU.
    pub device_type: wgpu::DeviceType,
    /// Driver name.
    pub driver: String,
    /// Driver version string.
    pub driver_info: String,
}

impl AdapterSummary {
    pub(crate) fn new(index: usize, info: &wgpu::AdapterInfo) -> Self {
        Self {
            index,
            name: info.name.clone(),
            backend: info.backend,
            device_type: info.device_type,
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
        }
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} ({:?}, {:?}, {} {})",
            self.index, self.name, self.backend, self.device_type, self.driver, self.driver_info
        )
    }
}

/// Lower is better: discrete > integrated > virtual > other > cpu.
fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Lower is better. GL goes last: it lacks compute features we use, and on
/// lavapipe machines it shows the same llvmpipe a second time.
fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::BrowserWebGpu => 1,
        wgpu::Backend::Gl => 2,
        wgpu::Backend::Noop => 3,
    }
}

/// Chooses among `adapters` (in enumeration order): `selector` is an index or a
/// case-insensitive name substring; without one, the best-ranked adapter wins.
/// Among several name matches the best-ranked wins too (lavapipe's Vulkan
/// adapter over its GL twin).
pub fn choose_adapter(adapters: &[AdapterSummary], selector: Option<&str>) -> Result<usize> {
    if adapters.is_empty() {
        return Err(Error::NoAdapter);
    }
    let rank = |a: &AdapterSummary| (type_rank(a.device_type), backend_rank(a.backend), a.index);
    let selector = selector.map(str::trim).filter(|s| !s.is_empty());
    let best = match selector {
        None => adapters.iter().min_by_key(|a| rank(a)),
        Some(sel) => {
            if let Ok(index) = sel.parse::<usize>() {
                adapters.iter().find(|a| a.index == index)
            } else {
                let needle = sel.to_lowercase();
                adapters
                    .iter()
                    .filter(|a| a.name.to_lowercase().contains(&needle))
                    .min_by_key(|a| rank(a))
            }
        }
    };
    match best {
        Some(a) => Ok(a.index),
        None => Err(Error::AdapterNotFound {
            wanted: selector.unwrap_or_default().to_owned(),
            available: adapters
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(index: usize, name: &str, backend: wgpu::Backend, t: wgpu::DeviceType) -> AdapterSummary {
        AdapterSummary {
            index,
            name: name.into(),
            backend,
            device_type: t,
            driver: String::new(),
            driver_info: String::new(),
        }
    }

    fn machine() -> Vec<AdapterSummary> {
        use wgpu::{Backend::*, DeviceType::*};
        vec![
            a(0, "llvmpipe (LLVM 15.0.6, 256 bits)", Gl, Cpu),
            a(1, "llvmpipe (LLVM 15.0.6, 256 bits)", Vulkan, Cpu),
            a(2, "Intel(R) UHD Graphics", Vulkan, IntegratedGpu),
            a(3, "NVIDIA GeForce RTX 3090", Vulkan, DiscreteGpu),
        ]
    }

    #[test]
    fn default_prefers_discrete_then_integrated() {
        assert_eq!(choose_adapter(&machine(), None).ok(), Some(3));
        let no_discrete = &machine()[..3];
        assert_eq!(choose_adapter(no_discrete, None).ok(), Some(2));
        assert_eq!(choose_adapter(&machine(), Some("  ")).ok(), Some(3));
    }

    #[test]
    fn lavapipe_vulkan_beats_its_gl_twin() {
        let lavapipe_only = &machine()[..2];
        assert_eq!(choose_adapter(lavapipe_only, None).ok(), Some(1));
        assert_eq!(choose_adapter(&machine(), Some("LLVMPIPE")).ok(), Some(1));
    }

    #[test]
    fn index_selects_exactly() {
        assert_eq!(choose_adapter(&machine(), Some("0")).ok(), Some(0));
        assert_eq!(choose_adapter(&machine(), Some("2")).ok(), Some(2));
    }

    #[test]
    fn unknown_selector_lists_the_adapters() {
        match choose_adapter(&machine(), Some("radeon")) {
            Err(Error::AdapterNotFound { wanted, available }) => {
                assert_eq!(wanted, "radeon");
                assert!(
                    available.contains("3: NVIDIA GeForce RTX 3090"),
                    "{available}"
                );
            }
            other => panic!("expected AdapterNotFound, got {other:?}"),
        }
        assert!(matches!(
            choose_adapter(&machine(), Some("9")),
            Err(Error::AdapterNotFound { .. })
        ));
        assert!(matches!(choose_adapter(&[], None), Err(Error::NoAdapter)));
    }
}
