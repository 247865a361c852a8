//! PCI facts from sysfs (is the device there, which driver holds it, which
//! IOMMU group is it in, what is it) and from its configuration space
//! (command register, capability list).

use std::path::{Path, PathBuf};

use super::sys::Device;
use super::VfioError;

/// `01:00.0` → `0000:01:00.0`; the address in the form sysfs and VFIO use.
pub fn normalize(addr: &str) -> String {
    let addr = addr.trim().to_ascii_lowercase();
    if addr.matches(':').count() == 1 {
        format!("0000:{addr}")
    } else {
        addr
    }
}

fn sysfs_dir(bdf: &str) -> PathBuf {
    Path::new("/sys/bus/pci/devices").join(bdf)
}

fn link_name(p: &Path) -> Option<String> {
    let target = std::fs::read_link(p).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

fn read_hex(p: &Path) -> Option<u32> {
    let s = std::fs::read_to_string(p).ok()?;
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// What sysfs says about a PCI device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsInfo {
    pub vendor: u16,
    pub device: u16,
    /// The kernel driver bound to it, if any.
    pub driver: Option<String>,
    pub iommu_group: Option<u32>,
}

/// Reads the device's sysfs entry.
pub fn sysfs_info(bdf: &str) -> Result<SysfsInfo, VfioError> {
    let dir = sysfs_dir(bdf);
    if !dir.exists() {
        return Err(VfioError::NoDevice { bdf: bdf.into() });
    }
    let id = |f: &str| read_hex(&dir.join(f)).map(|v| v as u16).unwrap_or(0xffff);
    Ok(SysfsInfo {
        vendor: id("vendor"),
        device: id("device"),
        driver: link_name(&dir.join("driver")),
        iommu_group: link_name(&dir.join("iommu_group")).and_then(|g| g.parse().ok()),
    })
}

/// Checks that the device is ready for VFIO: bound to vfio-pci, in an IOMMU
/// group. Returns the group number.
pub fn check_binding(bdf: &str, info: &SysfsInfo) -> Result<u32, VfioError> {
    match info.driver.as_deref() {
        Some("vfio-pci") => {}
        other => {
            return Err(VfioError::NotBound {
                bdf: bdf.into(),
                driver: other.map(str::to_string),
            })
        }
    }
    info.iommu_group
        .ok_or_else(|| VfioError::NoIommuGroup { bdf: bdf.into() })
}

/// PCI command register bits.
const CMD_MEMORY: u16 = 1 << 1;
const CMD_BUS_MASTER: u16 = 1 << 2;
const CMD_INTX_DISABLE: u16 = 1 << 10;
const PCI_COMMAND: u16 = 0x04;
const PCI_STATUS: u16 = 0x06;
const STATUS_CAP_LIST: u16 = 1 << 4;
const PCI_CAP_PTR: u16 = 0x34;

/// Lets the device answer memory accesses and master DMA (or stops its DMA).
pub fn set_bus_master(dev: &Device, on: bool) -> std::io::Result<()> {
    let cmd = dev.config_read16(PCI_COMMAND);
    let cmd = if on {
        cmd | CMD_MEMORY | CMD_BUS_MASTER | CMD_INTX_DISABLE
    } else {
        cmd & !CMD_BUS_MASTER
    };
    dev.config_write16(PCI_COMMAND, cmd)
}

/// The offsets of the device's capabilities with id `id` (the list is
/// device-provided: pointers are masked, bounded, and loops cut short).
pub fn capabilities(dev: &Device, id: u8) -> Vec<u16> {
    let mut found = Vec::new();
    if dev.config_read16(PCI_STATUS) & STATUS_CAP_LIST == 0 {
        return found;
    }
    let mut ptr = u16::from(dev.config_read8(PCI_CAP_PTR) & 0xfc);
    for _ in 0..48 {
        if !(0x40..=0xfc).contains(&ptr) {
            break;
        }
        if dev.config_read8(ptr) == id {
            found.push(ptr);
        }
        ptr = u16::from(dev.config_read8(ptr + 1) & 0xfc);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized() {
        assert_eq!(normalize("01:00.0"), "0000:01:00.0");
        assert_eq!(normalize("0000:00:02.0"), "0000:00:02.0");
        assert_eq!(normalize("0000:AF:00.1"), "0000:af:00.1");
    }

    #[test]
    fn binding_errors_name_the_cause() {
        let info = |driver: Option<&str>, group| SysfsInfo {
            vendor: 0x8086,
            device: 0x10d3,
            driver: driver.map(str::to_string),
            iommu_group: group,
        };
        let e = check_binding("0000:00:02.0", &info(Some("e1000e"), Some(3)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bound to e1000e, not vfio-pci"), "{e}");
        let e = check_binding("0000:00:02.0", &info(None, Some(3)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no driver"), "{e}");
        let e = check_binding("0000:00:02.0", &info(Some("vfio-pci"), None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no IOMMU group"), "{e}");
        assert_eq!(
            check_binding("0000:00:02.0", &info(Some("vfio-pci"), Some(7))).unwrap(),
            7
        );
        let e = sysfs_info("0000:ff:1f.7").unwrap_err().to_string();
        assert!(e.contains("no PCI device 0000:ff:1f.7"), "{e}");
    }
}
