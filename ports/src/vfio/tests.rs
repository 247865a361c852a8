//! What the generic VFIO port decides before touching a device: driver
//! lookup, and errors that are one line naming the device and the cause.
//! The drivers' rings are tested against simulated devices in their own
//! modules; real devices in a QEMU guest by `tests/vfio_vm.rs`.

use super::*;

#[test]
fn drivers_are_found_by_pci_id() {
    assert_eq!(
        drivers::find(0x8086, 0x10d3).map(|d| d.name),
        Some("e1000e")
    );
    assert_eq!(
        drivers::find(0x1af4, 0x1041).map(|d| d.name),
        Some("virtio-net")
    );
    assert!(drivers::find(0x8086, 0x1572).is_none());
    for d in drivers::DRIVERS {
        assert!(!d.ids.is_empty() && !d.describe.is_empty(), "{}", d.name);
    }
}

#[test]
fn a_missing_device_is_one_line() {
    let pool = Arc::new(PacketPool::new(64, false).unwrap());
    let e = VfioPort::open("p9", "fe:1f.7", &BTreeMap::new(), pool)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "no PCI device 0000:fe:1f.7 (check the address with lspci)"
    );
}

#[test]
fn every_error_names_the_device_on_one_line() {
    let bdf = || "0000:00:02.0".to_string();
    let errors = [
        VfioError::NoDevice { bdf: bdf() },
        VfioError::Unsupported {
            bdf: bdf(),
            vendor: 0x8086,
            device: 0x1572,
            known: "x".into(),
        },
        VfioError::NotBound {
            bdf: bdf(),
            driver: Some("e1000e".into()),
        },
        VfioError::NotBound {
            bdf: bdf(),
            driver: None,
        },
        VfioError::NoIommuGroup { bdf: bdf() },
        VfioError::NoVfio {
            bdf: bdf(),
            why: "No such file or directory".into(),
        },
        VfioError::GroupNotViable {
            bdf: bdf(),
            group: 3,
        },
        VfioError::GroupBusy {
            bdf: bdf(),
            group: 3,
        },
        VfioError::DeviceBusy {
            bdf: bdf(),
            port: "p1".into(),
        },
        VfioError::NoHugepages { bdf: bdf() },
        VfioError::PoolTooSmall {
            bdf: bdf(),
            have: 10,
            need: 1152,
            n_rxq: 1,
            ring: 1024,
        },
        VfioError::Device {
            bdf: bdf(),
            driver: "virtio-net",
            why: "the device refused features 0x1".into(),
        },
    ];
    for e in errors {
        let m = e.to_string();
        assert!(m.contains("0000:00:02.0") && !m.contains('\n'), "{m}");
    }
    let m = VfioError::NotBound {
        bdf: bdf(),
        driver: Some("e1000e".into()),
    }
    .to_string();
    assert!(
        m.starts_with("PCI device 0000:00:02.0 is bound to e1000e, not vfio-pci; bind it"),
        "{m}"
    );
}
